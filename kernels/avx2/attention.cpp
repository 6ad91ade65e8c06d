// kernels/avx2/attention.cpp: attention over one or more heads, AVX2 path: tiles of 8 queries (one ymm of
// lanes), 8 keys per score register block, 8 channels per P.V register block (each 8
// accumulators + 2 of the 16 ymm registers). The body is kernels/attention_simd.h.
#include <algorithm>
#include <cstring>

#include "kernels/internal.h"
#include "kernels/avx2/simd_ops.h"
#include "kernels/attention_simd.h"

namespace m2fp::kern::avx2 {

void attention_heads(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                     int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                     float scale, int64_t q0, int64_t q1, int nh) {
  if (q1 <= q0 || dh <= 0 || nh <= 0) return;
  if (Lk <= 0) {  // no keys: zeros, as the reference
    for (int64_t i = q0; i < q1; ++i)
      for (int h = 0; h < nh; ++h) std::memset(out + i * ldo + h * dh, 0, sizeof(float) * dh);
    return;
  }
  attention_range<V8, 8, 8>(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, nh);
}

void attention_head(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                    int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                    float scale, int64_t q0, int64_t q1) {
  attention_heads(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, 1);
}

}  // namespace m2fp::kern::avx2
