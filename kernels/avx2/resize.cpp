// kernels/avx2/resize.cpp: AVX2 + FMA bilinear resizes (PyTorch align_corners=False semantics,
// taps and operation order in kernels/bilinear_taps.h, bit-identical to kernels/ref/resize.cpp).
//
// Same structure as kernels/avx512/resize.cpp with 8 lanes: cached column taps, cached
// horizontally interpolated source rows (permutes or gathers), output rows as fma(h0, l0, h1 * l1);
// NHWC vectorised over channels. Tails are scalar with the same std::fma sequence.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/bilinear_taps.h"
#include "kernels/internal.h"

namespace m2fp::kern::avx2 {
namespace {

struct ColumnTaps {
  int64_t in = -1, out = -1;
  std::vector<int32_t> i0, i1;  // [out]
  std::vector<float> l0, l1;    // [out]
  std::vector<LinearTap> taps;  // [out]
  const ColumnTaps& get(int64_t in_, int64_t out_) {
    if (in_ == in && out_ == out) return *this;
    i0.resize((size_t)out_); i1.resize((size_t)out_); l0.resize((size_t)out_); l1.resize((size_t)out_);
    taps.resize((size_t)out_);
    const float scale = torch_linear_scale(in_, out_);
    for (int64_t o = 0; o < out_; ++o) {
      const LinearTap t = torch_linear_tap(in_, out_, scale, o);
      taps[(size_t)o] = t;
      i0[(size_t)o] = (int32_t)t.i0; i1[(size_t)o] = (int32_t)t.i1;
      l0[(size_t)o] = t.l0; l1[(size_t)o] = t.l1;
    }
    in = in_; out = out_;
    return *this;
  }
};

thread_local ColumnTaps tl_cols;

constexpr int64_t kStreamMinPlane = 1 << 18;  // floats per output plane

// h[x] = fma(row[i0[x]], l0[x], row[i1[x]] * l1[x]) for x < ow, row of W floats. When the 8
// outputs' taps lie in a window of 16 inputs (upscales, x2 downscales) they are picked from two
// loads with permutes; otherwise gathered.
void interp_row(const float* row, int64_t W, const ColumnTaps& t, int64_t ow, float* h) {
  int64_t x = 0;
  for (; x + 8 <= ow; x += 8) {
    const __m256i j0 = _mm256_loadu_si256((const __m256i*)(t.i0.data() + x));
    const __m256i j1 = _mm256_loadu_si256((const __m256i*)(t.i1.data() + x));
    const int32_t base = t.i0[(size_t)x];
    __m256 a, b;
    if (t.i1[(size_t)x + 7] - base < 16 && base + 16 <= W) {
      const __m256 lo = _mm256_loadu_ps(row + base), hi = _mm256_loadu_ps(row + base + 8);
      const __m256i r0 = _mm256_sub_epi32(j0, _mm256_set1_epi32(base));
      const __m256i r1 = _mm256_sub_epi32(j1, _mm256_set1_epi32(base));
      const __m256i seven = _mm256_set1_epi32(7);
      a = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, r0), _mm256_permutevar8x32_ps(hi, r0),
                           _mm256_castsi256_ps(_mm256_cmpgt_epi32(r0, seven)));
      b = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, r1), _mm256_permutevar8x32_ps(hi, r1),
                           _mm256_castsi256_ps(_mm256_cmpgt_epi32(r1, seven)));
    } else {
      a = _mm256_i32gather_ps(row, j0, 4);
      b = _mm256_i32gather_ps(row, j1, 4);
    }
    _mm256_storeu_ps(h + x, _mm256_fmadd_ps(a, _mm256_loadu_ps(t.l0.data() + x),
                                            _mm256_mul_ps(b, _mm256_loadu_ps(t.l1.data() + x))));
  }
  for (; x < ow; ++x) h[x] = std::fma(row[t.i0[(size_t)x]], t.l0[(size_t)x], row[t.i1[(size_t)x]] * t.l1[(size_t)x]);
}

}  // namespace

