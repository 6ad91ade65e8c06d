// tests/kernels/attention_cases.h: the generated inputs of the two attention kernels, shared by
// their tests (test_msda.cpp, test_attention.cpp), the 16-lane body test (test_simd_bodies.cpp)
// and the PyTorch parity test (parity/test_parity_torch_attention.cpp):
//   multi-scale deformable attention: MsdaCase (levels, points, heads, head width, where the
//     sampling locations fall) -> MsdaData (value, reference points, offsets and logits in
//     padded rows) -> run_msda() through a KernelTable;
//   attention: AttnCase (Lq, Lk, head width, mask kind, large logits) -> AttnData (strided q/k/v
//     with the head at column 3, the mask) -> run_attn() through a KernelTable.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace m2fp::kern::ktest {

// ---- multi-scale deformable attention cases ----------------------------------------------------
enum class Loc { Random, FarOutside, NonFinite, Border, Centres };
inline const char* loc_name(Loc l) {
  switch (l) {
    case Loc::Random: return "random";
    case Loc::FarOutside: return "far-outside";
    case Loc::NonFinite: return "non-finite";
    case Loc::Border: return "border";
    case Loc::Centres: return "centres";
  }
  return "?";
}

struct MsdaCase {
  std::vector<std::pair<int64_t, int64_t>> levels;  // (H, W) per level
  int P, heads, dh;
  int64_t Lq;
  Loc loc;
  bool logits_first;  // column order of the qp rows (the kernel must use the pointers)
  uint32_t seed;
  float logit_scale = 1.f;  // logits ~ N(0, 2*logit_scale): 100 tests the softmax's stability

  std::string str() const {
    std::ostringstream s;
    s << "msda{levels=";
    for (auto& l : levels) s << l.first << "x" << l.second << ",";
    s << " P=" << P << " heads=" << heads << " dh=" << dh << " Lq=" << Lq << " loc=" << loc_name(loc)
      << " logits_first=" << logits_first << " logit_scale=" << logit_scale << " seed=" << seed
      << "}";
    return s.str();
  }
};

struct MsdaData {
  MsdaCase c;
  int L = 0, n1 = 0, n2 = 0;
  int64_t len_in = 0, ld_qp = 0, off_col = 0, logit_col = 0;
  std::vector<int64_t> shapes, starts;  // [L][2], [L]
  std::vector<float> value;             // [len_in, heads*dh]
  std::vector<float> ref;               // [Lq, 2]
  std::vector<float> qp;                // [Lq, ld_qp]: offsets and logits at their columns
  const float* offsets() const { return qp.data() + off_col; }
  const float* logits() const { return qp.data() + logit_col; }
};

