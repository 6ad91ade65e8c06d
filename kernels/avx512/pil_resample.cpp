// kernels/avx512/pil_resample.cpp: AVX-512 versions of Pillow's 8-bit resampling passes, exact
// 32-bit integer arithmetic, bit-identical to kernels/ref/pil_resample.cpp (and to Pillow).
//
// Horizontal: output values (pixel, channel) are the vector lanes. Per (W, ow, ch, table) the
// kernel expands the coefficient table into per-lane source indices and coefficients [ksize][ow*ch]
// (taps past a pixel's count get coefficient 0 and a valid index), cached per thread; each input
// row is widened to int32 once, then every tap is one gather + one 32-bit multiply-add.
// Vertical: 64 consecutive bytes of a row per step, one broadcast coefficient per tap.
// GCC 12 reports its own AVX-512 intrinsic headers as -Wmaybe-uninitialized (GCC PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/internal.h"

namespace m2fp::kern::avx512 {
namespace {

inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
}

// (ss >> 22) clamped to [0, 255], as 16 bytes.
inline __m128i clip8(__m512i ss) {
  __m512i v = _mm512_srai_epi32(ss, kPilPrecisionBits);
  v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_setzero_si512()), _mm512_set1_epi32(255));
  return _mm512_cvtepi32_epi8(v);
}

struct HTables {
  int64_t W = -1, ow = -1;
  int ch = 0, ksize = 0;
  std::vector<int32_t> bounds, coeffs;  // copies of the tables the expansion was built from
  std::vector<int32_t> idx, coef;       // [ksize][ow*ch]
  const HTables& get(int64_t W_, int ch_, int64_t ow_, const int32_t* b, const int32_t* k, int K) {
    const size_t nb = (size_t)(2 * ow_), nk = (size_t)(ow_ * K);
    if (W_ == W && ch_ == ch && ow_ == ow && K == ksize && !std::memcmp(bounds.data(), b, nb * 4) &&
        !std::memcmp(coeffs.data(), k, nk * 4))
      return *this;
    bounds.assign(b, b + nb);
    coeffs.assign(k, k + nk);
    const int64_t n = ow_ * ch_;
    idx.assign((size_t)(K * n), 0);
    coef.assign((size_t)(K * n), 0);
    for (int64_t xx = 0; xx < ow_; ++xx) {
      const int32_t xmin = b[2 * xx], cnt = b[2 * xx + 1];
      for (int t = 0; t < K; ++t) {
        const int32_t xs = t < cnt ? xmin + t : (cnt > 0 ? xmin + cnt - 1 : xmin);
        const int32_t w = t < cnt ? k[xx * K + t] : 0;
        for (int c = 0; c < ch_; ++c) {
          idx[(size_t)(t * n + xx * ch_ + c)] = xs * ch_ + c;
          coef[(size_t)(t * n + xx * ch_ + c)] = w;
        }
      }
    }
    W = W_; ch = ch_; ow = ow_; ksize = K;
    return *this;
  }
};

thread_local HTables tl_h;

}  // namespace

void pil_resample_h_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst, int64_t ow,
                       const int32_t* bounds, const int32_t* coeffs, int ksize, int64_t y0,
                       int64_t y1) {
  if (y0 >= y1) return;
  const HTables& T = tl_h.get(W, ch, ow, bounds, coeffs, ksize);
  const int64_t nin = W * ch, n = ow * ch;
  thread_local std::vector<int32_t> wide;  // one input row widened to int32 [W * ch]
  if (wide.size() < (size_t)nin) wide.resize((size_t)nin);
  const __m512i half = _mm512_set1_epi32(1 << (kPilPrecisionBits - 1));
  for (int64_t y = y0; y < y1; ++y) {
    const uint8_t* s = src + y * nin;  // [W, ch]
    uint8_t* d = dst + y * n;          // [ow, ch]
    for (int64_t i = 0; i < nin; i += 16) {
      const __mmask16 k = tail_mask(nin - i);
      _mm512_mask_storeu_epi32(wide.data() + i, k, _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, s + i)));
    }
    for (int64_t o = 0; o < n; o += 16) {
      const __mmask16 k = tail_mask(n - o);
      __m512i acc = half;
      for (int t = 0; t < ksize; ++t) {
        const __m512i j = _mm512_maskz_loadu_epi32(k, T.idx.data() + t * n + o);
        const __m512i v = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, j, wide.data(), 4);
        acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(v, _mm512_maskz_loadu_epi32(k, T.coef.data() + t * n + o)));
      }
      _mm_mask_storeu_epi8(d + o, k, clip8(acc));
    }
  }
}

void pil_resample_v_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst, const int32_t* bounds,
                       const int32_t* coeffs, int ksize, int64_t y0, int64_t y1) {
  const int64_t row = W * ch;
  const __m512i half = _mm512_set1_epi32(1 << (kPilPrecisionBits - 1));
  for (int64_t yy = y0; yy < y1; ++yy) {
    const int32_t ymin = bounds[2 * yy], cnt = bounds[2 * yy + 1];
    const int32_t* kk = coeffs + yy * ksize;     // [ksize]
    const uint8_t* s0 = src + (int64_t)ymin * row;  // first input row used
    uint8_t* d = dst + yy * row;                 // [W, ch]
    int64_t i = 0;
    for (; i + 64 <= row; i += 64) {
      __m512i a0 = half, a1 = half, a2 = half, a3 = half;
      for (int32_t t = 0; t < cnt; ++t) {
        const __m512i w = _mm512_set1_epi32(kk[t]);
        const uint8_t* s = s0 + (int64_t)t * row + i;
        a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)s)), w));
        a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(s + 16))), w));
        a2 = _mm512_add_epi32(a2, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(s + 32))), w));
        a3 = _mm512_add_epi32(a3, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(s + 48))), w));
      }
      _mm_storeu_si128((__m128i*)(d + i), clip8(a0));
      _mm_storeu_si128((__m128i*)(d + i + 16), clip8(a1));
      _mm_storeu_si128((__m128i*)(d + i + 32), clip8(a2));
      _mm_storeu_si128((__m128i*)(d + i + 48), clip8(a3));
    }
    for (; i < row; i += 16) {
      const __mmask16 k = tail_mask(row - i);
      __m512i a = half;
      for (int32_t t = 0; t < cnt; ++t)
        a = _mm512_add_epi32(a, _mm512_mullo_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, s0 + (int64_t)t * row + i)),
                                                   _mm512_set1_epi32(kk[t])));
      _mm_mask_storeu_epi8(d + i, k, clip8(a));
    }
  }
}

}  // namespace m2fp::kern::avx512
