// kernels/postproc_simd.h: the SIMD bodies of the mask post-processing kernels (see
// KernelTable::mask_row_stats / paste_row in kernels.h), shared by the AVX2 (V8) and AVX-512 (V16)
// paths; kernels/ref/postproc.cpp is the scalar reference.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace m2fp::kern {
namespace {

template <class V>
inline typename V::F sigmoid_v(typename V::F x) {
  // 1 / (1 + exp(-x)); exp saturates to 0 / +inf, so the result stays in [0, 1].
  return V::div(V::set1(1.f), V::add(V::set1(1.f), V::exp(V::sub(V::zero(), x))));
}

template <class V>
void mask_row_stats_simd(const float* x, int64_t n, int64_t* count, double* sig_sum, int64_t* first,
                         int64_t* last) {
  constexpr int W = V::W;
  typename V::F acc = V::zero();
  int64_t c = 0, f = -1, l = -1;
  for (int64_t i = 0; i < n; i += W) {
    const int w = (int)(n - i < W ? n - i : W);
    const typename V::F v = w == W ? V::load(x + i) : V::load_n(x + i, w);
    const typename V::M pos = V::gt(v, V::zero());  // lanes past the tail load 0: not positive
    const uint32_t b = V::bits(pos);
    if (!b) continue;
    c += __builtin_popcount(b);
    if (f < 0) f = i + __builtin_ctz(b);
    l = i + 31 - __builtin_clz(b);
    acc = V::add(acc, V::where(pos, sigmoid_v<V>(v)));
  }
  float lanes[W];
  V::store(lanes, acc);
  double s = 0;
  for (int k = 0; k < W; ++k) s += lanes[k];
  *count += c;
  *sig_sum += s;
  *first = f;
  *last = l;
}

template <class V>
void paste_row_simd(const float* x, int64_t n, float score, float* cat, float* times) {
  constexpr int W = V::W;
  const typename V::F sc = V::set1(score), half = V::set1(0.5f), one = V::set1(1.f);
  for (int64_t i = 0; i < n; i += W) {
    const int w = (int)(n - i < W ? n - i : W);
    const typename V::F v = w == W ? V::load(x + i) : V::load_n(x + i, w);
    const typename V::F p = V::mul(sigmoid_v<V>(v), sc);
    const typename V::M m = V::gt(p, half);
    if (!V::bits(m)) continue;
    if (w == W) {
      V::store(cat + i, V::add(V::load(cat + i), V::where(m, p)));
      V::store(times + i, V::add(V::load(times + i), V::where(m, one)));
    } else {
      V::store_n(cat + i, V::add(V::load_n(cat + i, w), V::where(m, p)), w);
      V::store_n(times + i, V::add(V::load_n(times + i, w), V::where(m, one)), w);
    }
  }
}

// One row of kernels.h's mask_row_fused: v computed as the resize's vertical step, then each sink
// with the same operations (and, for the statistics, the same per-lane float accumulation) as
// mask_row_stats_simd / paste_row_simd above.
//
// FusedRow is the body specialised for one set of sinks (kStats: count/sig_sum/first/last, kBits,
// kPaste: cat/times/score, kPerson: best/who/id): the sinks are copied into locals once (stores
// through the float / byte pointers could alias *o, so reading o-> in the loop reloads it every
// step), and U lane groups go through each step together, so that their sigmoids' divisions are
// independent and overlap. Every lane gets the same float operations as in mask_row_stats_simd /
// paste_row_simd, and each statistic lane's additions stay in the same order: a group without a
// positive lane now adds where(pos, ..) = +0 to its lane of acc (which is +0 or positive: no
// change) instead of being skipped. The paste computes the sigmoid only of groups with a lane
// above paste_gate(score) (kernels.h), below which no lane can paste; the others run the exact test.
// Neither computes a sigmoid known to be 1 (kSigmoidOne).
// sigmoid_v(v) is exactly 1 for v >= kSigmoidOne: exp(-17) = 4.1e-8 is below 2^-24 = 6.0e-8 by far
// more than exp's error (a few ulp), so 1 + exp(-v) rounds to 1 and 1 / 1 = 1. FusedRow skips the
// sigmoid of lane groups whose lanes that need it are all at or above it (the interior of a
// confident mask).
constexpr float kSigmoidOne = 17.f;

template <class V, int U, bool kStats, bool kBits, bool kPaste, bool kPerson>
struct FusedRow {
  using F = typename V::F;
  using M = typename V::M;
  static constexpr int W = V::W;
  static_assert(U * W <= 64 && 64 % (U * W) == 0, "a block of U groups lies inside one bit word");

