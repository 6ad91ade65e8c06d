// kernels/threaded.cpp: the threaded entry points of kernels.h. Each splits rows, pixels or
// (head, query block) items over the OpenMP pool (the same pool oneDNN uses) and calls the active
// path's single-threaded chunk functions (kern::active(), chosen in kernels/dispatch.cpp).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/internal.h"

namespace m2fp::kern {
namespace {
// Static split of [0, n) over the pool; each thread gets one contiguous chunk.
template <class F>
void parallel_chunks(int64_t n, int64_t min_chunk, F&& fn) {
  if (n <= 0) return;
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  nt = (int)std::max<int64_t>(1, std::min<int64_t>(nt, n / std::max<int64_t>(1, min_chunk)));
  if (nt == 1) {
    fn(0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t b = n * t / T, e = n * (t + 1) / T;
    if (b < e) fn(b, e);
  }
}

// [0, n) in blocks of `block` over the pool, handed out as the threads ask (OpenMP's guided
// schedule: large contiguous runs of blocks first, smaller ones at the end), for work whose cost per
// item varies (cache misses) or whose threads may be held up (a loaded host): no thread waits at the
// end for another's static half.
template <class F>
void parallel_guided(int64_t n, int64_t block, F&& fn) {
  if (n <= 0) return;
  block = std::max<int64_t>(1, block);
  const int64_t nb = (n + block - 1) / block;
  const int nt = (int)std::min<int64_t>(omp_in_parallel() ? 1 : omp_get_max_threads(), nb);
  if (nt <= 1) {
    fn(0, n);
    return;
  }
#pragma omp parallel for schedule(guided, 1) num_threads(nt)
  for (int64_t b = 0; b < nb; ++b) fn(b * block, std::min(n, (b + 1) * block));
}

// GroupNorm's per-channel affine from the statistics: sums holds T per-thread blocks
// [sum[C], sumsq[C]] (groupnorm_stats_nhwc over disjoint pixel ranges); each group of C/G channels
// over HW pixels gets its mean and biased variance in double, then
// scale[c] = gamma[c] * rstd and shift[c] = beta[c] - mean * rstd * gamma[c].
void groupnorm_affine(const double* sums, int T, int64_t HW, int64_t C, int64_t G,
                      const float* gamma, const float* beta, float eps, float* scale, float* shift) {
  const int64_t cg = C / G;
  for (int64_t g = 0; g < G; ++g) {
    double s = 0, ss = 0;
    for (int t = 0; t < T; ++t)
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
        s += sums[(size_t)t * 2 * C + c];
        ss += sums[(size_t)t * 2 * C + C + c];
      }
    const double n = (double)HW * cg;
    const double mean = s / n;
    const double var = std::max(0.0, ss / n - mean * mean);
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
      scale[c] = (float)(gamma[c] * rstd);
      shift[c] = (float)(beta[c] - mean * rstd * gamma[c]);
    }
  }
}

}  // namespace

void softmax_rows(float* x, int64_t rows, int64_t n) {
  const KernelTable& k = active();
  parallel_chunks(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, n)),
                  [&](int64_t b, int64_t e) { k.softmax_rows(x + b * n, e - b, n); });
}

void layernorm_rows(const float* x, const float* residual, const float* gamma, const float* beta,
                    float* y, int64_t rows, int64_t C, float eps) {
  const KernelTable& k = active();
  // At least 32768 values per thread: the decoder's [100, 256] norms stay on one thread (~10 us of
  // work, less than waking a second one).
  parallel_chunks(rows, std::max<int64_t>(16, 32768 / std::max<int64_t>(1, C)), [&](int64_t b, int64_t e) {
    k.layernorm_rows(x + b * C, residual ? residual + b * C : nullptr, gamma, beta, y + b * C, e - b,
                     C, eps);
  });
}