void resize_bilinear_plane_rows(const float* src, int64_t H, int64_t W, float* dst, int64_t oh,
                                int64_t ow, int64_t y0, int64_t y1) {
  if (y0 >= y1) return;
  const ColumnTaps& cols = tl_cols.get(W, ow);
  thread_local std::vector<float> buf;  // two interpolated source rows [2, ow]
  if (buf.size() < (size_t)(2 * ow)) buf.resize((size_t)(2 * ow));
  float* hb[2] = {buf.data(), buf.data() + ow};
  int64_t key[2] = {-1, -1};
  auto row_of = [&](int64_t sy, int avoid) -> const float* {
    for (int j = 0; j < 2; ++j)
      if (key[j] == sy) return hb[j];
    const int j = avoid == 0 ? 1 : avoid == 1 ? 0 : (key[0] < key[1] ? 0 : 1);
    interp_row(src + sy * W, W, cols, ow, hb[j]);
    key[j] = sy;
    return hb[j];
  };
  const float sy = torch_linear_scale(H, oh);
  // Planes of 1 MB and more (the x4 mask upsample writes 270 MB) bypass the cache: the output
  // is not read again soon, and streaming stores skip the read-for-ownership of every line.
  const bool stream = oh * ow >= kStreamMinPlane;
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float* h0 = row_of(ty.i0, -1);
    const float* h1 = row_of(ty.i1, h0 == hb[0] ? 0 : 1);
    float* d = dst + (y - y0) * ow;  // [ow]
    const __m256 L0 = _mm256_set1_ps(ty.l0), L1 = _mm256_set1_ps(ty.l1);
    int64_t x = 0;
    if (stream) {  // scalar up to a 32-byte boundary, then non-temporal stores
      for (; x < ow && ((uintptr_t)(d + x) & 31); ++x) d[x] = std::fma(h0[x], ty.l0, h1[x] * ty.l1);
      for (; x + 8 <= ow; x += 8)
        _mm256_stream_ps(d + x, _mm256_fmadd_ps(_mm256_loadu_ps(h0 + x), L0, _mm256_mul_ps(_mm256_loadu_ps(h1 + x), L1)));
    }
    for (; x + 16 <= ow; x += 16) {
      _mm256_storeu_ps(d + x, _mm256_fmadd_ps(_mm256_loadu_ps(h0 + x), L0, _mm256_mul_ps(_mm256_loadu_ps(h1 + x), L1)));
      _mm256_storeu_ps(d + x + 8, _mm256_fmadd_ps(_mm256_loadu_ps(h0 + x + 8), L0,
                                                  _mm256_mul_ps(_mm256_loadu_ps(h1 + x + 8), L1)));
    }
    for (; x + 8 <= ow; x += 8)
      _mm256_storeu_ps(d + x, _mm256_fmadd_ps(_mm256_loadu_ps(h0 + x), L0, _mm256_mul_ps(_mm256_loadu_ps(h1 + x), L1)));
    for (; x < ow; ++x) d[x] = std::fma(h0[x], ty.l0, h1[x] * ty.l1);
  }
  if (stream) _mm_sfence();
}

void resize_bilinear_nhwc_rows(const float* src, int64_t H, int64_t W, int64_t C, float* dst,
                               int64_t oh, int64_t ow, int64_t y0, int64_t y1) {
  if (y0 >= y1) return;
  const ColumnTaps& cols = tl_cols.get(W, ow);
  const float sy = torch_linear_scale(H, oh);
  const int64_t Cv = C - C % 8;
  for (int64_t y = y0; y < y1; ++y) {
    const LinearTap ty = torch_linear_tap(H, oh, sy, y);
    const float* r0 = src + ty.i0 * W * C;  // [W, C]
    const float* r1 = src + ty.i1 * W * C;  // [W, C]
    const __m256 L0 = _mm256_set1_ps(ty.l0), L1 = _mm256_set1_ps(ty.l1);
    for (int64_t x = 0; x < ow; ++x) {
      const LinearTap& tx = cols.taps[(size_t)x];
      const float* a00 = r0 + tx.i0 * C;  // [C]
      const float* a01 = r0 + tx.i1 * C;
      const float* a10 = r1 + tx.i0 * C;
      const float* a11 = r1 + tx.i1 * C;
      const __m256 w0 = _mm256_set1_ps(tx.l0), w1 = _mm256_set1_ps(tx.l1);
      float* d = dst + ((y - y0) * ow + x) * C;  // [C]
      for (int64_t c = 0; c < Cv; c += 8) {
        const __m256 t0 = _mm256_fmadd_ps(_mm256_loadu_ps(a00 + c), w0, _mm256_mul_ps(_mm256_loadu_ps(a01 + c), w1));
        const __m256 t1 = _mm256_fmadd_ps(_mm256_loadu_ps(a10 + c), w0, _mm256_mul_ps(_mm256_loadu_ps(a11 + c), w1));
        _mm256_storeu_ps(d + c, _mm256_fmadd_ps(t0, L0, _mm256_mul_ps(t1, L1)));
      }
      for (int64_t c = Cv; c < C; ++c) {
        const float t0 = std::fma(a00[c], tx.l0, a01[c] * tx.l1);
        const float t1 = std::fma(a10[c], tx.l0, a11[c] * tx.l1);
        d[c] = std::fma(t0, ty.l0, t1 * ty.l1);
      }
    }
  }
}

}  // namespace m2fp::kern::avx2
