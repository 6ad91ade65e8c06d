// tests/kernels_emu/test_emu_paths.cpp: code paths of the 16-lane kernels that the shared suite
// (tests/kernels/) does not reach, found with gcov on the emulated build:
//   - ms_deform_attn channel chunks: the suite's head widths (1, 7, 13, 32, 33) never give a last
//     chunk of exactly 16 channels (msda_gather<V16, 1, false>) nor of 17..31 (<V16, 2, true>),
//     nor several full 32-channel chunks; dh = 8 .. 64 below cover them (and V8's 3- and 4-vector
//     chunks on the AVX2 path);
//   - attention_head with Lk = 0 (zeros, as the reference), and single calls whose query count
//     leaves a zmm tile of 9..15 lanes or only a ymm tile.
// Every supported SIMD path (here: avx2 and the emulated avx512) against the scalar reference,
// with the suite's tolerances.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

std::vector<Isa> simd_isas() {
  std::vector<Isa> v;
  for (Isa isa : {Isa::Avx2, Isa::Avx512})
    if (kern::isa_supported(isa)) v.push_back(isa);
  return v;
}

std::vector<float> randn(size_t n, std::mt19937& rng, float sd = 1.f) {
  std::normal_distribution<float> nd(0.f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// max |got - want| and the number of values over atol + rtol * |want| (NaN counts as over)
struct Cmp {
  double max_abs = 0;
  size_t bad = 0;
};
Cmp compare(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol) {
  Cmp c;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs((double)got[i] - (double)want[i]);
    if (!(d <= atol + rtol * std::fabs((double)want[i]))) ++c.bad;
    if (d > c.max_abs) c.max_abs = d;
  }
  return c;
}

}  // namespace

TEST(EmuPaths, MsDeformAttnChannelChunks) {
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path";
  const double atol = 1e-6, rtol = 2e-6;  // as MsDeformAttn.SimdMatchesScalar
  const std::vector<std::pair<int64_t, int64_t>> levels = {{5, 9}, {13, 17}, {3, 4}};
  const int L = 3, P = 4, LP = L * P;
  const int64_t Lq = 23;
  std::vector<int64_t> shapes, starts;
  int64_t len_in = 0;
  for (auto [h, w] : levels) shapes.push_back(h), shapes.push_back(w), starts.push_back(len_in), len_in += h * w;
  double worst = 0;
  int n = 0;
  uint32_t seed = 900;
  for (int dh : {8, 16, 20, 24, 31, 48, 64}) {
    for (int heads : {1, 3}) {
      std::mt19937 rng(seed++);
      const int64_t ld = (int64_t)heads * dh, ld_qp = (int64_t)heads * LP * 3 + 5;  // offsets, logits, padding
      const std::vector<float> value = randn((size_t)(len_in * ld), rng);
      std::vector<float> ref((size_t)(2 * Lq));
      std::uniform_real_distribution<float> u(-0.1f, 1.1f);
      for (auto& r : ref) r = u(rng);
      const std::vector<float> qp = randn((size_t)(Lq * ld_qp), rng, 2.f);  // row: offsets then logits
      const float* offsets = qp.data();
      const float* logits = qp.data() + (size_t)heads * LP * 2;
      auto run = [&](const kern::KernelTable& t, int64_t q0, int64_t q1, std::vector<float>& out) {
        t.ms_deform_attn(value.data(), shapes.data(), starts.data(), L, P, heads, dh, ref.data(), offsets,
                         logits, ld_qp, out.data(), q0, q1);
      };
      std::vector<float> want((size_t)(Lq * ld), -7.f);
      run(kern::table_for(Isa::Scalar), 0, Lq, want);
      for (Isa isa : isas) {
        std::vector<float> got((size_t)(Lq * ld), -7.f), split((size_t)(Lq * ld), -7.f);
        run(kern::table_for(isa), 0, Lq, got);
        run(kern::table_for(isa), 0, 5, split);
        run(kern::table_for(isa), 5, Lq, split);
        const Cmp c = compare(got, want, atol, rtol);
        worst = std::max(worst, c.max_abs);
        EXPECT_EQ(c.bad, 0u) << kern::isa_name(isa) << " ms_deform_attn dh=" << dh << " heads=" << heads
                             << ": " << c.bad << " values over tolerance, max|diff| " << c.max_abs;
        EXPECT_EQ(std::memcmp(got.data(), split.data(), got.size() * sizeof(float)), 0)
            << kern::isa_name(isa) << " split calls differ, dh=" << dh;
        ++n;
      }
    }
  }
  std::printf("  ms_deform_attn dh 8..64: %d (case, isa) pairs, max|diff| vs scalar %g (atol %g rtol %g)\n", n,
              worst, atol, rtol);
}

TEST(EmuPaths, AttentionTileSplitsAndNoKeys) {
  const auto isas = simd_isas();
  if (isas.empty()) GTEST_SKIP() << "no SIMD path";
  const double atol = 3e-6, rtol = 1e-5;  // as Attention.SimdMatchesScalar
  double worst = 0;
  int n = 0;
  uint32_t seed = 950;
  for (int64_t Lq : {1, 8, 9, 13, 16, 24, 25, 40})
    for (int64_t Lk : {0, 1, 65, 130})
      for (int dh : {17, 32})
        for (bool masked : {false, true}) {
          std::mt19937 rng(seed++);
          const int64_t ldq = dh + 3, ldk = dh + 1, ldv = dh + 2, ldo = dh + 4;
          const std::vector<float> q = randn((size_t)(Lq * ldq), rng), k = randn((size_t)(std::max<int64_t>(Lk, 1) * ldk), rng),
                                   v = randn((size_t)(std::max<int64_t>(Lk, 1) * ldv), rng);
          std::vector<uint8_t> mask;
          if (masked && Lk > 0) {
            mask.resize((size_t)(Lq * Lk));
            std::bernoulli_distribution b(0.6);
            for (auto& m : mask) m = b(rng) ? 1 : 0;
            for (int64_t j = 0; j < Lk; ++j) mask[(size_t)j] = 1;  // query 0 fully masked
          }
          const float scale = 1.f / std::sqrt((float)dh);
          auto run = [&](const kern::KernelTable& t, std::vector<float>& out) {
            t.attention_head(q.data(), ldq, k.data(), ldk, v.data(), ldv, mask.empty() ? nullptr : mask.data(),
                             out.data(), ldo, Lk, dh, scale, 0, Lq);
          };
          std::vector<float> want((size_t)(Lq * ldo), -7.f);
          run(kern::table_for(Isa::Scalar), want);
          if (Lk == 0)
            for (int64_t i = 0; i < Lq; ++i)
              for (int c = 0; c < dh; ++c) ASSERT_EQ(want[(size_t)(i * ldo + c)], 0.f) << "scalar, no keys";
          for (Isa isa : isas) {
            std::vector<float> got((size_t)(Lq * ldo), -7.f);
            run(kern::table_for(isa), got);
            const Cmp c = compare(got, want, atol, rtol);  // the -7 padding columns must match too
            worst = std::max(worst, c.max_abs);
            EXPECT_EQ(c.bad, 0u) << kern::isa_name(isa) << " attention Lq=" << Lq << " Lk=" << Lk << " dh=" << dh
                                 << " masked=" << masked << ": max|diff| " << c.max_abs;
            ++n;
          }
        }
  std::printf("  attention_head one call per case: %d (case, isa) pairs, max|diff| vs scalar %g (atol %g rtol %g)\n",
              n, worst, atol, rtol);
}
