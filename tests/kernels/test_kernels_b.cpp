// tests/kernels/test_kernels_b.cpp: fused multi-scale deformable attention, masked attention and
// the sine position encoding (kernels part B).
//
// 1. Every SIMD path against the scalar reference (kern::table_for) at awkward sizes: odd head
//    widths, 13x17 and 1x1 levels, 1..3 levels, 1..4 points, sampling locations far outside, on
//    the border and exactly on pixel centres/edges; attention with Lk = 1 .. 10560, null masks,
//    random and region masks, fully masked rows, single-key rows, large logits. Each op has its
//    own tolerance, printed with the op's parameters on failure.
// 2. The threaded entry points against the per-ISA chunk functions.
// 3. Semantic parity with PyTorch: M2FP_PYTHON runs tests/kernels/kernels_b_torch_ref.py on
//    inputs written to a temporary directory (grid_sample formulation of MSDeformAttn,
//    F.multi_head_attention_forward with a bool mask, PositionEmbeddingSine).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/avx2/simd_ops.h"
#include "kernels/kernels.h"
// The shared SIMD bodies, instantiated below with an emulated 16-lane vector as well.
#include "kernels/attention_simd.h"
#include "kernels/msda_simd.h"

namespace {

using m2fp::kern::Isa;
namespace kern = m2fp::kern;
namespace fs = std::filesystem;

std::vector<Isa> simd_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::Avx2, Isa::Avx512})
    if (kern::isa_supported(isa)) v.push_back(isa);
  return v;
}

// ---- comparison with a labelled report -------------------------------------------------------
struct Tol {
  double atol, rtol;  // pass when |got - want| <= atol + rtol * |want|
};

struct Diff {
  double max_abs = 0, max_rel = 0;
  size_t worst = 0, bad = 0;
  float got = 0, want = 0;
};

Diff diff(const float* got, const float* want, size_t n, Tol tol) {
  Diff d;
  double worst_excess = -1;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    const double a = std::fabs(g - w);
    const bool same_nonfinite = (std::isnan(g) && std::isnan(w)) || (std::isinf(g) && g == w);
    const double ad = same_nonfinite ? 0.0 : (std::isfinite(a) ? a : INFINITY);
    const double rd = ad / std::max(std::fabs(w), 1e-30);
    const double excess = ad - (tol.atol + tol.rtol * std::fabs(w));
    if (excess > 0 || std::isnan(excess)) ++d.bad;
    if (ad > d.max_abs) d.max_abs = ad;
    if (std::fabs(w) > 1e-3 && rd > d.max_rel) d.max_rel = rd;
    if (excess > worst_excess || std::isnan(excess)) {
      worst_excess = std::isnan(excess) ? INFINITY : excess;
      d.worst = i, d.got = got[i], d.want = want[i];
    }
  }
  return d;
}

std::string report(const std::string& what, const Diff& d, Tol tol, size_t n) {
  std::ostringstream s;
  s << what << ": max|diff| " << d.max_abs << ", max rel (|want|>1e-3) " << d.max_rel << " over "
    << n << " values; tol atol " << tol.atol << " rtol " << tol.rtol << "; " << d.bad
    << " out of tolerance, worst at " << d.worst << " got " << d.got << " want " << d.want;
  return s.str();
}

