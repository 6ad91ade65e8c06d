// kernels/ref/softmax.cpp: scalar reference softmax (the baseline for the SIMD paths).
//
// x[rows, n] <- softmax(x) along each row: m = max(row), e = exp(x - m) (libm expf, < 1 ulp),
// s = sum(e) in double, x = e * (float)(1 / s). A row of -inf gives NaN, as torch.softmax does.
#include <cmath>

#include "kernels/internal.h"

namespace m2fp::kern::ref {

void softmax_rows(float* x, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * n;  // [n]
    float m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = row[i] > m ? row[i] : m;
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      const float e = std::exp(row[i] - m);
      row[i] = e;
      s += e;
    }
    const float inv = (float)(1.0 / s);
    for (int64_t i = 0; i < n; ++i) row[i] *= inv;
  }
}

}  // namespace m2fp::kern::ref