void layernorm_rows_add(const float* x, const float* residual, const float* gamma, const float* beta,
                        float* y, const float* a, float* z, int64_t rows, int64_t C, float eps) {
  const KernelTable& k = active();
  parallel_chunks(rows, std::max<int64_t>(16, 32768 / std::max<int64_t>(1, C)), [&](int64_t b, int64_t e) {
    constexpr int64_t kBlock = 16;  // rows normalised, then added while still in L1/L2
    for (int64_t r0 = b; r0 < e; r0 += kBlock) {
      const int64_t n = std::min(e, r0 + kBlock) - r0;
      k.layernorm_rows(x + r0 * C, residual ? residual + r0 * C : nullptr, gamma, beta, y + r0 * C, n, C, eps);
      const float* yp = y + r0 * C;
      const float* ap = a + r0 * C;
      float* zp = z + r0 * C;
      for (int64_t i = 0; i < n * C; ++i) zp[i] = yp[i] + ap[i];
    }
  });
}

void layernorm_rows_bf16(const float* x, const float* residual, const float* gamma, const float* beta,
                         float* y, uint16_t* y16, const float* a, uint16_t* z16, int64_t rows, int64_t C,
                         float eps) {
  const KernelTable& k = active();
  const bool add = a && z16;
  parallel_chunks(rows, std::max<int64_t>(16, 32768 / std::max<int64_t>(1, C)), [&](int64_t b, int64_t e) {
    constexpr int64_t kBlock = 16;  // rows normalised, then rounded while still in L1/L2
    for (int64_t r0 = b; r0 < e; r0 += kBlock) {
      const int64_t n = std::min(e, r0 + kBlock) - r0;
      k.layernorm_rows(x + r0 * C, residual ? residual + r0 * C : nullptr, gamma, beta, y + r0 * C, n, C, eps);
      if (y16) k.round_bf16(y + r0 * C, nullptr, y16 + r0 * C, n * C);
      if (add) k.round_bf16(y + r0 * C, a + r0 * C, z16 + r0 * C, n * C);
    }
  });
}

void round_bf16(const float* x, const float* a, uint16_t* y, int64_t n) {
  const KernelTable& k = active();
  parallel_chunks(n, 65536, [&](int64_t b, int64_t e) { k.round_bf16(x + b, a ? a + b : nullptr, y + b, e - b); });
}

void add_bf16(uint16_t* y, const uint16_t* r, int64_t n, bool relu) {
  const KernelTable& k = active();
  parallel_chunks(n, 65536, [&](int64_t b, int64_t e) { k.add_bf16(y + b, r + b, e - b, relu); });
}

namespace {
// GroupNorm's statistics over x [HW, C] on the threads, then its per-channel affine.
void groupnorm_scale_shift(const KernelTable& k, const float* x, int64_t HW, int64_t C, int64_t G,
                           const float* gamma, const float* beta, float eps, float* scale, float* shift) {
  if (G <= 0 || C % G != 0) throw std::invalid_argument("groupnorm_nhwc: C must divide into G groups");
  const int T = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  std::vector<double> sums((size_t)T * 2 * C, 0.0);
  parallel_chunks(HW, 256, [&](int64_t b, int64_t e) {
    double* s = sums.data() + (size_t)omp_get_thread_num() * 2 * C;
    k.groupnorm_stats_nhwc(x + b * C, e - b, C, s, s + C);
  });
  groupnorm_affine(sums.data(), T, HW, C, G, gamma, beta, eps, scale, shift);
}
}  // namespace

void groupnorm_nhwc(const float* x, float* y, int64_t HW, int64_t C, int64_t G, const float* gamma,
                    const float* beta, float eps, bool relu) {
  const KernelTable& k = active();
  std::vector<float> scale(C), shift(C);
  groupnorm_scale_shift(k, x, HW, C, G, gamma, beta, eps, scale.data(), shift.data());
  parallel_chunks(HW, 256, [&](int64_t b, int64_t e) {
    k.affine_nhwc(x + b * C, y + b * C, e - b, C, scale.data(), shift.data(), relu);
  });
}