inline MsdaData make_msda(const MsdaCase& c) {
  MsdaData d;
  d.c = c;
  d.L = (int)c.levels.size();
  for (auto& l : c.levels) {
    d.starts.push_back(d.len_in);
    d.shapes.push_back(l.first);
    d.shapes.push_back(l.second);
    d.len_in += l.first * l.second;
  }
  d.n1 = c.heads * d.L * c.P;
  d.n2 = 2 * d.n1;
  d.ld_qp = d.n1 + d.n2 + 5;  // padded rows
  d.off_col = c.logits_first ? d.n1 + 3 : 1;
  d.logit_col = c.logits_first ? 1 : d.n2 + 3;
  std::mt19937 rng(c.seed);
  d.value = randn((size_t)d.len_in * c.heads * c.dh, rng);
  d.qp = randn((size_t)c.Lq * d.ld_qp, rng, 2.f);  // logits ~ N(0, 2), offsets set below
  for (int64_t q = 0; q < c.Lq; ++q)
    for (int i = 0; i < d.n1; ++i) d.qp[q * d.ld_qp + d.logit_col + i] *= c.logit_scale;
  d.ref.resize((size_t)c.Lq * 2);
  std::uniform_real_distribution<float> u01(0.f, 1.f);
  std::uniform_int_distribution<int> pick(0, 1 << 20);
  for (int64_t q = 0; q < c.Lq; ++q) {
    float* ref = d.ref.data() + 2 * q;
    float* off = d.qp.data() + q * d.ld_qp + d.off_col;  // [heads, L, P, 2]
    ref[0] = u01(rng), ref[1] = u01(rng);
    if (c.loc == Loc::Border) ref[0] = ref[1] = 0.5f;
    if (c.loc == Loc::Centres) ref[0] = ref[1] = 0.f;
    for (int h = 0; h < c.heads; ++h)
      for (int l = 0; l < d.L; ++l)
        for (int p = 0; p < c.P; ++p)
          for (int a = 0; a < 2; ++a) {
            float& o = off[((h * d.L + l) * c.P + p) * 2 + a];
            const double size = (double)(a ? c.levels[l].first : c.levels[l].second);
            switch (c.loc) {
              case Loc::Random: break;  // N(0, 2) pixels around the reference
              case Loc::FarOutside: {
                static const double far[] = {-1e8, -3e5, -1e3, -40, 1e3, 3e5, 1e8, 3e9, -3e9, 0};
                o = (float)far[pick(rng) % 10];
                break;
              }
              case Loc::NonFinite: {
                static const float bad[] = {INFINITY, -INFINITY, NAN, 1e30f, -1e30f, 0.f, 0.5f};
                o = bad[pick(rng) % 7];
                break;
              }
              case Loc::Border: {
                // target pixel coordinates at and around the map's edges, from ref = 0.5
                const double px[] = {-1.0, -0.5, -1e-4, 0.0, 1e-4, size - 1.0, size - 1.0 + 1e-4,
                                     size - 0.5, size - 1e-4, size, -1.0001, size + 1e-3};
                const double target = px[pick(rng) % 12];
                o = (float)((target + 0.5) - 0.5 * size);  // loc = 0.5 + o/size -> pix = target
                break;
              }
              case Loc::Centres: {
                // from ref = 0: loc = o/size, pix = o - 0.5: integer pixel centres and half-pixel
                // edges (exact when size is a power of two)
                const int k = pick(rng) % (int)(size + 2) - 1;
                o = (float)(k + ((pick(rng) % 3 == 0) ? 0.0 : 0.5));
                break;
              }
            }
          }
  }
  return d;
}

inline std::vector<float> run_msda(const kern::KernelTable& t, const MsdaData& d, int64_t q0,
                                   int64_t q1, std::vector<float>* into = nullptr) {
  std::vector<float> out((size_t)d.c.Lq * d.c.heads * d.c.dh, -7.f);
  std::vector<float>& o = into ? *into : out;
  t.ms_deform_attn(d.value.data(), d.shapes.data(), d.starts.data(), d.L, d.c.P, d.c.heads, d.c.dh,
                   d.ref.data(), d.offsets(), d.logits(), d.ld_qp, o.data(), q0, q1);
  return out;
}