// Checks and prints (always: the max differences are part of the test log).
void expect_close(const std::string& what, const std::vector<float>& got,
                  const std::vector<float>& want, Tol tol) {
  ASSERT_EQ(got.size(), want.size()) << what;
  const Diff d = diff(got.data(), want.data(), got.size(), tol);
  const std::string r = report(what, d, tol, got.size());
  std::printf("  %s\n", r.c_str());
  EXPECT_EQ(d.bad, 0u) << r;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.f) {
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// ---- multi-scale deformable attention cases --------------------------------------------------
enum class Loc { Random, FarOutside, NonFinite, Border, Centres };
const char* loc_name(Loc l) {
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

MsdaData make_msda(const MsdaCase& c) {
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

std::vector<float> run_msda(const kern::KernelTable& t, const MsdaData& d, int64_t q0, int64_t q1,
                            std::vector<float>* into = nullptr) {
  std::vector<float> out((size_t)d.c.Lq * d.c.heads * d.c.dh, -7.f);
  std::vector<float>& o = into ? *into : out;
  t.ms_deform_attn(d.value.data(), d.shapes.data(), d.starts.data(), d.L, d.c.P, d.c.heads, d.c.dh,
                   d.ref.data(), d.offsets(), d.logits(), d.ld_qp, o.data(), q0, q1);
  return out;
}

std::vector<MsdaCase> msda_cases() {
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

TEST(KernelsB_MsDeformAttn, SimdMatchesScalar) {
  // Same float operations in the same order except exp (SIMD exp < 1 ulp vs std::exp): the
  // attention weights differ by an ulp or two, the outputs by ~1e-7.
  const Tol tol{1e-6, 2e-6};
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  int n = 0;
  double worst = 0;
  for (const MsdaCase& c : msda_cases()) {
    const MsdaData d = make_msda(c);
    const std::vector<float> want = run_msda(kern::table_for(Isa::Scalar), d, 0, c.Lq);
    for (Isa isa : isas) {
      // one call over all queries, and the same queries split in two uneven calls
      const std::vector<float> got = run_msda(kern::table_for(isa), d, 0, c.Lq);
      std::vector<float> split((size_t)c.Lq * c.heads * c.dh, -7.f);
      run_msda(kern::table_for(isa), d, 0, 5, &split);
      run_msda(kern::table_for(isa), d, 5, c.Lq, &split);
      const Diff dd = diff(got.data(), want.data(), got.size(), tol);
      worst = std::max(worst, dd.max_abs);
      EXPECT_EQ(dd.bad, 0u) << kern::isa_name(isa) << " " << report(c.str(), dd, tol, got.size());
      EXPECT_EQ(std::memcmp(got.data(), split.data(), got.size() * sizeof(float)), 0)
          << kern::isa_name(isa) << " split calls differ: " << c.str();
      for (float x : got) ASSERT_TRUE(std::isfinite(x)) << kern::isa_name(isa) << " " << c.str();
      ++n;
    }
  }
  std::string names;
  for (Isa isa : isas) names += std::string(" ") + kern::isa_name(isa);
  std::printf("  ms_deform_attn: %d (case, isa) pairs (isas:%s), max|diff| vs scalar %g (atol %g rtol %g)\n",
              n, names.c_str(), worst, tol.atol, tol.rtol);
}

// The scalar reference on hand-checkable inputs: a 2x2 map, one head/level/point.
TEST(KernelsB_MsDeformAttn, ScalarHandChecked) {
  const int64_t shapes[2] = {2, 2}, starts[1] = {0};
  const float value[4] = {1.f, 2.f, 3.f, 4.f};  // rows (y, x): (0,0)=1 (0,1)=2 (1,0)=3 (1,1)=4
  auto sample = [&](float rx, float ry, float ox, float oy) {
    const float qp[3] = {ox, oy, 0.f};  // offsets (x, y), logit
    const float ref[2] = {rx, ry};
    float out = -1;
    kern::table_for(Isa::Scalar).ms_deform_attn(value, shapes, starts, 1, 1, 1, 1, ref, qp, qp + 2, 3,
                                                &out, 0, 1);
    return out;
  };
  EXPECT_FLOAT_EQ(sample(0.25f, 0.25f, 0, 0), 1.f);  // centre of pixel (0, 0)
  EXPECT_FLOAT_EQ(sample(0.75f, 0.75f, 0, 0), 4.f);
  EXPECT_FLOAT_EQ(sample(0.5f, 0.5f, 0, 0), 2.5f);   // the middle: mean of the 4 pixels
  EXPECT_FLOAT_EQ(sample(0.5f, 0.25f, 0, 0), 1.5f);  // between (0,0) and (0,1)
  EXPECT_FLOAT_EQ(sample(0.f, 0.25f, 0, 0), 0.5f);   // half outside on the left: zero padding
  EXPECT_FLOAT_EQ(sample(0.f, 0.f, 0, 0), 0.25f);    // corner: one quarter of pixel (0,0)
  EXPECT_FLOAT_EQ(sample(0.25f, 0.25f, 1.f, 0), 2.f);  // offset of one pixel (offset / W)
  EXPECT_FLOAT_EQ(sample(0.25f, 0.25f, -5.f, 0), 0.f);  // far outside
}

TEST(KernelsB_MsDeformAttn, ThreadedEntryPointMatchesTable) {
  const MsdaCase c{{{20, 33}, {40, 66}}, 4, 8, 32, 1000, Loc::Random, false, 99};
  const MsdaData d = make_msda(c);
  const std::vector<float> want = run_msda(kern::active(), d, 0, c.Lq);
  std::vector<float> got(want.size(), -7.f);
  kern::ms_deform_attn(d.value.data(), d.shapes.data(), d.starts.data(), d.L, c.P, c.heads, c.dh,
                       d.ref.data(), d.offsets(), d.logits(), d.ld_qp, got.data(), c.Lq);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
      << "threaded ms_deform_attn differs from one " << kern::isa_name(kern::active_isa())
      << " call: " << c.str();
}

// ---- attention cases -------------------------------------------------------------------------
enum class Mask { None, Random, Regions, FullRows, SingleKey, AllZero };
const char* mask_name(Mask m) {
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

std::vector<uint8_t> make_mask(Mask kind, int64_t Lq, int64_t Lk, std::mt19937& rng) {
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

AttnData make_attn(const AttnCase& c) {
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

void run_attn(const kern::KernelTable& t, const AttnData& d, int64_t q0, int64_t q1,
              std::vector<float>& out) {
  t.attention_head(d.q.data() + d.col, d.ldq, d.k.data() + d.col, d.ldk, d.v.data() + d.col, d.ldv,
                   d.mask.empty() ? nullptr : d.mask.data(), out.data() + d.col, d.ldo, d.c.Lk,
                   d.c.dh, d.scale, q0, q1);
}

// The head's [Lq, dh] block of an output with row stride ldo.
std::vector<float> head_block(const AttnData& d, const std::vector<float>& out) {
  std::vector<float> r((size_t)(d.c.Lq * d.c.dh));
  for (int64_t i = 0; i < d.c.Lq; ++i)
    std::memcpy(r.data() + i * d.c.dh, out.data() + i * d.ldo + d.col, sizeof(float) * d.c.dh);
  return r;
}

std::vector<AttnCase> attn_cases() {
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

TEST(KernelsB_Attention, SimdMatchesScalar) {
  // Differences: online softmax rescaling, summation order over keys, SIMD exp (< 1 ulp); the
  // scores themselves are bit-identical. Observed ~5e-7 on N(0,1) values.
  const Tol tol{3e-6, 1e-5};
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path on this CPU";
  int n = 0;
  double worst = 0;
  for (const AttnCase& c : attn_cases()) {
    const AttnData d = make_attn(c);
    std::vector<float> ref_out((size_t)(c.Lq * d.ldo), -7.f);
    run_attn(kern::table_for(Isa::Scalar), d, 0, c.Lq, ref_out);
    const std::vector<float> want = head_block(d, ref_out);
    for (Isa isa : isas) {
      // calls of 8 queries (as the threaded entry point) and one odd split (17 + rest)
      std::vector<float> out8((size_t)(c.Lq * d.ldo), -7.f), outs((size_t)(c.Lq * d.ldo), -7.f);
      for (int64_t q0 = 0; q0 < c.Lq; q0 += 8)
        run_attn(kern::table_for(isa), d, q0, std::min<int64_t>(c.Lq, q0 + 8), out8);
      run_attn(kern::table_for(isa), d, 0, std::min<int64_t>(17, c.Lq), outs);
      run_attn(kern::table_for(isa), d, std::min<int64_t>(17, c.Lq), c.Lq, outs);
      for (const auto* o : {&out8, &outs}) {
        const std::vector<float> got = head_block(d, *o);
        const Diff dd = diff(got.data(), want.data(), got.size(), tol);
        worst = std::max(worst, dd.max_abs);
        EXPECT_EQ(dd.bad, 0u) << kern::isa_name(isa) << (o == &out8 ? " (8-query calls) " : " (17+rest) ")
                              << report(c.str(), dd, tol, got.size());
      }
      // columns outside the head are untouched
      for (int64_t i = 0; i < c.Lq; ++i)
        for (int64_t j = 0; j < d.ldo; ++j) {
          if (j >= d.col && j < d.col + c.dh) continue;
          ASSERT_EQ(out8[i * d.ldo + j], -7.f)
              << kern::isa_name(isa) << " wrote outside the head: " << c.str();
        }
      ++n;
    }
  }
  std::string names;
  for (Isa isa : isas) names += std::string(" ") + kern::isa_name(isa);
  std::printf("  attention_head: %d (case, isa) pairs (isas:%s), max|diff| vs scalar %g (atol %g rtol %g)\n",
              n, names.c_str(), worst, tol.atol, tol.rtol);
}

// Semantics of the reference itself on small hand-checkable cases.
TEST(KernelsB_Attention, ScalarSemantics) {
  const auto& t = kern::table_for(Isa::Scalar);
  // 1 query, 3 keys, dh 1: scores (q*scale)*k = 0, 1, 2 with q = 1, scale = 1.
  const float q[1] = {1.f}, k[3] = {0.f, 1.f, 2.f}, v[3] = {10.f, 20.f, 40.f};
  float out = 0;
  t.attention_head(q, 1, k, 1, v, 1, nullptr, &out, 1, 3, 1, 1.f, 0, 1);
  const double e0 = 1, e1 = std::exp(1.0), e2 = std::exp(2.0);
  EXPECT_NEAR(out, (10 * e0 + 20 * e1 + 40 * e2) / (e0 + e1 + e2), 1e-4);
  const uint8_t m_one[3] = {1, 0, 1};  // only key 1
  t.attention_head(q, 1, k, 1, v, 1, m_one, &out, 1, 3, 1, 1.f, 0, 1);
  EXPECT_FLOAT_EQ(out, 20.f);
  const uint8_t m_all[3] = {1, 1, 1};  // fully masked: attends to all keys
  float out_all = 0, out_none = 0;
  t.attention_head(q, 1, k, 1, v, 1, m_all, &out_all, 1, 3, 1, 1.f, 0, 1);
  t.attention_head(q, 1, k, 1, v, 1, nullptr, &out_none, 1, 3, 1, 1.f, 0, 1);
  EXPECT_EQ(out_all, out_none);
  // huge logits do not overflow
  const float qb[1] = {1e4f};
  t.attention_head(qb, 1, k, 1, v, 1, nullptr, &out, 1, 3, 1, 1.f, 0, 1);
  EXPECT_FLOAT_EQ(out, 40.f);
}

TEST(KernelsB_Attention, ThreadedEntryPointMatchesTable) {
  // 8 heads x 32, Lq 100, Lk 2640 with a region mask: all heads through kern::masked_attention
  // against per-head calls of the active table in blocks of 8 queries.
  const int heads = 8, dh = 32;
  const int64_t Lq = 100, Lk = 2640, E = heads * dh;
  std::mt19937 rng(7);
  const std::vector<float> q = randn((size_t)(Lq * E), rng), k = randn((size_t)(Lk * E), rng),
                           v = randn((size_t)(Lk * E), rng);
  const std::vector<uint8_t> mask = make_mask(Mask::Regions, Lq, Lk, rng);
  const float scale = 1.f / std::sqrt(32.f);
  std::vector<float> got((size_t)(Lq * E), -7.f), want((size_t)(Lq * E), -7.f);
  kern::masked_attention(q.data(), E, k.data(), E, v.data(), E, mask.data(), got.data(), E, Lq, Lk,
                         heads, dh, scale);
  const auto& t = kern::active();
  for (int h = 0; h < heads; ++h)
    for (int64_t q0 = 0; q0 < Lq; q0 += 8)
      t.attention_head(q.data() + h * dh, E, k.data() + h * dh, E, v.data() + h * dh, E, mask.data(),
                       want.data() + h * dh, E, Lk, dh, scale, q0, std::min<int64_t>(Lq, q0 + 8));
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
      << "threaded masked_attention differs from per-head " << kern::isa_name(kern::active_isa())
      << " calls";
}

// ---- the shared SIMD bodies at 16 lanes, on any AVX2 machine -----------------------------------
// V16e: a 16-lane vector made of two V8 halves. Instantiating kernels/msda_simd.h and
// kernels/attention_simd.h with it runs their 16-lane logic (tile tails, the two 8-lane groups
// of the mask transpose, 16-lane coordinate chunks) where no AVX-512 CPU is available; the
// V16 intrinsics themselves are covered by SimdMatchesScalar on AVX-512 machines.
struct V16e {
  using V8 = m2fp::kern::V8;
  static constexpr int W = 16;
  struct F { V8::F a, b; };
  struct I { V8::I a, b; };
  using M = F;
  static F zero() { return {V8::zero(), V8::zero()}; }
  static F set1(float x) { return {V8::set1(x), V8::set1(x)}; }
  static F bcast(const float* p) { return set1(*p); }
  static F load(const float* p) { return {V8::load(p), V8::load(p + 8)}; }
  static void store(float* p, F x) { V8::store(p, x.a), V8::store(p + 8, x.b); }
  static F load_n(const float* p, int n) {
    return {V8::load_n(p, std::min(n, 8)), V8::load_n(p + 8, std::max(n - 8, 0))};
  }
  static void store_n(float* p, F x, int n) {
    V8::store_n(p, x.a, std::min(n, 8)), V8::store_n(p + 8, x.b, std::max(n - 8, 0));
  }
#define M2FP_V16E_BIN(name) \
  static F name(F x, F y) { return {V8::name(x.a, y.a), V8::name(x.b, y.b)}; }
  M2FP_V16E_BIN(add) M2FP_V16E_BIN(sub) M2FP_V16E_BIN(mul) M2FP_V16E_BIN(div) M2FP_V16E_BIN(max)
  M2FP_V16E_BIN(min) M2FP_V16E_BIN(ge) M2FP_V16E_BIN(le) M2FP_V16E_BIN(lt) M2FP_V16E_BIN(mand)
  M2FP_V16E_BIN(where)
#undef M2FP_V16E_BIN
  static F fma(F x, F y, F z) { return {V8::fma(x.a, y.a, z.a), V8::fma(x.b, y.b, z.b)}; }
  static F floor(F x) { return {V8::floor(x.a), V8::floor(x.b)}; }
  static F exp(F x) { return {V8::exp(x.a), V8::exp(x.b)}; }
  static F select(M m, F x, F y) { return {V8::select(m.a, x.a, y.a), V8::select(m.b, x.b, y.b)}; }
  static F pair(float x, float y) { return {V8::pair(x, y), V8::pair(x, y)}; }
  static F dup_odd(F x) { return {V8::dup_odd(x.a), V8::dup_odd(x.b)}; }
  static I dup_odd_i(I x) { return {V8::dup_odd_i(x.a), V8::dup_odd_i(x.b)}; }
  static M bytes_nonzero(const uint8_t* p) { return {V8::bytes_nonzero(p), V8::bytes_nonzero(p + 8)}; }
  static bool any_nonzero(F x) { return V8::any_nonzero(x.a) || V8::any_nonzero(x.b); }
  static I cvtt(F x) { return {V8::cvtt(x.a), V8::cvtt(x.b)}; }
  static I loadi(const int32_t* p) { return {V8::loadi(p), V8::loadi(p + 8)}; }
  static void storei(int32_t* p, I x) { V8::storei(p, x.a), V8::storei(p + 8, x.b); }
  static I addi(I x, I y) { return {V8::addi(x.a, y.a), V8::addi(x.b, y.b)}; }
  static I muli(I x, I y) { return {V8::muli(x.a, y.a), V8::muli(x.b, y.b)}; }
  static void prefetch(const void* p) { V8::prefetch(p); }
};

TEST(KernelsB_SimdBodies, SixteenLanesAndAvx512BlockingOnAvx2) {
  if (!kern::isa_supported(Isa::Avx2)) GTEST_SKIP() << "no AVX2";
  const Tol mtol{1e-6, 2e-6}, atol{3e-6, 1e-5};  // as SimdMatchesScalar
  int n = 0;
  for (const MsdaCase& c : msda_cases()) {
    const MsdaData d = make_msda(c);
    const std::vector<float> want = run_msda(kern::table_for(Isa::Scalar), d, 0, c.Lq);
    std::vector<float> got(want.size(), -7.f);
    m2fp::kern::msda_chunk<V16e>(d.value.data(), d.shapes.data(), d.starts.data(), d.L, c.P,
                                 c.heads, c.dh, d.ref.data(), d.offsets(), d.logits(), d.ld_qp,
                                 got.data(), 0, c.Lq);
    const Diff dd = diff(got.data(), want.data(), got.size(), mtol);
    EXPECT_EQ(dd.bad, 0u) << "msda_chunk<V16e> " << report(c.str(), dd, mtol, got.size());
    ++n;
  }
  for (const AttnCase& c : attn_cases()) {
    if (c.Lk > 1000) continue;
    const AttnData d = make_attn(c);
    std::vector<float> ref_out((size_t)(c.Lq * d.ldo), -7.f);
    run_attn(kern::table_for(Isa::Scalar), d, 0, c.Lq, ref_out);
    const std::vector<float> want = head_block(d, ref_out);
    // 16-lane tiles (one whole-range call: tiles 16 + 16 + 5) and the AVX-512 path's 8-lane
    // blocking (8 keys x 16 channels register blocks)
    std::vector<float> o16((size_t)(c.Lq * d.ldo), -7.f), o8((size_t)(c.Lq * d.ldo), -7.f);
    const float* q = d.q.data() + d.col;
    const float* k = d.k.data() + d.col;
    const float* v = d.v.data() + d.col;
    const uint8_t* mask = d.mask.empty() ? nullptr : d.mask.data();
    m2fp::kern::attention_range<V16e, 8, 16>(q, d.ldq, k, d.ldk, v, d.ldv, mask, o16.data() + d.col,
                                             d.ldo, c.Lk, c.dh, d.scale, 0, c.Lq);
    m2fp::kern::attention_range<m2fp::kern::V8, 8, 16>(q, d.ldq, k, d.ldk, v, d.ldv, mask,
                                                       o8.data() + d.col, d.ldo, c.Lk, c.dh,
                                                       d.scale, 0, c.Lq);
    for (const auto* o : {&o16, &o8}) {
      const std::vector<float> got = head_block(d, *o);
      const Diff dd = diff(got.data(), want.data(), got.size(), atol);
      EXPECT_EQ(dd.bad, 0u) << (o == &o16 ? "attention_range<V16e,8,16> " : "attention_range<V8,8,16> ")
                            << report(c.str(), dd, atol, got.size());
    }
    ++n;
  }
  std::printf("  %d cases through the 16-lane emulation and the 8x16 register blocking\n", n);
}

// ---- SIMD exp accuracy (the AVX2 implementation; AVX-512 uses the same algorithm) ------------
TEST(KernelsB_SimdExp, AccuracyAndDomain) {
  using m2fp::kern::V8;
  if (!kern::isa_supported(Isa::Avx2)) GTEST_SKIP() << "no AVX2";
  double max_ulp = 0;
  float worst_x = 0;
  alignas(32) float xs[8], ys[8];
  int64_t count = 0;
  // every 613th float bit pattern in [-87.3, 88]
  for (uint32_t bits = 0; bits < 0xFFFFFFFFu - 613; bits += 613) {
    float x;
    std::memcpy(&x, &bits, 4);
    if (!(x >= -87.3f && x <= 88.f)) continue;
    xs[count % 8] = x;
    if (++count % 8) continue;
    V8::store(ys, V8::exp(V8::load(xs)));
    for (int i = 0; i < 8; ++i) {
      const double want = std::exp((double)xs[i]);
      const float wf = (float)want;
      const double ulp = std::nextafter(wf, INFINITY) - wf;
      const double e = std::fabs((double)ys[i] - want) / ulp;
      if (e > max_ulp) max_ulp = e, worst_x = xs[i];
    }
  }
  std::printf("  V8::exp: max error %.3f ulp (at x = %.9g) over %lld inputs in [-87.3, 88]\n",
              max_ulp, worst_x, (long long)count);
  EXPECT_LE(max_ulp, 2.5);
  // domain edges: exact 0 below FLT_MIN's log, -inf -> 0, exp(0) = 1 exactly
  const float edge[8] = {-INFINITY, -1000.f, -87.5f, 0.f, -0.f, -FLT_MAX, 1.f, -1.f};
  V8::store(ys, V8::exp(V8::load(edge)));
  EXPECT_EQ(ys[0], 0.f);
  EXPECT_EQ(ys[1], 0.f);
  EXPECT_EQ(ys[2], 0.f);
  EXPECT_EQ(ys[3], 1.f);
  EXPECT_EQ(ys[4], 1.f);
  EXPECT_EQ(ys[5], 0.f);
  EXPECT_NEAR(ys[6], std::exp(1.0), 3e-7);
  EXPECT_NEAR(ys[7], std::exp(-1.0), 1e-7);
  // NaN gives NaN (as std::exp), whichever lane; the other lanes are unaffected
  const float nans[8] = {NAN, 0.f, -NAN, -INFINITY, 2.f, NAN, -100.f, NAN};
  V8::store(ys, V8::exp(V8::load(nans)));
  for (int i : {0, 2, 5, 7}) EXPECT_TRUE(std::isnan(ys[i])) << "lane " << i;
  EXPECT_EQ(ys[1], 1.f);
  EXPECT_EQ(ys[3], 0.f);
  EXPECT_NEAR(ys[4], std::exp(2.0), 1e-6);
  EXPECT_EQ(ys[6], 0.f);
}

// ---- sine position encoding ------------------------------------------------------------------
TEST(KernelsB_SinePosEmbed, LayoutAndErrors) {
  const int64_t H = 3, W = 5;
  const int F = 4;
  std::vector<float> out((size_t)(H * W * 2 * F));
  kern::sine_pos_embed(H, W, F, 10000.f, out.data());
  // pixel (row 1, col 3): y = 2/3 * 2pi, x = 4/5 * 2pi; dim_t = (1, 1, 100, 100) for F = 4
  const float* o = out.data() + (1 * W + 3) * 2 * F;
  const double y = 2.0 / 3.0 * 2 * M_PI, x = 4.0 / 5.0 * 2 * M_PI;
  const double want[8] = {std::sin(y), std::cos(y), std::sin(y / 100), std::cos(y / 100),
                          std::sin(x), std::cos(x), std::sin(x / 100), std::cos(x / 100)};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(o[i], want[i], 2e-6) << "channel " << i;
  EXPECT_THROW(kern::sine_pos_embed(0, 5, 4, 10000.f, out.data()), std::invalid_argument);
  EXPECT_THROW(kern::sine_pos_embed(3, 5, 3, 10000.f, out.data()), std::invalid_argument);
  EXPECT_THROW(kern::sine_pos_embed(3, 5, 4, -1.f, out.data()), std::invalid_argument);
}

// ---- semantic parity with PyTorch ------------------------------------------------------------
struct TorchRun {
  bool ok = false;
  std::string error;
};

void write_raw(const fs::path& p, const void* data, size_t bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(data), (std::streamsize)bytes);
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::vector<float> read_f32(const fs::path& p, size_t n) {
  std::ifstream f(p, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("missing torch output " + p.string());
  const size_t bytes = (size_t)f.tellg();
  if (bytes != n * sizeof(float))
    throw std::runtime_error(p.string() + ": " + std::to_string(bytes) + " bytes, expected " +
                             std::to_string(n * sizeof(float)));
  std::vector<float> v(n);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), (std::streamsize)bytes);
  return v;
}

// The parity cases (C++ side): inputs, and what our kernels output for them.
struct ParityCase {
  std::string name, kind, label, json;
  std::vector<float> ours, torch;  // our output; torch's (read back after the script ran)
  Tol tol;
};

std::vector<ParityCase>& parity_cases() {
  static std::vector<ParityCase> cases;
  return cases;
}

// Writes every case to a temporary directory, runs the torch script once, reads its outputs back
// and removes the directory (kept when M2FP_KEEP_TMP is set).
const TorchRun& torch_run() {
  static TorchRun run = [] {
    TorchRun r;
    fs::path dir;
    try {
      std::string tmpl = (fs::temp_directory_path() / "m2fp_kernels_b_XXXXXX").string();
      if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed for " + tmpl);
      dir = tmpl;
      auto& cases = parity_cases();
      std::ostringstream manifest;
      manifest << "[\n";

      // multi-scale deformable attention through the threaded entry point
      const std::vector<MsdaCase> mcases = {
          {{{20, 33}, {40, 66}, {80, 132}}, 4, 8, 32, 1000, Loc::Random, false, 501},  // model layout
          {{{13, 17}, {1, 1}}, 3, 3, 13, 41, Loc::Random, true, 502},
          {{{5, 9}, {13, 17}, {26, 34}}, 2, 2, 7, 41, Loc::FarOutside, false, 503},
          {{{5, 9}, {13, 17}, {26, 34}}, 4, 8, 33, 41, Loc::Border, true, 504},
          {{{16, 8}, {4, 2}, {1, 1}}, 4, 2, 32, 41, Loc::Centres, false, 505},
          {{{7, 1}, {1, 3}}, 1, 1, 1, 41, Loc::Random, false, 506},
          {{{5, 9}, {13, 17}}, 3, 8, 32, 41, Loc::Random, false, 507, 100.f},  // large logits
      };
      for (size_t i = 0; i < mcases.size(); ++i) {
        const MsdaData d = make_msda(mcases[i]);
        const std::string n = "msda" + std::to_string(i);
        write_raw(dir / (n + ".value.f32"), d.value.data(), d.value.size() * 4);
        write_raw(dir / (n + ".shapes.i64"), d.shapes.data(), d.shapes.size() * 8);
        write_raw(dir / (n + ".ref.f32"), d.ref.data(), d.ref.size() * 4);
        write_raw(dir / (n + ".qp.f32"), d.qp.data(), d.qp.size() * 4);
        ParityCase pc;
        pc.name = n, pc.kind = "msda", pc.label = mcases[i].str();
        // only summation order differs from torch (the taps are computed as grid_sample does);
        // the naive pix = loc*size - 0.5 already fails this at the model's map sizes
        pc.tol = {3e-6, 1e-5};
        pc.ours.assign((size_t)mcases[i].Lq * mcases[i].heads * mcases[i].dh, -7.f);
        kern::ms_deform_attn(d.value.data(), d.shapes.data(), d.starts.data(), d.L, mcases[i].P,
                             mcases[i].heads, mcases[i].dh, d.ref.data(), d.offsets(), d.logits(),
                             d.ld_qp, pc.ours.data(), mcases[i].Lq);
        std::ostringstream j;
        j << "{\"kind\": \"msda\", \"name\": \"" << n << "\", \"L\": " << d.L << ", \"P\": "
          << mcases[i].P << ", \"heads\": " << mcases[i].heads << ", \"dh\": " << mcases[i].dh
          << ", \"Lq\": " << mcases[i].Lq << ", \"ld_qp\": " << d.ld_qp << ", \"off_col\": "
          << d.off_col << ", \"logit_col\": " << d.logit_col << ", \"value\": \"" << n
          << ".value.f32\", \"shapes\": \"" << n << ".shapes.i64\", \"ref\": \"" << n
          << ".ref.f32\", \"qp\": \"" << n << ".qp.f32\"}";
        pc.json = j.str();
        cases.push_back(std::move(pc));
      }

      // multi-head attention, all heads through kern::masked_attention, scale 1/sqrt(dh)
      struct M { int64_t Lq, Lk; int heads, dh; Mask mask; bool large; };
      const std::vector<M> acases = {
          {100, 10560, 8, 32, Mask::Regions, false}, {100, 2640, 8, 32, Mask::FullRows, false},
          {100, 660, 8, 32, Mask::Random, false},    {100, 100, 8, 32, Mask::None, false},
          {37, 7, 3, 13, Mask::SingleKey, false},    {37, 1, 2, 7, Mask::None, false},
          {37, 1000, 1, 33, Mask::FullRows, false},  {29, 1000, 2, 16, Mask::Random, true},
      };
      uint32_t seed = 601;
      for (size_t i = 0; i < acases.size(); ++i) {
        const M& a = acases[i];
        const int64_t E = (int64_t)a.heads * a.dh;
        std::mt19937 rng(seed++);
        std::vector<float> q = randn((size_t)(a.Lq * E), rng), k = randn((size_t)(a.Lk * E), rng),
                           v = randn((size_t)(a.Lk * E), rng);
        if (a.large) {  // integer q, k and dh 16 (scale 1/4): exact scores up to ~500
          std::uniform_int_distribution<int> ii(-8, 8);
          for (auto& x : q) x = (float)ii(rng);
          for (auto& x : k) x = (float)ii(rng);
        }
        const std::vector<uint8_t> mask = make_mask(a.mask, a.Lq, a.Lk, rng);
        const std::string n = "mha" + std::to_string(i);
        write_raw(dir / (n + ".q.f32"), q.data(), q.size() * 4);
        write_raw(dir / (n + ".k.f32"), k.data(), k.size() * 4);
        write_raw(dir / (n + ".v.f32"), v.data(), v.size() * 4);
        if (!mask.empty()) write_raw(dir / (n + ".mask.u8"), mask.data(), mask.size());
        ParityCase pc;
        pc.name = n, pc.kind = "mha";
        std::ostringstream lab;
        lab << "mha{Lq=" << a.Lq << " Lk=" << a.Lk << " heads=" << a.heads << " dh=" << a.dh
            << " mask=" << mask_name(a.mask) << " large_logits=" << a.large << "}";
        pc.label = lab.str();
        pc.tol = {3e-6, 1e-5};
        pc.ours.assign((size_t)(a.Lq * E), -7.f);
        kern::masked_attention(q.data(), E, k.data(), E, v.data(), E,
                               mask.empty() ? nullptr : mask.data(), pc.ours.data(), E, a.Lq, a.Lk,
                               a.heads, a.dh, (float)(1.0 / std::sqrt((double)a.dh)));
        std::ostringstream j;
        j << "{\"kind\": \"mha\", \"name\": \"" << n << "\", \"Lq\": " << a.Lq << ", \"Lk\": " << a.Lk
          << ", \"heads\": " << a.heads << ", \"dh\": " << a.dh << ", \"q\": \"" << n
          << ".q.f32\", \"k\": \"" << n << ".k.f32\", \"v\": \"" << n << ".v.f32\", \"mask\": "
          << (mask.empty() ? std::string("null") : "\"" + n + ".mask.u8\"") << "}";
        pc.json = j.str();
        cases.push_back(std::move(pc));
      }

      // sine position encoding: the model's three levels, odd sizes, and F not a power of two
      struct Pz { int64_t H, W; int F; };
      const std::vector<Pz> pcases = {{20, 33, 128}, {40, 66, 128}, {80, 132, 128},
                                      {13, 17, 128}, {1, 1, 128},   {7, 3, 6}};
      for (size_t i = 0; i < pcases.size(); ++i) {
        const Pz& p = pcases[i];
        const std::string n = "pos" + std::to_string(i);
        ParityCase pc;
        pc.name = n, pc.kind = "pos";
        pc.label = "sine_pos_embed{H=" + std::to_string(p.H) + " W=" + std::to_string(p.W) +
                   " F=" + std::to_string(p.F) + " T=10000}";
        pc.tol = {2e-6, 0};
        pc.ours.assign((size_t)(p.H * p.W * 2 * p.F), -7.f);
        kern::sine_pos_embed(p.H, p.W, p.F, 10000.f, pc.ours.data());
        pc.json = "{\"kind\": \"pos\", \"name\": \"" + n + "\", \"H\": " + std::to_string(p.H) +
                  ", \"W\": " + std::to_string(p.W) + ", \"F\": " + std::to_string(p.F) +
                  ", \"T\": 10000}";
        cases.push_back(std::move(pc));
      }

      for (size_t i = 0; i < cases.size(); ++i)
        manifest << "  " << cases[i].json << (i + 1 < cases.size() ? ",\n" : "\n");
      manifest << "]\n";
      const std::string ms = manifest.str();
      write_raw(dir / "manifest.json", ms.data(), ms.size());

      const fs::path script = fs::path(M2FP_SOURCE_DIR) / "tests/kernels/kernels_b_torch_ref.py";
      const fs::path log = dir / "torch.log";
      const std::string cmd = std::string("OMP_NUM_THREADS=1 \"") + M2FP_PYTHON + "\" \"" +
                              script.string() + "\" \"" + dir.string() + "\" > \"" +
                              log.string() + "\" 2>&1";
      const int rc = std::system(cmd.c_str());
      if (rc != 0) {
        std::ifstream lf(log);
        std::stringstream ss;
        ss << lf.rdbuf();
        throw std::runtime_error("'" + cmd + "' failed (status " + std::to_string(rc) + "):\n" +
                                 ss.str());
      }
      for (ParityCase& c : cases) c.torch = read_f32(dir / (c.name + ".out.f32"), c.ours.size());
      r.ok = true;
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    if (!dir.empty()) {
      if (std::getenv("M2FP_KEEP_TMP")) {
        std::printf("  kept %s\n", dir.c_str());
      } else {
        std::error_code ec;
        fs::remove_all(dir, ec);
      }
    }
    return r;
  }();
  return run;
}

void check_parity(const std::string& kind) {
  const TorchRun& r = torch_run();
  ASSERT_TRUE(r.ok) << "PyTorch reference run failed: " << r.error;
  int n = 0;
  for (const ParityCase& c : parity_cases()) {
    if (c.kind != kind) continue;
    expect_close(c.label + " (" + kern::isa_name(kern::active_isa()) + ") vs torch", c.ours, c.torch,
                 c.tol);
    ++n;
  }
  EXPECT_GT(n, 0);
}

TEST(KernelsB_TorchParity, MsDeformAttn) { check_parity("msda"); }
TEST(KernelsB_TorchParity, MaskedAttention) { check_parity("mha"); }
TEST(KernelsB_TorchParity, SinePosEmbed) { check_parity("pos"); }

}  // namespace
