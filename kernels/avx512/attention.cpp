// kernels/avx512/attention.cpp: attention over one or more heads, AVX-512 path: tiles of 16
// queries (one zmm of lanes), or of 8 (ymm, AVX-512VL encodings) for a call of at most 8 queries;
// 8 keys per score register block and 16 channels per P.V register block (32 vector registers).
// The body is kernels/attention_simd.h. A call's partial last tile stays a zmm tile: a separate
// ymm pass over the remainder would stream every block of k and v from memory a second time.
#include <algorithm>
#include <cstring>

#include "kernels/internal.h"
#include "kernels/avx2/simd_ops.h"
#include "kernels/avx512/simd_ops.h"
#include "kernels/attention_simd.h"

namespace m2fp::kern::avx512 {

void attention_heads(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                     int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                     float scale, int64_t q0, int64_t q1, int nh) {
  if (q1 <= q0 || dh <= 0 || nh <= 0) return;
  if (Lk <= 0) {  // no keys: zeros, as the reference
    for (int64_t i = q0; i < q1; ++i)
      for (int h = 0; h < nh; ++h) std::memset(out + i * ldo + h * dh, 0, sizeof(float) * dh);
    return;
  }
  if (q1 - q0 <= V8::W)
    attention_range<V8, 8, 16>(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, nh);
  else
    attention_range<V16, 8, 16>(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, nh);
}

void attention_head(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                    int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                    float scale, int64_t q0, int64_t q1) {
  attention_heads(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, 1);
}

}  // namespace m2fp::kern::avx512
