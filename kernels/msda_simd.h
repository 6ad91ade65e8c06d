// kernels/msda_simd.h: the SIMD body of the fused multi-scale deformable attention, shared by the
// AVX2 (V8) and AVX-512 (V16) paths. Semantics: KernelTable::ms_deform_attn in kernels/kernels.h;
// the scalar reference is kernels/ref/msda.cpp and this body performs the same float operations
// in the same order (only exp differs: V::exp instead of std::exp).
//
// Per query, three stages (heads x L x P = 96 samples in the model):
//   1. attention weights aw[heads, L*P] = softmax of the logits of each head (max-subtracted).
//   2. vectorised over the 2*heads*L*P interleaved (x, y) offsets: sampling location
//      loc = ref + off / size, pixel coordinate computed exactly as torch's grid_sample CPU kernel
//      does, g = 2*loc - 1, pix = fma(g + 1, size/2, -0.5); then per coordinate the two bilinear
//      taps: weights (1 - frac, frac) zeroed when the tap is outside [0, size), and clamped
//      in-range row offsets (so an excluded tap reads a valid row with weight 0); then, pairing
//      each y entry with its x entry in registers (dup_odd), the 4 corner weights aw*wy*wx and
//      the 4 corner row offsets (in elements of value, the head's channels included) of every sample.
//   3. per head, per chunk of channels held in registers: for each of the L*P samples, the four
//      corner rows of value are read once and accumulated with their weights (FMA), prefetching
//      the corners M2FP_MSDA_PREFETCH samples ahead: across heads, and into the next query, whose
//      stages 1 and 2 run before this query's stage 3 (two sets of tables). On AVX-512, where a
//      head's channels fill the registers of one pass (the model's 32), M2FP_MSDA_HEADS (2) heads
//      go through one pass side by side, each channel summed in the same order: twice the
//      independent FMA chains (bench_kernels MsDeformAttn on one core, 2026-12-07: fp32 18.3 ->
//      16.7 ms, bf16 10.6 -> 10.1 ms, best of 6; 4 heads were no faster).
// msda_chunk<V, uint16_t> reads bfloat16 values (KernelTable::ms_deform_attn_bf16): stage 3 loads
// 2W of a row's values at once, split by parity into two fp32 vectors (V::load_bf16x2: exact), keeps
// even and odd channels in separate accumulators and puts them back in order at the end
// (V::interleave) and rounds them to bfloat16 (V::store_bf16); a head's channels left over (fewer
// than 2W) go through scalar code with the reference's operations. Per channel the operations are
// those of the fp32 path, then the rounding.
// Include after the ISA's simd_ops.h; everything stays in an anonymous namespace (internal
// linkage), see kernels/avx2/simd_ops.h.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/internal.h"

