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

void mask_row_fused(const float* h0, const float* h1, float l0, float l1, int64_t n, const MaskRowSinks* o) {
  int64_t c = 0, f = -1, l = -1;
  double s = 0;
  if (o->bits)
    for (int64_t w = 0; w < (n + 63) / 64; ++w) o->bits[w] = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::fma(h0[i], l0, h1[i] * l1);
    if (v > 0.f) {
      ++c;
      if (o->count) s += sigmoid(v);
      if (f < 0) f = i;
      l = i;
      if (o->bits) o->bits[i >> 6] |= uint64_t{1} << (i & 63);
    }
    if (o->cat) {
      const float p = sigmoid(v) * o->score;
      if (p > 0.5f) {
        o->cat[i] += p;
        o->times[i] += 1.f;
      }
    }
    if (o->best && v > o->best[i]) {
      o->best[i] = v;
      o->who[i] = o->id;
    }
  }
  if (o->count) {
    *o->count += c;
    *o->sig_sum += s;
    *o->first = f;
    *o->last = l;
  }
}

void and_popcount(const uint64_t* a, const uint64_t* b, int64_t ld, int64_t rows, int64_t n, int64_t* count) {
  int64_t c = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t w = 0; w < n; ++w) c += __builtin_popcountll(a[r * ld + w] & b[r * ld + w]);
  *count += c;
}

}  // namespace m2fp::kern::ref
