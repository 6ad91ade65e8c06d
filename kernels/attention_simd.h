// kernels/attention_simd.h: the SIMD body of attention over one or more heads (KernelTable::
// attention_head and attention_heads in kernels/ops.def), shared by the AVX2 (V8) and AVX-512
// (V8, V16) paths; the scalar reference is kernels/ref/attention.cpp.
//
// Layout: the vector lanes run over QUERIES. Tiles of W queries (8 or 16) are processed against
// the keys in blocks of KB = 64 keys, with the online (streaming) softmax; the key blocks are the
// outer loop, the tiles of the call the next and the call's heads the inner one, so each block of
// k/v rows (every head's columns, contiguous when the heads are) is fetched once per call (and
// prefetched while the previous block is processed), and each tile's mask bytes of the block are
// transposed once for all the heads:
//   Qt[dh][W]     = scale * q of the tile, transposed once per tile
//   S[KB][W]      = scores of the block: S[j] = sum_c k[j][c] * Qt[c] (k[j][c] broadcast, FMA
//                   over c in order, the same operation sequence as the reference: the scores
//                   are bit-identical); KT keys share each loaded Qt[c] (register block)
//   masking       : the W mask rows of the block are transposed to key-major bytes MT[KB][W]
//                   (8x8 byte transposes, once per tile and block for all heads) and excluded
//                   lanes get -inf; a block excluded for every query of the tile is skipped for
//                   every head (exactly: it would add 0)
//   m, l [W]      = running max and running sum; m_new = max(m, max_j S[j]),
//                   alpha = exp(m - m_new), P[j] = exp(S[j] - m_new), l = l*alpha + sum_j P[j]
//   Ot[dh][W]     = Ot*alpha + sum_j v[j][c] * P[j] (v[j][c] broadcast; CT channels in registers
//                   share each loaded P[j]); keys whose P is 0 in every lane are skipped
//   out[i][c]     = Ot[c][i] / l[i]
// Per lane (query) and head the operations and their order do not depend on the tiling or on how
// many heads a call takes: one call over nh heads gives bit for bit what nh one-head calls give.
// m starts at -FLT_MAX (finite), so a query whose keys so far are all excluded keeps l = 0 and
// alpha = exp(0) = 1 without any -inf - -inf. A query whose mask row excludes every key attends
// to all keys (Mask2Former's rule). exp is V::exp (simd_ops.h: < 1 ulp measured, 0 below -87.34).
// Include after the ISA's simd_ops.h (anonymous namespace, see kernels/avx2/simd_ops.h).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace m2fp::kern {
namespace {

constexpr int kAttnKB = 64;  // keys per block

// 8 mask rows x 8 keys (rows[r] + j0 .. + 8) -> dst[t*dst_stride + r], key-major bytes (SSE2).
inline void transpose8x8_u8(const uint8_t* const* rows, int64_t j0, uint8_t* dst, int dst_stride) {
  __m128i a[8];
  for (int r = 0; r < 8; ++r) a[r] = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rows[r] + j0));
  const __m128i b0 = _mm_unpacklo_epi8(a[0], a[1]), b1 = _mm_unpacklo_epi8(a[2], a[3]);
  const __m128i b2 = _mm_unpacklo_epi8(a[4], a[5]), b3 = _mm_unpacklo_epi8(a[6], a[7]);
  const __m128i c0 = _mm_unpacklo_epi16(b0, b1), c1 = _mm_unpackhi_epi16(b0, b1);  // keys 0-3 / 4-7, rows 0-3
  const __m128i c2 = _mm_unpacklo_epi16(b2, b3), c3 = _mm_unpackhi_epi16(b2, b3);  // keys 0-3 / 4-7, rows 4-7
  const __m128i d[4] = {_mm_unpacklo_epi32(c0, c2), _mm_unpackhi_epi32(c0, c2),
                        _mm_unpacklo_epi32(c1, c3), _mm_unpackhi_epi32(c1, c3)};  // keys (0,1) (2,3) (4,5) (6,7)
  for (int m = 0; m < 4; ++m) {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + (2 * m) * dst_stride), d[m]);
    _mm_storeh_pd(reinterpret_cast<double*>(dst + (2 * m + 1) * dst_stride), _mm_castsi128_pd(d[m]));
  }
}

