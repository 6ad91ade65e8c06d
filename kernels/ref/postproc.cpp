// kernels/ref/postproc.cpp: scalar reference of the mask post-processing kernels.
#include <cmath>

#include "kernels/internal.h"

namespace m2fp::kern::ref {

static inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

void mask_row_stats(const float* x, int64_t n, int64_t* count, double* sig_sum, int64_t* first,
                    int64_t* last) {
  int64_t c = 0, f = -1, l = -1;
  double s = 0;
  for (int64_t i = 0; i < n; ++i)
    if (x[i] > 0.f) {
      ++c;
      s += sigmoid(x[i]);
      if (f < 0) f = i;
      l = i;
    }
  *count += c;
  *sig_sum += s;
  *first = f;
  *last = l;
}

void paste_row(const float* x, int64_t n, float score, float* cat, float* times) {
  for (int64_t i = 0; i < n; ++i) {
    const float p = sigmoid(x[i]) * score;
    if (p > 0.5f) {
      cat[i] += p;
      times[i] += 1.f;
    }
  }
}

}  // namespace m2fp::kern::ref
