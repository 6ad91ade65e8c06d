// kernels/ref/convert.cpp: scalar reference fp32 -> bfloat16 rounding and the bf16 residual add
// (ops.def: round_bf16, add_bf16).
#include <cstring>

#include "kernels/internal.h"

namespace m2fp::kern::ref {

void round_bf16(const float* x, const float* a, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = a ? x[i] + a[i] : x[i];
    uint32_t u;
    std::memcpy(&u, &v, sizeof u);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16, nan = (u >> 16) | 0x40u;
    y[i] = (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
  }
}

void add_bf16(uint16_t* y, const uint16_t* r, int64_t n, bool relu) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t uy = (uint32_t)y[i] << 16, ur = (uint32_t)r[i] << 16;
    float a, b;
    std::memcpy(&a, &uy, sizeof a);
    std::memcpy(&b, &ur, sizeof b);
    float v = a + b;
    if (relu && v < 0.f) v = 0.f;
    round_bf16(&v, nullptr, y + i, 1);
  }
}

}  // namespace m2fp::kern::ref
