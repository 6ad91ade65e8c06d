// kernels/attention_bf16_simd.h: the SIMD body of attention with bfloat16 keys and values
// (KernelTable::attention_heads_bf16 in kernels/ops.def), shared by the AVX2 (V8) and AVX-512 (V16)
// paths; the scalar reference is in kernels/ref/attention.cpp.
//
// The layout of attention_simd.h (lanes over queries, tiles of W queries, key blocks of kAttnKB
// streamed with the online softmax, the block loop outside the tiles and heads, a block's mask
// bytes transposed once per tile, blocks excluded for a whole tile skipped), with both products
// on bf16 PAIRS: a 32-bit lane holds two bf16 (the lower half the even element), and P::dp(acc, a,
// b) adds a.hi * b.hi, then a.lo * b.lo, to each fp32 lane (VDPBF16PS, or the same two exact
// products with FMAs where the CPU lacks AVX512-BF16):
//   Qt[dh/2][W]   pairs of channels (2c, 2c+1) of bf16(scale * q), per tile and head
//   S[j]          = sum over channel pairs of dp(Qt[c/2], broadcast k_j pair (2c, 2c+1))
//   P[j]          = exp(S[j] - m_new) as in attention_simd.h (fp32; the running sum l adds these)
//   PP[j/2][W]    pairs of keys (2j, 2j+1) of bf16(P) (a missing last key: 0)
//   VB[j/2][cols] the block's v rows as key pairs (v_{2j}[c], v_{2j+1}[c]) for the call's heads'
//                 columns, built once per block for all tiles and heads
//   Ot[c]         = Ot[c] * alpha + sum over key pairs of dp(PP[j/2], broadcast VB[j/2][c])
//   out           = Ot / l
// dh must be even. Include after the ISA's simd_ops.h and attention_simd.h.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace m2fp::kern {
namespace {

// bf16(x) of a finite float, nearest even (the scalar reference's rounding).
inline uint32_t bf16_bits_rne(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
}

// S[j .. j+N) of N consecutive keys (kb = k + kb0*ldk at the head's columns).
template <class V, class P, int N>
inline void attn16_qk(const uint32_t* qt, const uint16_t* kb, int64_t ldk, int dp2, int j, float* s) {
  constexpr int W = V::W;
  typename V::F acc[N];
  for (int t = 0; t < N; ++t) acc[t] = V::zero();
  const uint16_t* kr = kb + j * ldk;
  for (int c = 0; c < dp2; ++c) {
    const typename P::I qc = P::loadp(qt + c * W);
    for (int t = 0; t < N; ++t) acc[t] = P::dp(acc[t], qc, P::bcast_pair(kr + t * ldk + 2 * c));
  }
  for (int t = 0; t < N; ++t) V::store(s + (j + t) * W, acc[t]);
}

// Ot[c0 .. c0+N) = Ot * alpha + sum over the listed key pairs of PP . VB.
template <class V, class P, int N>
inline void attn16_pv(float* ot, int c0, typename V::F alpha, const uint32_t* pp, const int* pairs, int np,
                      const uint32_t* vb, int64_t span) {
  constexpr int W = V::W;
  typename V::F acc[N];
  for (int u = 0; u < N; ++u) acc[u] = V::mul(V::load(ot + (c0 + u) * W), alpha);
  for (int t = 0; t < np; ++t) {
    const int jp = pairs[t];
    const typename P::I p = P::loadp(pp + jp * W);
    const uint32_t* vr = vb + jp * span + c0;
    for (int u = 0; u < N; ++u) acc[u] = P::dp(acc[u], p, P::bcast_u32(vr + u));
  }
  for (int u = 0; u < N; ++u) V::store(ot + (c0 + u) * W, acc[u]);
}

// One key block [kb0, kb0 + nk) for one tile and head (k at the head's columns, vb at the head's
// columns of the repacked block); with `masked`, sc.mt holds the tile's mask bytes of the block.
template <class V, class P, int KT, int CT>
inline void attention_bf16_block(const uint16_t* k, int64_t ldk, const uint32_t* vb, int64_t span, int dh,
                                 int64_t kb0, int nk, const uint32_t* qt, float* ot, float* m_io, float* l_io,
                                 bool masked, AttnScratch& sc, uint32_t* pp, int* pairs) {
  using F = typename V::F;
  constexpr int W = V::W;
  float* s = sc.s.data();
  const uint8_t* mt = sc.mt.data();
  const int dp2 = dh / 2;

  const uint16_t* kb = k + kb0 * ldk;
  int j = 0;
  for (; j + KT <= nk; j += KT) attn16_qk<V, P, KT>(qt, kb, ldk, dp2, j, s);
  for (; j < nk; ++j) attn16_qk<V, P, 1>(qt, kb, ldk, dp2, j, s);

  const F alpha = attn_block_softmax<V>(s, mt, nk, masked, m_io, l_io, [](int, F) {});
  int np = 0;
  for (int jp = 0; 2 * jp < nk; ++jp) {
    const F pe = V::load(s + 2 * jp * W);
    const F po = 2 * jp + 1 < nk ? V::load(s + (2 * jp + 1) * W) : V::zero();
    if (!V::any_nonzero(pe) && !V::any_nonzero(po)) continue;
    P::storep(pp + jp * W, P::pack(pe, po));
    pairs[np++] = jp;
  }

  int c0 = 0;
  for (; c0 + CT <= dh; c0 += CT) attn16_pv<V, P, CT>(ot, c0, alpha, pp, pairs, np, vb, span);
  for (; c0 + 4 <= dh; c0 += 4) attn16_pv<V, P, 4>(ot, c0, alpha, pp, pairs, np, vb, span);
  for (; c0 < dh; ++c0) attn16_pv<V, P, 1>(ot, c0, alpha, pp, pairs, np, vb, span);
}

// Queries [q0, q1) in tiles of W, heads [0, nh), as attention_range in attention_simd.h. Lk >= 1,
// dh even.
template <class V, class P, int KT, int CT>
void attention_bf16_range(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                          int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                          float scale, int64_t q0, int64_t q1, int nh) {
  constexpr int W = V::W;
  const int ntiles = (int)((q1 - q0 + W - 1) / W);
  const int dp2 = dh / 2;
  AttnScratch sc(ntiles, nh, dh, W);  // Ot, m, l, S, the mask rows and bytes (its qt unused)
  std::vector<uint32_t> qt((size_t)ntiles * nh * dp2 * W);
  std::vector<uint32_t> pp((size_t)(kAttnKB / 2) * W);
  const int span = nh * dh;  // the call's columns of a k/v row
  std::vector<uint32_t> vb((size_t)(kAttnKB / 2) * span);
  std::vector<int> pairs(kAttnKB / 2);
  const size_t st = (size_t)dh * W, sq = (size_t)dp2 * W;
  for (int t = 0; t < ntiles; ++t) {
    const int64_t t0 = q0 + (int64_t)t * W;
    const int nq = (int)std::min<int64_t>(W, q1 - t0);
    for (int h = 0; h < nh; ++h) {
      uint32_t* qp = qt.data() + (size_t)(t * nh + h) * sq;
      const float* qh = q + h * dh;
      for (int c = 0; c < dp2; ++c)
        for (int i = 0; i < W; ++i)
          qp[c * W + i] = i < nq ? bf16_bits_rne(qh[(t0 + i) * ldq + 2 * c] * scale) |
                                       bf16_bits_rne(qh[(t0 + i) * ldq + 2 * c + 1] * scale) << 16
                                 : 0u;
    }
    attn_tile_start(sc, W, t, t0, nq, mask, Lk);
  }
  for (int64_t kb0 = 0; kb0 < Lk; kb0 += kAttnKB) {
    const int nk = (int)std::min<int64_t>(kAttnKB, Lk - kb0);
    const int64_t next = kb0 + kAttnKB;
    const int n_next = (int)std::max<int64_t>(0, std::min<int64_t>(kAttnKB, Lk - next));
    bool packed = false;  // VB of this block (built when a tile first needs it)
    for (int t = 0; t < ntiles; ++t) {
      for (int j = t * n_next / ntiles; j < (t + 1) * n_next / ntiles; ++j)
        for (int c = 0; c < span; c += 32) V::prefetch(k + (next + j) * ldk + c), V::prefetch(v + (next + j) * ldv + c);
      const bool masked = sc.masked[t] != 0;
      if (masked && attention_block_mask<V>(kb0, nk, sc.row.data() + t * W, sc.real.data() + t * W, sc)) continue;
      if (!packed) {
        for (int jp = 0; 2 * jp < nk; ++jp) {
          const uint16_t* v0 = v + (kb0 + 2 * jp) * ldv;
          uint32_t* d = vb.data() + (size_t)jp * span;
          if (2 * jp + 1 < nk) {
            const uint16_t* v1 = v0 + ldv;
            for (int c = 0; c < span; ++c) d[c] = (uint32_t)v0[c] | (uint32_t)v1[c] << 16;
          } else {
            for (int c = 0; c < span; ++c) d[c] = v0[c];
          }
        }
        packed = true;
      }
      for (int h = 0; h < nh; ++h) {
        const size_t th = (size_t)(t * nh + h);
        attention_bf16_block<V, P, KT, CT>(k + h * dh, ldk, vb.data() + h * dh, span, dh, kb0, nk,
                                           qt.data() + th * sq, sc.ot.data() + th * st, sc.m.data() + th * W,
                                           sc.l.data() + th * W, masked, sc, pp.data(), pairs.data());
      }
    }
  }
  attn_write_out<V>(sc, dh, q0, q1, out, ldo);
}

// Entry for one ISA's table: the checks of ops.def (empty ranges, no keys: zeros).
template <class V, class P, int KT, int CT>
void attention_bf16_entry(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                          int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                          float scale, int64_t q0, int64_t q1, int nh) {
  if (q1 <= q0 || dh <= 0 || nh <= 0) return;
  if (Lk <= 0) {
    for (int64_t i = q0; i < q1; ++i)
      for (int h = 0; h < nh; ++h) std::memset(out + i * ldo + h * dh, 0, sizeof(float) * dh);
    return;
  }
  attention_bf16_range<V, P, KT, CT>(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, nh);
}

}  // namespace
}  // namespace m2fp::kern
