// kernels/avx512/attention_bf16_native.cpp: attention_heads_bf16's AVX-512 body with VDPBF16PS
// (AVX512-BF16), called by kernels/avx512/attention_bf16.cpp only where cpu_features() reports
// AVX512-BF16. This file alone is compiled for that extension (-mavx512bf16, CMakeLists.txt, so
// the shared bodies instantiated here may use it); nothing here runs elsewhere. In the
// SIMDe-emulated test build (tests/kernels_emu) it gives the FMA form instead.

#include <algorithm>
#include <cstring>

#include "kernels/internal.h"
#include "kernels/avx2/simd_ops.h"
#include "kernels/avx512/simd_ops.h"
#include "kernels/attention_simd.h"
#include "kernels/attention_bf16_simd.h"
#include "kernels/avx512/attention_bf16_pairs.h"

namespace m2fp::kern {
namespace {
#if !defined(SIMDE_VERSION)
struct Pairs16Dp : Pairs16Base {
  static __m512 dp(__m512 acc, I a, I b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }
};
#else
using Pairs16Dp = Pairs16Fma;
#endif
}  // namespace

namespace avx512 {
void attention_heads_bf16_dp(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                             int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                             float scale, int64_t q0, int64_t q1, int nh) {
  attention_bf16_entry<V16, Pairs16Dp, 8, 16>(q, ldq, k, ldk, v, ldv, mask, out, ldo, Lk, dh, scale, q0, q1, nh);
}
}  // namespace avx512
}  // namespace m2fp::kern