  const float *h0, *h1;
  int64_t n;
  F L0, L1;
  // sinks
  uint64_t* bits = nullptr;
  float *cat = nullptr, *times = nullptr;
  F sc, gate, half, one, sat;
  float* best = nullptr;
  uint8_t* who = nullptr;
  uint8_t id = 0;
  // running state
  F acc;
  int64_t c = 0, f = -1, l = -1;
  uint64_t word = 0;

  FusedRow(const float* a, const float* b, float l0, float l1, int64_t len, const MaskRowSinks& o)
      : h0(a), h1(b), n(len), L0(V::set1(l0)), L1(V::set1(l1)), bits(o.bits), cat(o.cat), times(o.times),
        sc(V::set1(o.score)), gate(V::set1(kPaste ? paste_gate(o.score) : 0.f)), half(V::set1(0.5f)),
        one(V::set1(1.f)), sat(V::set1(kSigmoidOne)), best(o.best), who(o.who), id(o.id), acc(V::zero()) {}

  // U groups from lane i; kFull: all U * W lanes lie below n, else U == 1 and w = n - i < W.
  template <int UU, bool kFull>
  inline void block(int64_t i, int w) {
    F v[UU];
    M pos[UU];
    uint64_t bb = 0;  // bit u * W + k = lane k of group u is positive
    for (int u = 0; u < UU; ++u) {
      const int64_t j = i + (int64_t)u * W;
      v[u] = kFull ? V::fma(V::load(h0 + j), L0, V::mul(V::load(h1 + j), L1))
                   : V::fma(V::load_n(h0 + j, w), L0, V::mul(V::load_n(h1 + j, w), L1));
      pos[u] = V::gt(v[u], V::zero());  // lanes past the tail are 0: not positive
      bb |= (uint64_t)V::bits(pos[u]) << (u * W);
    }
    if constexpr (kBits) {
      word |= bb << (i & 63);
      const int64_t e = i + (int64_t)UU * W;
      if ((e & 63) == 0 || e >= n) {
        bits[i >> 6] = word;
        word = 0;
      }
    }
    if constexpr (kStats) {
      if (bb) {
        c += __builtin_popcountll(bb);
        if (f < 0) f = i + __builtin_ctzll(bb);
        l = i + 63 - __builtin_clzll(bb);
        uint32_t unsat = 0;  // positive lanes below kSigmoidOne: their sigmoid needs the division
        for (int u = 0; u < UU; ++u) unsat |= V::bits(V::mand(pos[u], V::lt(v[u], sat)));
        if (unsat) {
          F sg[UU];
          for (int u = 0; u < UU; ++u) sg[u] = sigmoid_v<V>(v[u]);
          for (int u = 0; u < UU; ++u) acc = V::add(acc, V::where(pos[u], sg[u]));
        } else {
          for (int u = 0; u < UU; ++u) acc = V::add(acc, V::where(pos[u], one));  // sigmoid = 1 exactly
        }
      }
    }
    if constexpr (kPaste) {
      M up[UU];  // lanes above the gate: the only ones that may paste
      uint32_t any = 0, unsat = 0;
      for (int u = 0; u < UU; ++u) {
        up[u] = V::gt(v[u], gate);
        any |= V::bits(up[u]);
        unsat |= V::bits(V::mand(up[u], V::lt(v[u], sat)));
      }
      if (any) {
        F p[UU];
        if (unsat) {
          for (int u = 0; u < UU; ++u) p[u] = V::mul(sigmoid_v<V>(v[u]), sc);
        } else {
          // every lane above the gate has sigmoid 1: p = 1 * score = score, which pastes (the gate
          // is finite or -inf only when score > 0.5); the lanes at or below the gate do not
          for (int u = 0; u < UU; ++u) p[u] = V::where(up[u], sc);
        }
        for (int u = 0; u < UU; ++u) {
          const M m = V::gt(p[u], half);
          if (!V::bits(m)) continue;
          const int64_t j = i + (int64_t)u * W;
          if (kFull) {
            V::store(cat + j, V::add(V::load(cat + j), V::where(m, p[u])));
            V::store(times + j, V::add(V::load(times + j), V::where(m, one)));
          } else {
            V::store_n(cat + j, V::add(V::load_n(cat + j, w), V::where(m, p[u])), w);
            V::store_n(times + j, V::add(V::load_n(times + j, w), V::where(m, one)), w);
          }
        }
      }
    }
    if constexpr (kPerson) {
      for (int u = 0; u < UU; ++u) {
        const int64_t j = i + (int64_t)u * W;
        const F b = kFull ? V::load(best + j) : V::load_n(best + j, w);
        const M gt = V::gt(v[u], b);
        uint32_t g = V::bits(gt);
        if (!g) continue;
        if (kFull) V::store(best + j, V::select(gt, v[u], b));
        else V::store_n(best + j, V::select(gt, v[u], b), w);
        if (kFull) {
          V::store_u8_where(who + j, gt, id);  // one store, not one per lane taken
        } else {
          for (; g; g &= g - 1) who[j + __builtin_ctz(g)] = id;
        }
      }
    }
  }