void groupnorm_nhwc_bf16(const float* x, uint16_t* y16, int64_t HW, int64_t C, int64_t G, const float* gamma,
                         const float* beta, float eps, bool relu) {
  const KernelTable& k = active();
  std::vector<float> scale(C), shift(C);
  groupnorm_scale_shift(k, x, HW, C, G, gamma, beta, eps, scale.data(), shift.data());
  parallel_chunks(HW, 256, [&](int64_t b, int64_t e) {
    constexpr int64_t kBlock = 16;  // pixels through the fp32 affine, then rounded while in L1
    std::vector<float> tmp((size_t)(kBlock * C));
    for (int64_t p0 = b; p0 < e; p0 += kBlock) {
      const int64_t n = std::min(e, p0 + kBlock) - p0;
      k.affine_nhwc(x + p0 * C, tmp.data(), n, C, scale.data(), shift.data(), relu);
      k.round_bf16(tmp.data(), nullptr, y16 + p0 * C, n * C);
    }
  });
}

void resize_bilinear_planes(const float* src, int64_t planes, int64_t H, int64_t W, float* dst,
                            int64_t oh, int64_t ow) {
  const KernelTable& k = active();
  // Work items are (plane, block of output rows) so small plane counts still use every thread.
  const int64_t rb = 16, blocks = (oh + rb - 1) / rb;
  parallel_chunks(planes * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t p = i / blocks, y0 = (i % blocks) * rb, y1 = std::min(oh, y0 + rb);
      k.resize_bilinear_plane_rows(src + p * H * W, H, W, dst + p * oh * ow + y0 * ow, oh, ow, y0, y1);
    }
  });
}

void resize_bilinear_nhwc(const float* src, int64_t H, int64_t W, int64_t C, float* dst, int64_t oh,
                          int64_t ow) {
  const KernelTable& k = active();
  parallel_chunks(oh, 1, [&](int64_t b, int64_t e) {
    k.resize_bilinear_nhwc_rows(src, H, W, C, dst + b * ow * C, oh, ow, b, e);
  });
}

void resize_bilinear_nhwc_add(const float* src, int64_t H, int64_t W, int64_t C, float* dst, int64_t oh,
                              int64_t ow) {
  const KernelTable& k = active();
  const int64_t row = ow * C;
  parallel_chunks(oh, 1, [&](int64_t b, int64_t e) {
    std::unique_ptr<float[]> tmp(new float[(size_t)row]);  // one output row, left uninitialised
    for (int64_t y = b; y < e; ++y) {
      k.resize_bilinear_nhwc_rows(src, H, W, C, tmp.get(), oh, ow, y, y + 1);
      float* d = dst + y * row;
      const float* t = tmp.get();
      for (int64_t i = 0; i < row; ++i) d[i] = d[i] + t[i];
    }
  });
}

void ms_deform_attn(const float* value, const int64_t* shapes, const int64_t* level_start, int L,
                    int P, int heads, int dh, const float* ref, const float* offsets,
                    const float* logits, int64_t ld_qp, float* out, int64_t Lq) {
  const KernelTable& k = active();
  parallel_guided(Lq, 64, [&](int64_t b, int64_t e) {
    k.ms_deform_attn(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, b, e);
  });
}

void ms_deform_attn_bf16(const uint16_t* value, const int64_t* shapes, const int64_t* level_start, int L,
                         int P, int heads, int dh, const float* ref, const float* offsets,
                         const float* logits, int64_t ld_qp, uint16_t* out, int64_t Lq) {
  const KernelTable& k = active();
  parallel_guided(Lq, 64, [&](int64_t b, int64_t e) {
    k.ms_deform_attn_bf16(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, b, e);
  });
}