namespace m2fp::kern {
namespace {

#ifndef M2FP_MSDA_PREFETCH
#define M2FP_MSDA_PREFETCH 4
#endif
#ifndef M2FP_MSDA_HEADS
#define M2FP_MSDA_HEADS 2
#endif

// Stage 3 for one head and one chunk of NV vectors of channels (the last one holding tail_n
// channels when TAIL). vh = value + c0; o = out row + h*dh + c0. For sample s of the head
// (entry j = 2s of the per-query arrays): corner weights cw[c][j] (attention weight included)
// and corner row offsets cr[c][j] in elements of value (the head's first channel included),
// readable up to j + 2*M2FP_MSDA_PREFETCH (the prefetches' entries: later heads' samples, then
// the next query's), corners (y0,x0) (y0,x1) (y1,x0) (y1,x1). The upper
// and lower corner pairs go to two accumulator sets (shorter FMA dependency chains), added at
// the end; the scalar reference sums in the same order.
// NH > 1: NH whole heads side by side (no TAIL; their entries 2*LP apart in the tables, their outputs
// `ostride` channels apart), each channel's sums in the same order as alone (see msda_gather_bf16).
template <class V, int NV, bool TAIL, int NH = 1>
inline void msda_gather(const float* vh, int LP, const float* const* cw, const int32_t* const* cr,
                        float* o, int tail_n, int ostride = 0) {
  static_assert(NH == 1 || !TAIL, "heads side by side are whole heads");
  constexpr int W = V::W;
  const int hs = 2 * LP;  // table entries from one head to the next
  typename V::F a0[NH][NV], a1[NH][NV];
  for (int k = 0; k < NH; ++k)
    for (int v = 0; v < NV; ++v) a0[k][v] = V::zero(), a1[k][v] = V::zero();
  auto corner = [&](typename V::F* acc, const float* row, const float* w) {
    const typename V::F wv = V::bcast(w);
    for (int v = 0; v < NV; ++v) {
      const typename V::F x = (TAIL && v == NV - 1) ? V::load_n(row + v * W, tail_n) : V::load(row + v * W);
      acc[v] = V::fma(wv, x, acc[v]);
    }
  };
  for (int j = 0; j < 2 * LP; j += 2) {
    if constexpr (M2FP_MSDA_PREFETCH > 0) {
      for (int k = 0; k < NH; ++k) {
        const int jp = j + k * hs + 2 * M2FP_MSDA_PREFETCH;  // may be a later head's or the next query's sample
        for (int c = 0; c < 4; ++c)
          for (int v = 0; v < NV * W; v += 16) V::prefetch(vh + cr[c][jp] + v);
      }
    }
    for (int k = 0; k < NH; ++k) {
      const int jk = j + k * hs;
      corner(a0[k], vh + cr[0][jk], cw[0] + jk);
      corner(a0[k], vh + cr[1][jk], cw[1] + jk);
      corner(a1[k], vh + cr[2][jk], cw[2] + jk);
      corner(a1[k], vh + cr[3][jk], cw[3] + jk);
    }
  }
  for (int k = 0; k < NH; ++k)
    for (int v = 0; v < NV; ++v) {
      const typename V::F r = V::add(a0[k][v], a1[k][v]);
      if (TAIL && v == NV - 1) V::store_n(o + k * ostride + v * W, r, tail_n);
      else V::store(o + k * ostride + v * W, r);
    }
}

// msda_gather on bfloat16 values: NP pairs of vectors (2*NP*W channels) per pass, each pair one
// load of 2W values split into even and odd channels; the same accumulation order per channel.
// NH heads side by side (their entries 2*LP apart in the tables, their outputs `ostride` channels
// apart), each channel's sums in the same order as alone: more independent FMA chains in flight (a
// head's 2*LP corner FMAs into one accumulator are a dependency chain; one head at a time left the
// core waiting on them).
template <class V, int NP, int NH = 1>
inline void msda_gather_bf16(const uint16_t* vh, int LP, const float* const* cw, const int32_t* const* cr,
                             uint16_t* o, int ostride = 0) {
  constexpr int W = V::W;
  const int hs = 2 * LP;  // table entries from one head to the next
  typename V::F e0[NH][NP], o0[NH][NP], e1[NH][NP], o1[NH][NP];
  for (int k = 0; k < NH; ++k)
    for (int p = 0; p < NP; ++p) e0[k][p] = o0[k][p] = e1[k][p] = o1[k][p] = V::zero();
  auto corner = [&](typename V::F* ae, typename V::F* ao, const uint16_t* row, const float* w) {
    const typename V::F wv = V::bcast(w);
    for (int p = 0; p < NP; ++p) {
      typename V::F ev, od;
      V::load_bf16x2(row + p * 2 * W, &ev, &od);
      ae[p] = V::fma(wv, ev, ae[p]);
      ao[p] = V::fma(wv, od, ao[p]);
    }
  };
  for (int j = 0; j < 2 * LP; j += 2) {
    if constexpr (M2FP_MSDA_PREFETCH > 0) {
      for (int k = 0; k < NH; ++k) {
        const int jp = j + k * hs + 2 * M2FP_MSDA_PREFETCH;  // may be a later head's or the next query's sample
        for (int c = 0; c < 4; ++c)
          for (int v = 0; v < NP * 2 * W; v += 32) V::prefetch(vh + cr[c][jp] + v);  // 64 bytes apart
      }
    }
    for (int k = 0; k < NH; ++k) {
      const int jk = j + k * hs;
      corner(e0[k], o0[k], vh + cr[0][jk], cw[0] + jk);
      corner(e0[k], o0[k], vh + cr[1][jk], cw[1] + jk);
      corner(e1[k], o1[k], vh + cr[2][jk], cw[2] + jk);
      corner(e1[k], o1[k], vh + cr[3][jk], cw[3] + jk);
    }
  }
  for (int k = 0; k < NH; ++k)
    for (int p = 0; p < NP; ++p) {
      typename V::F lo, hi;
      V::interleave(V::add(e0[k][p], e1[k][p]), V::add(o0[k][p], o1[k][p]), &lo, &hi);
      V::store_bf16(o + k * ostride + p * 2 * W, lo, hi);
    }
}

// Channels [c0, c1) of a head one at a time, as the reference computes each (std::fma, value
// widened exactly): the channels of a bfloat16 head that do not fill a pair of vectors.
inline void msda_gather_scalar(const uint16_t* vh, int LP, const float* const* cw, const int32_t* const* cr,
                               uint16_t* o, int c0, int c1) {
  auto widen = [](uint16_t x) {
    const uint32_t u = (uint32_t)x << 16;
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  };
  for (int c = c0; c < c1; ++c) {
    float a0 = 0.f, a1 = 0.f;
    for (int j = 0; j < 2 * LP; j += 2) {
      a0 = std::fma(cw[1][j], widen(vh[cr[1][j] + c]), std::fma(cw[0][j], widen(vh[cr[0][j] + c]), a0));
      a1 = std::fma(cw[3][j], widen(vh[cr[3][j] + c]), std::fma(cw[2][j], widen(vh[cr[2][j] + c]), a1));
    }
    const float r = a0 + a1;
    uint32_t u;
    std::memcpy(&u, &r, sizeof u);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, nan = (u >> 16) | 0x40u;
    o[c] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  }
}

// The last, partial chunk of channels: rem in [1, NVMAX*W) channels -> ceil(rem/W) vectors.
template <class V, int NV>
inline void msda_gather_rest(int nv, int tail_n, const float* vh, int LP, const float* const* cw,
                             const int32_t* const* cr, float* o) {
  if constexpr (NV >= 1) {
    if (nv == NV) {
      if (tail_n == V::W) msda_gather<V, NV, false>(vh, LP, cw, cr, o, tail_n);
      else msda_gather<V, NV, true>(vh, LP, cw, cr, o, tail_n);
      return;
    }
    msda_gather_rest<V, NV - 1>(nv, tail_n, vh, LP, cw, cr, o);
  }
}

// The per-call tables of msda_chunk (see there) and one query's corner tables.
struct MsdaTables {
  const float *t_size, *t_half, *t_hi, *t_last;
  float *aw, *aw2;
  const int32_t *t_step, *t_base;
  int heads, LP, n1p, n2, n2p;
};
struct MsdaCorners {
  float* cw[4];    // [4][n2t] corner weights (attention weight included)
  int32_t* cr[4];  // [4][n2t] corner row offsets (the head's channels included)
};

// Stages 1 and 2 of one query (logits lg, offsets off, reference point (rx, ry)) into t. The
// tables' pointers are copied into locals first: the integer stores may alias anything, and the
// locals (whose addresses are never taken) stay in registers.
template <class V>
inline void msda_prepare(const MsdaTables& tb, const float* lg, const float* off, float rx, float ry,
                         MsdaCorners& t) {
  using F = typename V::F;
  using I = typename V::I;
  constexpr int W = V::W;
  const float *t_size = tb.t_size, *t_half = tb.t_half, *t_hi = tb.t_hi, *t_last = tb.t_last;
  float *aw = tb.aw, *aw2 = tb.aw2;
  const int32_t *t_step = tb.t_step, *t_base = tb.t_base;
  const int heads = tb.heads, LP = tb.LP, n1p = tb.n1p, n2 = tb.n2, n2p = tb.n2p;
  float *const cw0 = t.cw[0], *const cw1 = t.cw[1], *const cw2 = t.cw[2], *const cw3 = t.cw[3];
  int32_t *const cr0 = t.cr[0], *const cr1 = t.cr[1], *const cr2 = t.cr[2], *const cr3 = t.cr[3];
  // 1. attention weights: softmax over the L*P logits of each head.
  for (int h = 0; h < heads; ++h) {
    const float* x = lg + h * LP;
    float mx = x[0];
    for (int s = 1; s < LP; ++s) mx = std::max(mx, x[s]);
    for (int s = 0; s < LP; ++s) aw[h * LP + s] = x[s] - mx;
  }
  for (int j = 0; j < n1p; j += W) V::store(aw + j, V::exp(V::load(aw + j)));
  for (int h = 0; h < heads; ++h) {
    const float* w = aw + h * LP;
    float sum = 0.f;
    for (int s = 0; s < LP; ++s) sum += w[s];
    const float inv = 1.f / sum;
    for (int s = 0; s < LP; ++s) aw2[2 * (h * LP + s)] = aw2[2 * (h * LP + s) + 1] = w[s] * inv;
  }

  // 2. sampling coordinates, bilinear taps and corner weights/rows, vectorised over the
  //    interleaved (x, y) entries; a sample's results land in its x (even) entry.
  const F one = V::set1(1.f), two = V::set1(2.f), zero = V::zero();
  const F lo_clamp = V::set1(-2.f), mhalf = V::set1(-0.5f);
  const F rv = V::pair(rx, ry);
  for (int j = 0; j < n2p; j += W) {
    const F o = (j + W <= n2) ? V::load(off + j) : V::load_n(off + j, n2 - j);
    const F size = V::load(t_size + j), last = V::load(t_last + j);
    const F loc = V::add(rv, V::div(o, size));
    const F g = V::sub(V::mul(two, loc), one);
    F x = V::fma(V::add(g, one), V::load(t_half + j), mhalf);
    x = V::max(x, lo_clamp);  // NaN -> -2 (max returns its second operand)
    x = V::min(x, V::load(t_hi + j));
    const F fl = V::floor(x);
    const F fr = V::sub(x, fl);
    const F fl1 = V::add(fl, one);
    // tap weights (0 outside the map) and clamped in-range offsets of the two taps
    const F wlo = V::where(V::mand(V::ge(fl, zero), V::le(fl, last)), V::sub(one, fr));
    const F whi = V::where(V::mand(V::ge(fl1, zero), V::le(fl1, last)), fr);
    const I step = V::loadi(t_step + j), base = V::loadi(t_base + j);
    const I ilo = V::addi(base, V::muli(V::cvtt(V::max(V::min(fl, last), zero)), step));
    const I ihi = V::addi(base, V::muli(V::cvtt(V::max(V::min(fl1, last), zero)), step));
    // corners: weight a*wy*wx ((a*wy) first, as the reference), row offset y part + x part
    const F a = V::load(aw2 + j);
    const F ay0 = V::mul(a, V::dup_odd(wlo)), ay1 = V::mul(a, V::dup_odd(whi));
    V::store(cw0 + j, V::mul(ay0, wlo));
    V::store(cw1 + j, V::mul(ay0, whi));
    V::store(cw2 + j, V::mul(ay1, wlo));
    V::store(cw3 + j, V::mul(ay1, whi));
    const I ry0 = V::dup_odd_i(ilo), ry1 = V::dup_odd_i(ihi);
    V::storei(cr0 + j, V::addi(ry0, ilo));
    V::storei(cr1 + j, V::addi(ry0, ihi));
    V::storei(cr2 + j, V::addi(ry1, ilo));
    V::storei(cr3 + j, V::addi(ry1, ihi));
  }
}

template <class V, class T>
void msda_chunk(const T* value, const int64_t* shapes, const int64_t* level_start, int L,
                int P, int heads, int dh, const float* ref, const float* offsets,
                const float* logits, int64_t ld_qp, T* out, int64_t q0, int64_t q1) {
  constexpr int W = V::W;
  constexpr int NVMAX = 32 / W;  // channels held in registers per pass: 32 (one model head)
  // On AVX-512 (32 registers; AVX2's 16 leave no room) NH heads go through one pass side by side
  // when a head's channels fill exactly one pass (NVMAX fp32 vectors, NVMAX / 2 bf16 pairs).
  constexpr int NH = W >= 16 ? M2FP_MSDA_HEADS : 1;
  static_assert(NH == 1 || NVMAX % 2 == 0, "a pass of bf16 pairs holds the channels of a pass of fp32 vectors");
  const bool whole_heads = NH > 1 && dh == NVMAX * W;
  if (q1 <= q0 || heads <= 0 || dh <= 0) return;
  const int64_t ld = (int64_t)heads * dh;  // value / out row: [heads*dh]
  int64_t len_in = 0;
  for (int l = 0; l < L; ++l) len_in += shapes[2 * l] * shapes[2 * l + 1];
  if (L <= 0 || P <= 0 || len_in <= 0) {  // nothing to sample: zeros
    for (int64_t q = q0; q < q1; ++q) std::memset(out + q * ld, 0, sizeof(T) * ld);
    return;
  }
  if (len_in * ld >= ((int64_t)1 << 31)) {  // row offsets would overflow int32 (> 8 GB of value)
    if constexpr (std::is_same_v<T, float>)
      ::m2fp::kern::ref::ms_deform_attn(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp,
                                        out, q0, q1);
    else
      ::m2fp::kern::ref::ms_deform_attn_bf16(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits,
                                             ld_qp, out, q0, q1);
    return;
  }
  const int LP = L * P, n1 = heads * LP, n2 = 2 * n1;
  const int n1p = (n1 + W - 1) / W * W, n2p = (n2 + W - 1) / W * W;
  // A query's corner tables hold n2 entries and then the first 2*M2FP_MSDA_PREFETCH entries of the
  // next query's (its first samples), so that stage 3 prefetches a fixed distance ahead across heads
  // and queries: the tables of query q + 1 are made before the gathers of query q (two sets).
  const int pf_tail = 2 * std::max(M2FP_MSDA_PREFETCH, 0);
  const int n2t = std::max(n2p, n2 + pf_tail);  // length of one corner table

  // Per-call tables over the interleaved coordinates j = ((h*L + l)*P + p)*2 + (0 x | 1 y),
  // padded to n2p: size (W_l or H_l), size/2, upper clamp size+1, size-1 (float); the step of
  // one pixel and the first row, in elements of value (x: ld and the head's first channel h*dh;
  // y: W_l*ld and level_start[l]*ld), so that a corner's row offset points at its head's channels.
  std::vector<float> fbuf((size_t)4 * n2p + n1p + n2p + 8 * (size_t)n2t);
  std::vector<int32_t> ibuf((size_t)2 * n2p + 8 * (size_t)n2t);
  float* t_size = fbuf.data();      // [n2p]
  float* t_half = t_size + n2p;     // [n2p]
  float* t_hi = t_half + n2p;       // [n2p]
  float* t_last = t_hi + n2p;       // [n2p]
  float* aw = t_last + n2p;         // [n1p] attention weights of one query
  float* aw2 = aw + n1p;            // [n2p] the same, repeated for the x and y entries
  int32_t* t_step = ibuf.data();    // [n2p]
  int32_t* t_base = t_step + n2p;   // [n2p]
  MsdaCorners sets[2];
  for (int k = 0; k < 2; ++k)
    for (int c = 0; c < 4; ++c) {
      sets[k].cw[c] = aw2 + n2p + (size_t)(4 * k + c) * n2t;
      sets[k].cr[c] = t_base + n2p + (size_t)(4 * k + c) * n2t;
    }
  for (int j = 0; j < n2p; ++j) {
    if (j >= n2) {  // padding: harmless values, never used
      t_size[j] = 1.f, t_half[j] = 0.5f, t_hi[j] = 2.f, t_last[j] = 0.f, t_step[j] = 0, t_base[j] = 0;
      aw2[j] = 0.f;
      continue;
    }
    const int l = (j / 2 / P) % L, h = j / (2 * LP);
    const int64_t Hl = shapes[2 * l], Wl = shapes[2 * l + 1];
    const bool empty = Hl * Wl == 0;
    const float size = (float)((j & 1) ? Hl : Wl);
    t_size[j] = size;
    t_half[j] = size / 2;
    t_hi[j] = size + 1.f;
    t_last[j] = size - 1.f;
    t_step[j] = empty ? 0 : (int32_t)(((j & 1) ? Wl : 1) * ld);
    t_base[j] = (j & 1) ? (empty ? 0 : (int32_t)(level_start[l] * ld)) : h * dh;
  }
  for (int j = n1; j < n1p; ++j) aw[j] = -100.f;  // padding lanes of the exp pass

  const MsdaTables tb{t_size, t_half, t_hi, t_last, aw, aw2, t_step, t_base, heads, LP, n1p, n2, n2p};
  auto prepare = [&](int64_t q, MsdaCorners& t) {
    msda_prepare<V>(tb, logits + q * ld_qp, offsets + q * ld_qp, ref[2 * q], ref[2 * q + 1], t);
  };
  prepare(q0, sets[0]);
  for (int64_t q = q0; q < q1; ++q) {
    MsdaCorners& t = sets[(q - q0) & 1];
    if (q + 1 < q1) {  // the next query's tables, and its first samples after this one's for prefetching
      MsdaCorners& next = sets[(q + 1 - q0) & 1];
      prepare(q + 1, next);
      for (int c = 0; c < 4; ++c) std::memcpy(t.cr[c] + n2, next.cr[c], sizeof(int32_t) * pf_tail);
    } else {
      for (int c = 0; c < 4; ++c) std::memset(t.cr[c] + n2, 0, sizeof(int32_t) * pf_tail);
    }

    // 3. weighted bilinear gather, per head and chunk of channels.
    T* orow = out + q * ld;
    for (int h = 0; h < heads; ++h) {
      const int jh = 2 * h * LP;
      const float* hw[4] = {t.cw[0] + jh, t.cw[1] + jh, t.cw[2] + jh, t.cw[3] + jh};
      const int32_t* hr[4] = {t.cr[0] + jh, t.cr[1] + jh, t.cr[2] + jh, t.cr[3] + jh};
      int c0 = 0;
      if constexpr (std::is_same_v<T, float>) {
        if (whole_heads && h + NH <= heads) {
          msda_gather<V, NVMAX, false, NH>(value, LP, hw, hr, orow + h * dh, W, dh);
          h += NH - 1;
          continue;
        }
        for (; c0 + NVMAX * W <= dh; c0 += NVMAX * W)
          msda_gather<V, NVMAX, false>(value + c0, LP, hw, hr, orow + h * dh + c0, W);
        if (c0 < dh) {
          const int rem = dh - c0, nv = (rem + W - 1) / W, tail_n = rem - (nv - 1) * W;
          msda_gather_rest<V, NVMAX>(nv, tail_n, value + c0, LP, hw, hr, orow + h * dh + c0);
        }
      } else {
        constexpr int NP = NVMAX / 2 > 0 ? NVMAX / 2 : 1;  // pairs per pass: 32 channels
        if (whole_heads && h + NH <= heads) {
          msda_gather_bf16<V, NP, NH>(value, LP, hw, hr, orow + h * dh, dh);
          h += NH - 1;
          continue;
        }
        for (; c0 + NP * 2 * W <= dh; c0 += NP * 2 * W)
          msda_gather_bf16<V, NP>(value + c0, LP, hw, hr, orow + h * dh + c0);
        for (; c0 + 2 * W <= dh; c0 += 2 * W)
          msda_gather_bf16<V, 1>(value + c0, LP, hw, hr, orow + h * dh + c0);
        if (c0 < dh) msda_gather_scalar(value, LP, hw, hr, orow + h * dh, c0, dh);
      }
    }
  }
}

}  // namespace
}  // namespace m2fp::kern