  void run(const MaskRowSinks& o) {
    int64_t i = 0;
    for (; i + (int64_t)U * W <= n; i += (int64_t)U * W) block<U, true>(i, W);
    for (; i + W <= n; i += W) block<1, true>(i, W);
    if (i < n) block<1, false>(i, (int)(n - i));
    if constexpr (kStats) {
      float lanes[W];
      V::store(lanes, acc);
      double s = 0;
      for (int k = 0; k < W; ++k) s += lanes[k];
      *o.count += c;
      *o.sig_sum += s;
      *o.first = f;
      *o.last = l;
    }
  }
};

template <class V, int U, bool kStats, bool kBits, bool kPaste, bool kPerson>
inline void fused_row(const float* h0, const float* h1, float l0, float l1, int64_t n, const MaskRowSinks& o) {
  FusedRow<V, U, kStats, kBits, kPaste, kPerson>(h0, h1, l0, l1, n, o).run(o);
}

// Dispatched once per call on the set of sinks (statistics, bits, paste, person map): each of the 16
// sets has its body, the post-processing's three (statistics with or without bits, paste, person
// map) and any other a caller (the tests) asks for.
template <class V, bool... kSinks>
void fused_row_for(const bool* use, const float* h0, const float* h1, float l0, float l1, int64_t n,
                   const MaskRowSinks& o) {
  if constexpr (sizeof...(kSinks) == 4) {
    constexpr int U = V::W == 16 ? 4 : 8;  // 64 lanes a block
    fused_row<V, U, kSinks...>(h0, h1, l0, l1, n, o);
  } else if (use[sizeof...(kSinks)]) {
    fused_row_for<V, kSinks..., true>(use, h0, h1, l0, l1, n, o);
  } else {
    fused_row_for<V, kSinks..., false>(use, h0, h1, l0, l1, n, o);
  }
}

template <class V>
void mask_row_fused_simd(const float* h0, const float* h1, float l0, float l1, int64_t n, const MaskRowSinks* out) {
  const bool use[4] = {out->count != nullptr, out->bits != nullptr, out->cat != nullptr, out->best != nullptr};
  fused_row_for<V>(use, h0, h1, l0, l1, n, *out);
}

// kernels.h's and_popcount: V::W / 2 words at a time (V::popcnt_and64: per-byte counts from a
// nibble table, summed per 64-bit lane), the row's last words one by one.
template <class V>
void and_popcount_simd(const uint64_t* a, const uint64_t* b, int64_t ld, int64_t rows, int64_t n, int64_t* count) {
  constexpr int64_t K = V::W / 2;  // 64-bit words per vector
  typename V::I acc = V::zero64();
  int64_t c = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t *x = a + r * ld, *y = b + r * ld;
    int64_t w = 0;
    for (; w + K <= n; w += K) acc = V::add64(acc, V::popcnt_and64(x + w, y + w));
    for (; w < n; ++w) c += __builtin_popcountll(x[w] & y[w]);
  }
  *count += c + V::hsum64(acc);
}

}  // namespace
}  // namespace m2fp::kern