namespace {
// The work items of masked_attention(_bf16): calls `run(h0, h1, q0, q1)` over (group of heads,
// block of queries) items, one per thread where possible.
template <class Run>
void attention_items(int64_t Lq, int heads, const Run& run) {
  // Work items are (group of heads, block of queries), one per thread where possible: a call
  // reads each block of keys once for all its queries and heads (the heads' columns of a row
  // together) and transposes each block's mask bytes once for all its heads, so items are large:
  // all queries (up to 128) in one block and the heads in as many groups as there are threads;
  // queries are split into blocks only when there are more threads than heads. A block is a
  // multiple of 16 queries (the widest SIMD tile) so that only the last block ends in a partial
  // tile (100 queries: 6 full tiles and one of 4).
  constexpr int64_t kTile = 16;
  const int nt = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  const int groups = std::min(heads, nt);
  int64_t nb = (Lq + 127) / 128;
  while (groups * nb < nt && Lq / (nb + 1) >= 8) ++nb;
  int64_t qb = (Lq + nb - 1) / nb;
  if (qb > kTile) qb = (qb + kTile - 1) / kTile * kTile;
  const int64_t blocks = (Lq + qb - 1) / qb;
  parallel_chunks(groups * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int g = (int)(i / blocks), h0 = heads * g / groups, h1 = heads * (g + 1) / groups;
      const int64_t q0 = (i % blocks) * qb, q1 = std::min(Lq, q0 + qb);
      run(h0, h1, q0, q1);
    }
  });
}
}  // namespace

void masked_attention_bf16(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                           int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lq, int64_t Lk,
                           int heads, int dh, float scale) {
  if (dh % 2) throw std::invalid_argument("masked_attention_bf16: dh must be even, got " + std::to_string(dh));
  if (Lq <= 0 || heads <= 0) return;
  const KernelTable& t = active();
  attention_items(Lq, heads, [&](int h0, int h1, int64_t q0, int64_t q1) {
    t.attention_heads_bf16(q + h0 * dh, ldq, k + h0 * dh, ldk, v + h0 * dh, ldv, mask, out + h0 * dh, ldo, Lk, dh,
                           scale, q0, q1, h1 - h0);
  });
}

void masked_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                      int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lq,
                      int64_t Lk, int heads, int dh, float scale) {
  if (Lq <= 0 || heads <= 0) return;
  const KernelTable& t = active();
  attention_items(Lq, heads, [&](int h0, int h1, int64_t q0, int64_t q1) {
    t.attention_heads(q + h0 * dh, ldq, k + h0 * dh, ldk, v + h0 * dh, ldv, mask, out + h0 * dh, ldo, Lk, dh,
                      scale, q0, q1, h1 - h0);
  });
}

size_t resize_pil_bilinear_u8_scratch_bytes(int64_t H, int ch, int64_t ow) {
  return (size_t)std::max<int64_t>(0, H) * std::max<int64_t>(0, ow) * std::max(0, ch);
}

void resize_pil_bilinear_u8(const uint8_t* src, int64_t H, int64_t W, int ch, uint8_t* dst,
                            int64_t oh, int64_t ow, uint8_t* scratch) {
  const KernelTable& k = active();
  std::vector<int32_t> xb, xc, yb, yc;
  const int kx = pil_bilinear_coeffs(W, ow, &xb, &xc);
  const int ky = pil_bilinear_coeffs(H, oh, &yb, &yc);
  // PIL only resamples the input rows the vertical pass will read.
  const int64_t ymin = yb[0];
  const int64_t ymax = yb[2 * (oh - 1)] + yb[2 * (oh - 1) + 1];
  std::vector<uint8_t> own;  // [ymax - ymin, ow, ch] (ymax - ymin <= H) when no scratch is given
  if (!scratch) {
    own.resize((size_t)(ymax - ymin) * ow * ch);
    scratch = own.data();
  }
  uint8_t* tmp = scratch;
  parallel_chunks(ymax - ymin, 8, [&](int64_t b, int64_t e) {
    k.pil_resample_h_u8(src + (ymin * W) * ch, W, ch, tmp, ow, xb.data(), xc.data(), kx, b, e);
  });
  // Shift the vertical bounds to the temporary's first row.
  for (int64_t i = 0; i < oh; ++i) yb[2 * i] -= (int32_t)ymin;
  parallel_chunks(oh, 8, [&](int64_t b, int64_t e) {
    k.pil_resample_v_u8(tmp, ow, ch, dst, yb.data(), yc.data(), ky, b, e);
  });
}

}  // namespace m2fp::kern