// State of the query tiles of one call (scratch in L1/L2): per tile and head Qt and Ot [dh][W],
// the running max and sum [W]; per block S [KB][W], MT [KB][W] bytes and the list of keys with
// a non-zero probability in some lane. Index of (tile t, head h): t*nh + h.
struct AttnScratch {
  int ntiles, nh;
  std::vector<float> qt, ot, m, l, s;
  std::vector<uint8_t> mt, zeros, ones;
  std::vector<int> keys;
  std::vector<const uint8_t*> row;  // [ntiles][W] mask row per lane
  std::vector<uint8_t> real, masked;  // [ntiles][W], [ntiles]
  AttnScratch(int ntiles, int nh, int dh, int W)
      : ntiles(ntiles), nh(nh), qt((size_t)ntiles * nh * dh * W), ot((size_t)ntiles * nh * dh * W),
        m((size_t)ntiles * nh * W), l((size_t)ntiles * nh * W), s((size_t)kAttnKB * W),
        mt((size_t)kAttnKB * W), zeros(kAttnKB, 0), ones(kAttnKB, 1), keys(kAttnKB),
        row((size_t)ntiles * W), real((size_t)ntiles * W), masked(ntiles) {}
};

// Tile t's running maxima (-FLT_MAX, every head) and mask rows per lane: the real row, or zeros
// (no mask / fully masked row: attend to all keys), or ones for lanes past nq (so that they never
// prevent skipping a block). t0: the tile's first query, nq its queries.
inline void attn_tile_start(AttnScratch& sc, int W, int t, int64_t t0, int nq, const uint8_t* mask,
                            int64_t Lk) {
  std::fill(sc.m.begin() + (size_t)t * sc.nh * W, sc.m.begin() + (size_t)(t + 1) * sc.nh * W, -FLT_MAX);
  for (int i = 0; i < W; ++i) {
    sc.real[t * W + i] = 0;
    sc.row[t * W + i] = i < nq ? sc.zeros.data() : sc.ones.data();
    if (mask && i < nq) {
      const uint8_t* r = mask + (t0 + i) * Lk;
      if (std::memchr(r, 0, (size_t)Lk)) sc.row[t * W + i] = r, sc.real[t * W + i] = 1, sc.masked[t] = 1;
    }
  }
}

// out = Ot / l, every tile and head of queries [q0, q1), transposed back to rows.
template <class V>
inline void attn_write_out(AttnScratch& sc, int dh, int64_t q0, int64_t q1, float* out, int64_t ldo) {
  constexpr int W = V::W;
  const size_t st = (size_t)dh * W;
  for (int t = 0; t < sc.ntiles; ++t) {
    const int64_t t0 = q0 + (int64_t)t * W;
    const int nq = (int)std::min<int64_t>(W, q1 - t0);
    for (int h = 0; h < sc.nh; ++h) {
      const size_t th = (size_t)(t * sc.nh + h);
      float* ot = sc.ot.data() + th * st;
      const typename V::F inv = V::div(V::set1(1.f), V::load(sc.l.data() + th * W));
      for (int c = 0; c < dh; ++c) V::store(ot + c * W, V::mul(V::load(ot + c * W), inv));
      for (int i = 0; i < nq; ++i) {
        float* o = out + (t0 + i) * ldo + h * dh;
        for (int c = 0; c < dh; ++c) o[c] = ot[c * W + i];
      }
    }
  }
}

// Ot[c0 .. c0+N) += sum_t v[keys[t]][c] * P[keys[t]], after scaling by alpha (vb = v + kb0*ldv).
template <class V, int N>
inline void attn_pv(float* ot, int c0, typename V::F alpha, const float* s, const int* keys, int nk,
                    const float* vb, int64_t ldv) {
  constexpr int W = V::W;
  typename V::F acc[N];
  for (int u = 0; u < N; ++u) acc[u] = V::mul(V::load(ot + (c0 + u) * W), alpha);
  for (int t = 0; t < nk; ++t) {
    const int j = keys[t];
    const typename V::F p = V::load(s + j * W);
    const float* vr = vb + j * ldv + c0;
    for (int u = 0; u < N; ++u) acc[u] = V::fma(V::bcast(vr + u), p, acc[u]);
  }
  for (int u = 0; u < N; ++u) V::store(ot + (c0 + u) * W, acc[u]);
}

