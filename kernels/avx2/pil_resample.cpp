// kernels/avx2/pil_resample.cpp: AVX2 versions of Pillow's 8-bit resampling passes, exact 32-bit
// integer arithmetic, bit-identical to kernels/ref/pil_resample.cpp (and to Pillow).
//
// Same structure as kernels/avx512/pil_resample.cpp with 8 lanes: the horizontal pass expands the
// coefficient table into per-lane indices/coefficients (cached per thread), widens each input row
// to int32 and does one gather + multiply-add per tap; the vertical pass does 32 bytes per step.
// Tails are scalar with the same arithmetic.
#include <immintrin.h>

#include <cstring>
#include <vector>

#include "kernels/internal.h"

namespace m2fp::kern::avx2 {
namespace {

inline uint8_t clip8_scalar(uint32_t ss) {
  const int32_t v = (int32_t)ss >> kPilPrecisionBits;
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

// (ss >> 22) clamped to [0, 255], stored as 8 bytes.
inline void store_clip8(uint8_t* d, __m256i ss) {
  __m256i v = _mm256_srai_epi32(ss, kPilPrecisionBits);
  v = _mm256_min_epi32(_mm256_max_epi32(v, _mm256_setzero_si256()), _mm256_set1_epi32(255));
  // byte 0 of each dword -> the low 4 bytes of each 128-bit lane, then join the two lanes
  const __m256i shuf = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  v = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(v, shuf), _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
  _mm_storel_epi64((__m128i*)d, _mm256_castsi256_si128(v));
}

struct HTables {
  int64_t W = -1, ow = -1;
  int ch = 0, ksize = 0;
  std::vector<int32_t> bounds, coeffs;
  std::vector<int32_t> idx, coef;  // [ksize][ow*ch]
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
  const int64_t nin = W * ch, n = ow * ch, nv = n - n % 8;
  thread_local std::vector<int32_t> wide;  // one input row widened to int32 [W * ch]
  if (wide.size() < (size_t)nin) wide.resize((size_t)nin);
  const __m256i half = _mm256_set1_epi32(1 << (kPilPrecisionBits - 1));
  for (int64_t y = y0; y < y1; ++y) {
    const uint8_t* s = src + y * nin;  // [W, ch]
    uint8_t* d = dst + y * n;          // [ow, ch]
    int64_t i = 0;
    for (; i + 8 <= nin; i += 8)
      _mm256_storeu_si256((__m256i*)(wide.data() + i), _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(s + i))));
    for (; i < nin; ++i) wide[(size_t)i] = s[i];
    for (int64_t o = 0; o < nv; o += 8) {
      __m256i acc = half;
      for (int t = 0; t < ksize; ++t) {
        const __m256i j = _mm256_loadu_si256((const __m256i*)(T.idx.data() + t * n + o));
        const __m256i v = _mm256_i32gather_epi32(wide.data(), j, 4);
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(v, _mm256_loadu_si256((const __m256i*)(T.coef.data() + t * n + o))));
      }
      store_clip8(d + o, acc);
    }
    for (int64_t o = nv; o < n; ++o) {
      uint32_t ss = 1u << (kPilPrecisionBits - 1);
      for (int t = 0; t < ksize; ++t)
        ss += (uint32_t)wide[(size_t)T.idx[(size_t)(t * n + o)]] * (uint32_t)T.coef[(size_t)(t * n + o)];
      d[o] = clip8_scalar(ss);
    }
  }
}

void pil_resample_v_u8(const uint8_t* src, int64_t W, int ch, uint8_t* dst, const int32_t* bounds,
                       const int32_t* coeffs, int ksize, int64_t y0, int64_t y1) {
  const int64_t row = W * ch;
  const __m256i half = _mm256_set1_epi32(1 << (kPilPrecisionBits - 1));
  for (int64_t yy = y0; yy < y1; ++yy) {
    const int32_t ymin = bounds[2 * yy], cnt = bounds[2 * yy + 1];
    const int32_t* kk = coeffs + yy * ksize;        // [ksize]
    const uint8_t* s0 = src + (int64_t)ymin * row;  // first input row used
    uint8_t* d = dst + yy * row;                    // [W, ch]
    int64_t i = 0;
    for (; i + 32 <= row; i += 32) {
      __m256i a0 = half, a1 = half, a2 = half, a3 = half;
      for (int32_t t = 0; t < cnt; ++t) {
        const __m256i w = _mm256_set1_epi32(kk[t]);
        const uint8_t* s = s0 + (int64_t)t * row + i;
        a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)s)), w));
        a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(s + 8))), w));
        a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(s + 16))), w));
        a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(s + 24))), w));
      }
      store_clip8(d + i, a0);
      store_clip8(d + i + 8, a1);
      store_clip8(d + i + 16, a2);
      store_clip8(d + i + 24, a3);
    }
    for (; i + 8 <= row; i += 8) {
      __m256i a = half;
      for (int32_t t = 0; t < cnt; ++t)
        a = _mm256_add_epi32(a, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(s0 + (int64_t)t * row + i))),
                                                   _mm256_set1_epi32(kk[t])));
      store_clip8(d + i, a);
    }
    for (; i < row; ++i) {
      uint32_t ss = 1u << (kPilPrecisionBits - 1);
      for (int32_t t = 0; t < cnt; ++t) ss += (uint32_t)s0[(int64_t)t * row + i] * (uint32_t)kk[t];
      d[i] = clip8_scalar(ss);
    }
  }
}

}  // namespace m2fp::kern::avx2