// bfloat16 (nearest even; the test data is finite) and back; the case's values in bfloat16; run_msda
// through ms_deform_attn_bf16 (bfloat16 values and outputs).
inline std::vector<uint16_t> to_bf16(const std::vector<float>& f) {
  std::vector<uint16_t> b(f.size());
  for (size_t i = 0; i < b.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &f[i], 4);
    b[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  return b;
}
inline std::vector<uint16_t> msda_value_bf16(const MsdaData& d) { return to_bf16(d.value); }
inline std::vector<float> msda_widened(const std::vector<uint16_t>& b) {
  std::vector<float> f(b.size());
  for (size_t i = 0; i < b.size(); ++i) {
    const uint32_t u = (uint32_t)b[i] << 16;
    std::memcpy(&f[i], &u, 4);
  }
  return f;
}
inline std::vector<uint16_t> run_msda_bf16(const kern::KernelTable& t, const MsdaData& d,
                                           const std::vector<uint16_t>& vb, int64_t q0, int64_t q1,
                                           std::vector<uint16_t>* into = nullptr) {
  std::vector<uint16_t> out((size_t)d.c.Lq * d.c.heads * d.c.dh, 0xdead);
  std::vector<uint16_t>& o = into ? *into : out;
  t.ms_deform_attn_bf16(vb.data(), d.shapes.data(), d.starts.data(), d.L, d.c.P, d.c.heads, d.c.dh, d.ref.data(),
                        d.offsets(), d.logits(), d.ld_qp, o.data(), q0, q1);
  return out;
}

inline std::vector<MsdaCase> msda_cases() {
  std::vector<MsdaCase> v;
  uint32_t seed = 1;
  const std::vector<std::vector<std::pair<int64_t, int64_t>>> level_sets = {
      {{13, 17}},                       // 1 level
      {{13, 17}, {1, 1}},               // 2 levels, a single-token level
      {{5, 9}, {13, 17}, {26, 34}},     // 3 levels like the model (x2 per level)
      {{1, 1}, {1, 3}, {7, 1}},         // degenerate maps
      {{16, 8}, {4, 2}, {1, 1}},        // powers of two (exact pixel centres)
  };
  for (int dh : {1, 7, 13, 32, 33})
    for (size_t ls = 0; ls < level_sets.size(); ++ls) {
      const int P = 1 + (int)((dh + ls) % 4);
      const int heads = (dh == 32) ? 8 : 1 + (int)((dh + ls) % 3);
      for (Loc loc : {Loc::Random, Loc::FarOutside, Loc::NonFinite, Loc::Border, Loc::Centres})
        v.push_back({level_sets[ls], P, heads, dh, 37, loc, (seed % 2) == 0, seed++});
    }
  // every point count with the model's head layout
  for (int P = 1; P <= 4; ++P)
    v.push_back({{{5, 9}, {13, 17}, {26, 34}}, P, 8, 32, 61, Loc::Random, P % 2 == 0, seed++});
  // large logits (|x| up to ~1000): the softmax must subtract the maximum
  for (int dh : {7, 32})
    v.push_back({{{5, 9}, {13, 17}}, 3, 8, dh, 29, Loc::Random, false, seed++, 100.f});
  return v;
}

// ---- attention cases ---------------------------------------------------------------------------
enum class Mask { None, Random, Regions, FullRows, SingleKey, AllZero };
inline const char* mask_name(Mask m) {
  switch (m) {
    case Mask::None: return "none";
    case Mask::Random: return "random";
    case Mask::Regions: return "regions";
    case Mask::FullRows: return "fully-masked-rows";
    case Mask::SingleKey: return "single-key-rows";
    case Mask::AllZero: return "all-zero";
  }
  return "?";
}

struct AttnCase {
  int64_t Lq, Lk;
  int dh;
  Mask mask;
  bool large_logits;  // integer q and k (exact scores in any order), scale 1: |s| up to ~2000
  uint32_t seed;
  std::string str() const {
    std::ostringstream s;
    s << "attention{Lq=" << Lq << " Lk=" << Lk << " dh=" << dh << " mask=" << mask_name(mask)
      << " large_logits=" << large_logits << " seed=" << seed << "}";
    return s.str();
  }
};

struct AttnData {
  AttnCase c;
  int64_t ldq, ldk, ldv, ldo, col;  // row strides and the head's first column
  float scale;
  std::vector<float> q, k, v;
  std::vector<uint8_t> mask;  // [Lq, Lk] or empty
};

inline std::vector<uint8_t> make_mask(Mask kind, int64_t Lq, int64_t Lk, std::mt19937& rng) {
  std::vector<uint8_t> m;
  if (kind == Mask::None) return m;
  m.assign((size_t)(Lq * Lk), 0);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::uniform_int_distribution<int64_t> key(0, Lk - 1);
  for (int64_t i = 0; i < Lq; ++i) {
    uint8_t* r = m.data() + i * Lk;
    switch (kind) {
      case Mask::Random:
        for (int64_t j = 0; j < Lk; ++j) r[j] = u(rng) < 0.7f ? 1 : 0;
        break;
      case Mask::Regions: {  // one contiguous run of allowed keys per query (like a region mask)
        const int64_t a = key(rng), b = std::min(Lk, a + 1 + key(rng) / 4);
        for (int64_t j = 0; j < Lk; ++j) r[j] = (j >= a && j < b) ? 0 : 1;
        break;
      }
      case Mask::FullRows:  // every third row fully masked, the others random
        for (int64_t j = 0; j < Lk; ++j) r[j] = (i % 3 == 0) ? 1 : (u(rng) < 0.5f ? 1 : 0);
        break;
      case Mask::SingleKey: {  // exactly one allowed key per row (varying values: 255 and 1)
        const int64_t a = key(rng);
        for (int64_t j = 0; j < Lk; ++j) r[j] = (j == a) ? 0 : (j % 2 ? 255 : 1);
        break;
      }
      default: break;  // AllZero: a mask that excludes nothing
    }
  }
  return m;
}

inline AttnData make_attn(const AttnCase& c) {
  AttnData d;
  d.c = c;
  d.col = 3;  // the head's columns start at 3 in rows wider than dh
  d.ldq = c.dh + 5, d.ldk = 2 * c.dh + 4, d.ldv = c.dh + 9, d.ldo = c.dh + 6;
  std::mt19937 rng(c.seed);
  d.q = randn((size_t)(c.Lq * d.ldq), rng);
  d.k = randn((size_t)(c.Lk * d.ldk), rng);
  d.v = randn((size_t)(c.Lk * d.ldv), rng);
  d.scale = 1.f / std::sqrt((float)c.dh);
  if (c.large_logits) {
    std::uniform_int_distribution<int> ii(-8, 8);
    for (auto& x : d.q) x = (float)ii(rng);
    for (auto& x : d.k) x = (float)ii(rng);
    d.scale = 1.f;
  }
  d.mask = make_mask(c.mask, c.Lq, c.Lk, rng);
  return d;
}

inline void run_attn(const kern::KernelTable& t, const AttnData& d, int64_t q0, int64_t q1,
                     std::vector<float>& out) {
  t.attention_head(d.q.data() + d.col, d.ldq, d.k.data() + d.col, d.ldk, d.v.data() + d.col, d.ldv,
                   d.mask.empty() ? nullptr : d.mask.data(), out.data() + d.col, d.ldo, d.c.Lk,
                   d.c.dh, d.scale, q0, q1);
}

// The head's [Lq, dh] block of an output with row stride ldo.
inline std::vector<float> head_block(const AttnData& d, const std::vector<float>& out) {
  std::vector<float> r((size_t)(d.c.Lq * d.c.dh));
  for (int64_t i = 0; i < d.c.Lq; ++i)
    std::memcpy(r.data() + i * d.c.dh, out.data() + i * d.ldo + d.col, sizeof(float) * d.c.dh);
  return r;
}

inline std::vector<AttnCase> attn_cases() {
  std::vector<AttnCase> v;
  uint32_t seed = 100;
  for (int64_t Lk : {1, 7, 100, 1000})
    for (int dh : {1, 7, 13, 32, 33})
      for (Mask m : {Mask::None, Mask::Random, Mask::Regions, Mask::FullRows, Mask::SingleKey,
                     Mask::AllZero})
        v.push_back({37, Lk, dh, m, false, seed++});
  // the model's largest cross-attention and self-attention
  for (Mask m : {Mask::Random, Mask::Regions, Mask::FullRows})
    v.push_back({100, 10560, 32, m, false, seed++});
  v.push_back({100, 100, 32, Mask::None, false, seed++});
  // large logits (stability): exact integer scores up to ~2000
  for (int64_t Lk : {7, 1000, 10560})
    for (Mask m : {Mask::None, Mask::Random})
      v.push_back({29, Lk, 32, m, true, seed++});
  return v;
}

}  // namespace m2fp::kern::ktest