// S[j .. j+N) for N consecutive keys of the block (kb = k + kb0*ldk).
template <class V, int N>
inline void attn_qk(const float* qt, const float* kb, int64_t ldk, int dh, int j, float* s) {
  constexpr int W = V::W;
  typename V::F acc[N];
  for (int t = 0; t < N; ++t) acc[t] = V::zero();
  const float* kr = kb + j * ldk;
  for (int c = 0; c < dh; ++c) {
    const typename V::F qc = V::load(qt + c * W);
    for (int t = 0; t < N; ++t) acc[t] = V::fma(V::bcast(kr + t * ldk + c), qc, acc[t]);
  }
  for (int t = 0; t < N; ++t) V::store(s + (j + t) * W, acc[t]);
}

// The online-softmax step of one key block for one tile: the scores S[j] (W lanes each) masked
// (-inf where MT excludes a key), the running maximum m and sum l updated, S[j] replaced by the
// probabilities exp(S[j] - m_new); `on_prob(j, p)` sees each key's probabilities as they are made.
// Returns alpha = exp(m - m_new), the factor the tile's accumulated outputs take.
template <class V, class OnProb>
inline typename V::F attn_block_softmax(float* s, const uint8_t* mt, int nk, bool masked, float* m_io,
                                        float* l_io, OnProb&& on_prob) {
  using F = typename V::F;
  constexpr int W = V::W;
  const F neg_inf = V::set1(-INFINITY);
  F bm = neg_inf;
  for (int j = 0; j < nk; ++j) {
    F sj = V::load(s + j * W);
    if (masked) {
      sj = V::select(V::bytes_nonzero(mt + j * W), neg_inf, sj);
      V::store(s + j * W, sj);
    }
    bm = V::max(bm, sj);
  }
  const F m = V::load(m_io);
  const F m_new = V::max(bm, m);
  const F alpha = V::exp(V::sub(m, m_new));
  V::store(m_io, m_new);
  F ls = V::zero();
  for (int j = 0; j < nk; ++j) {
    const F p = V::exp(V::sub(V::load(s + j * W), m_new));
    V::store(s + j * W, p);
    ls = V::add(ls, p);
    on_prob(j, p);
  }
  V::store(l_io, V::fma(V::load(l_io), alpha, ls));
  return alpha;
}

// The key-major mask bytes MT of key block [kb0, kb0 + nk) for one tile (sc.mt); returns whether
// every lane excludes every key of the block (the block is then skipped for all heads).
template <class V>
inline bool attention_block_mask(int64_t kb0, int nk, const uint8_t* const* row, const uint8_t* real,
                                 AttnScratch& sc) {
  constexpr int W = V::W;
  uint8_t* mt = sc.mt.data();  // [KB][W]
  const uint8_t* src[W];
  for (int i = 0; i < W; ++i) src[i] = real[i] ? row[i] + kb0 : row[i];
  int j = 0;
  for (; j + 8 <= nk; j += 8)
    for (int g = 0; g < W; g += 8) transpose8x8_u8(src + g, j, mt + j * W + g, W);
  for (; j < nk; ++j)
    for (int i = 0; i < W; ++i) mt[j * W + i] = src[i][j];
  __m128i mn = _mm_set1_epi8(-1);
  int b = 0;
  for (; b + 16 <= nk * W; b += 16)
    mn = _mm_min_epu8(mn, _mm_loadu_si128(reinterpret_cast<const __m128i*>(mt + b)));
  bool all_excluded = _mm_movemask_epi8(_mm_cmpeq_epi8(mn, _mm_setzero_si128())) == 0;
  for (; b < nk * W && all_excluded; ++b) all_excluded = mt[b] != 0;
  return all_excluded;
}

