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

namespace {
// bfloat16 <-> fp32: round to nearest even (finite values), widening exact.
uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
float from_bf16(uint16_t h) {
  const uint32_t u = (uint32_t)h << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
}  // namespace

// ops.def: attention_heads_bf16. Exact softmax with the row maximum; the pair sums in VDPBF16PS's
// order (odd element, then even), each product exact in fp32 and added with one rounding (fma).
void attention_heads_bf16(const float* q, int64_t ldq, const uint16_t* k, int64_t ldk, const uint16_t* v,
                          int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lk, int dh,
                          float scale, int64_t q0, int64_t q1, int nh) {
  if (q1 <= q0 || dh <= 0 || nh <= 0) return;
  if (Lk <= 0) {
    for (int64_t i = q0; i < q1; ++i)
      for (int h = 0; h < nh; ++h) std::memset(out + i * ldo + h * dh, 0, sizeof(float) * dh);
    return;
  }
  std::vector<float> qs(dh), p(Lk), pr(Lk + 1), acc(dh);
  for (int64_t i = q0; i < q1; ++i) {
    const uint8_t* row = mask ? mask + i * Lk : nullptr;
    if (row && !std::memchr(row, 0, (size_t)Lk)) row = nullptr;  // fully masked: attend to all
    for (int h = 0; h < nh; ++h) {
      for (int c = 0; c < dh; ++c) qs[c] = from_bf16(to_bf16(q[i * ldq + h * dh + c] * scale));
      float mx = -INFINITY;
      for (int64_t j = 0; j < Lk; ++j) {
        if (row && row[j]) {
          p[j] = -INFINITY;
          continue;
        }
        const uint16_t* kj = k + j * ldk + h * dh;
        float s = 0.f;
        for (int c = 0; c + 1 < dh; c += 2) {
          s = std::fma(qs[c + 1], from_bf16(kj[c + 1]), s);
          s = std::fma(qs[c], from_bf16(kj[c]), s);
        }
        p[j] = s;
        mx = std::max(mx, s);
      }
      float sum = 0.f;
      for (int64_t j = 0; j < Lk; ++j) {
        sum += (p[j] = std::exp(p[j] - mx));  // exp(-inf) = 0
        pr[j] = from_bf16(to_bf16(p[j]));
      }
      pr[Lk] = 0.f;  // the pair partner of an odd last key
      std::fill(acc.begin(), acc.end(), 0.f);
      for (int64_t j = 0; j < Lk; j += 2) {
        const uint16_t* v0 = v + j * ldv + h * dh;
        const uint16_t* v1 = j + 1 < Lk ? v0 + ldv : nullptr;
        for (int c = 0; c < dh; ++c) {
          if (v1) acc[c] = std::fma(pr[j + 1], from_bf16(v1[c]), acc[c]);
          acc[c] = std::fma(pr[j], from_bf16(v0[c]), acc[c]);
        }
      }
      const float inv = 1.f / sum;
      for (int c = 0; c < dh; ++c) out[i * ldo + h * dh + c] = acc[c] * inv;
    }
  }
}

}  // namespace m2fp::kern::ref
