// kernels/ref/attention.cpp: scalar reference of one head of (masked) multi-head attention
// (KernelTable::attention_head in kernels/kernels.h).
//
// Semantics of torch.nn.functional.multi_head_attention_forward (torch 1.13) with a bool
// attn_mask, after Mask2Former's rule that a query whose mask row excludes every key attends to
// all keys: q is scaled first, s_j = (scale*q) . k_j; excluded keys get -inf; p = softmax(s) as
// torch computes it (exp(s - max) * (1/sum)); out = sum_j p_j v_j.
//
// This reference computes the exact softmax with the row maximum (two passes over the keys); the
// SIMD paths stream over key blocks with the online (rescaled) softmax and are compared with it.
// The dot product is accumulated over channels in order with FMA, as the SIMD paths do, so the
// scores are bit-identical between paths. Lk <= 0 (no keys) writes zeros.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/internal.h"

namespace m2fp::kern::ref {

void attention_head(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                    int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                    float scale, int64_t q0, int64_t q1) {
  if (q1 <= q0 || dh <= 0) return;
  if (Lk <= 0) {
    for (int64_t i = q0; i < q1; ++i) std::memset(out + i * ldo, 0, sizeof(float) * dh);
    return;
  }
  std::vector<float> qs(dh);  // [dh] scaled query
  std::vector<float> p(Lk);   // [Lk] scores, then probabilities
  std::vector<float> acc(dh); // [dh]
  for (int64_t i = q0; i < q1; ++i) {
    const uint8_t* row = mask ? mask + i * Lk : nullptr;  // [Lk], 1 = excluded
    if (row && !std::memchr(row, 0, (size_t)Lk)) row = nullptr;  // fully masked: attend to all
    for (int c = 0; c < dh; ++c) qs[c] = q[i * ldq + c] * scale;
    float mx = -INFINITY;
    for (int64_t j = 0; j < Lk; ++j) {
      if (row && row[j]) {
        p[j] = -INFINITY;
        continue;
      }
      const float* kj = k + j * ldk;
      float s = 0.f;
      for (int c = 0; c < dh; ++c) s = std::fma(kj[c], qs[c], s);
      p[j] = s;
      mx = std::max(mx, s);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < Lk; ++j) sum += (p[j] = std::exp(p[j] - mx));  // exp(-inf) = 0
    const float inv = 1.f / sum;
    std::fill(acc.begin(), acc.end(), 0.f);
    for (int64_t j = 0; j < Lk; ++j) {
      const float pj = p[j] * inv;
      if (pj == 0.f) continue;  // excluded (or underflowed) key: adds exactly nothing
      const float* vj = v + j * ldv;
      for (int c = 0; c < dh; ++c) acc[c] = std::fma(pj, vj[c], acc[c]);
    }
    std::memcpy(out + i * ldo, acc.data(), sizeof(float) * dh);
  }
}

// nh heads: one call per head (head h at columns h*dh).
void attention_heads(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                     int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                     float scale, int64_t q0, int64_t q1, int nh) {
  for (int h = 0; h < nh; ++h)
    attention_head(q + h * dh, ldq, k + h * dh, ldk, v + h * dh, ldv, mask, out + h * dh, ldo, Lk, dh,
                   scale, q0, q1);
}

}  // namespace m2fp::kern::ref