// One key block [kb0, kb0 + nk) for one tile of queries and one head (k, v at the head's
// columns); with `masked`, sc.mt holds the tile's mask bytes of the block.
template <class V, int KT, int CT>
inline void attention_block(const float* k, int64_t ldk, const float* v, int64_t ldv, int dh,
                            int64_t kb0, int nk, const float* qt, float* ot, float* m_io,
                            float* l_io, bool masked, AttnScratch& sc) {
  using F = typename V::F;
  float* s = sc.s.data();            // [KB][W]
  const uint8_t* mt = sc.mt.data();  // [KB][W]
  int* keys = sc.keys.data();        // [KB]

  // scores S[j] of the block
  const float* kb = k + kb0 * ldk;
  int j = 0;
  for (; j + KT <= nk; j += KT) attn_qk<V, KT>(qt, kb, ldk, dh, j, s);
  for (; j < nk; ++j) attn_qk<V, 1>(qt, kb, ldk, dh, j, s);

  // mask, block max, rescale, probabilities (and the keys some lane gives weight)
  int nkeys = 0;
  const F alpha = attn_block_softmax<V>(s, mt, nk, masked, m_io, l_io, [&](int jj, F p) {
    if (V::any_nonzero(p)) keys[nkeys++] = jj;
  });

  // Ot = Ot*alpha + sum_j v[j] P[j]
  const float* vb = v + kb0 * ldv;
  int c0 = 0;
  for (; c0 + CT <= dh; c0 += CT) attn_pv<V, CT>(ot, c0, alpha, s, keys, nkeys, vb, ldv);
  for (; c0 + 4 <= dh; c0 += 4) attn_pv<V, 4>(ot, c0, alpha, s, keys, nkeys, vb, ldv);
  for (; c0 < dh; ++c0) attn_pv<V, 1>(ot, c0, alpha, s, keys, nkeys, vb, ldv);
}

// Queries [q0, q1) in tiles of W, heads [0, nh) (head h at columns h*dh of q, k, v and out): for
// each key block, every tile in turn and, for each tile, every head, so a block of k and v rows is
// read from memory once per call and reused by all tiles from cache, and a tile's mask bytes of
// the block are transposed once for all heads. Lk >= 1.
template <class V, int KT, int CT>
void attention_range(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                     int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                     float scale, int64_t q0, int64_t q1, int nh = 1) {
  constexpr int W = V::W;
  const int ntiles = (int)((q1 - q0 + W - 1) / W);
  AttnScratch sc(ntiles, nh, dh, W);
  const size_t st = (size_t)dh * W;  // floats of Qt or Ot per (tile, head)
  for (int t = 0; t < ntiles; ++t) {
    const int64_t t0 = q0 + (int64_t)t * W;
    const int nq = (int)std::min<int64_t>(W, q1 - t0);
    for (int h = 0; h < nh; ++h) {
      float* qt = sc.qt.data() + (size_t)(t * nh + h) * st;
      const float* qh = q + h * dh;
      for (int c = 0; c < dh; ++c)
        for (int i = 0; i < W; ++i) qt[c * W + i] = i < nq ? qh[(t0 + i) * ldq + c] * scale : 0.f;
    }
    attn_tile_start(sc, W, t, t0, nq, mask, Lk);
  }
  const int span = nh * dh;  // columns of a k/v row the call reads (contiguous when ld == span)
  for (int64_t kb0 = 0; kb0 < Lk; kb0 += kAttnKB) {
    const int nk = (int)std::min<int64_t>(kAttnKB, Lk - kb0);
    const int64_t next = kb0 + kAttnKB;  // the next block's rows are prefetched, a share per tile
    const int n_next = (int)std::max<int64_t>(0, std::min<int64_t>(kAttnKB, Lk - next));
    for (int t = 0; t < ntiles; ++t) {
      for (int j = t * n_next / ntiles; j < (t + 1) * n_next / ntiles; ++j)
        for (int c = 0; c < span; c += 16) V::prefetch(k + (next + j) * ldk + c), V::prefetch(v + (next + j) * ldv + c);
      const bool masked = sc.masked[t] != 0;
      if (masked && attention_block_mask<V>(kb0, nk, sc.row.data() + t * W, sc.real.data() + t * W, sc))
        continue;  // every lane excludes every key of the block, for every head
      for (int h = 0; h < nh; ++h) {
        const size_t th = (size_t)(t * nh + h);
        attention_block<V, KT, CT>(k + h * dh, ldk, v + h * dh, ldv, dh, kb0, nk, sc.qt.data() + th * st,
                                   sc.ot.data() + th * st, sc.m.data() + th * W, sc.l.data() + th * W,
                                   masked, sc);
      }
    }
  }
  attn_write_out<V>(sc, dh, q0, q1, out, ldo);
}

}  // namespace
}  // namespace m2fp::kern
