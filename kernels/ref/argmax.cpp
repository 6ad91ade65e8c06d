// kernels/ref/argmax.cpp: the scalar reference of class_argmax (ops.def).
#include "kernels/internal.h"

namespace m2fp::kern::ref {

void class_argmax(const float* cat, const float* times, int64_t n, uint8_t c, float* best, uint8_t* lab) {
  for (int64_t i = 0; i < n; ++i) {
    const float s = cat[i] / (times[i] == 0.f ? 1.f : times[i]);
    if (s > best[i]) {
      best[i] = s;
      lab[i] = c;
    }
  }
}

}  // namespace m2fp::kern::ref
