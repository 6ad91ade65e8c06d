// tests/kernels/test_class_argmax.cpp: kern::class_argmax (one class of the semantic map taken into
// the running argmax) on every path against the plain loop written here: the same division and
// comparison, so every path matches it bit for bit, at lengths that leave every tail, with pixels
// nothing was pasted into (times 0), groups of pixels with at most one instance (which the SIMD
// paths take without the division), ties with the running maximum (not taken: the first maximum
// wins, as torch.argmax) and nothing written past n.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

TEST(ClassArgmax, MatchesThePlainLoopOnEveryPath) {
  Rng rng(11);
  int cases = 0;
  for (int64_t n : {0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 257, 4000}) {
    const int64_t pad = 20;  // past n: must stay as they are
    std::vector<float> cat((size_t)(n + pad)), times((size_t)(n + pad)), best0((size_t)(n + pad));
    std::vector<uint8_t> lab0((size_t)(n + pad));
    for (int64_t i = 0; i < n + pad; ++i) {
      // instances pasted at this pixel: 0..1 in every other 32 pixels (the SIMD paths' groups that skip
      // the division), else 0..3
      const int k = (int)(rng.g() % (i / 32 % 2 ? 2 : 4));
      times[i] = (float)k;
      cat[i] = 0.f;
      for (int j = 0; j < k; ++j) cat[i] += 0.5f + 0.5f * (float)(rng.g() % 1000) / 1000.f;
      best0[i] = i % 9 == 0 ? (k ? cat[i] / times[i] : 0.f)  // a tie: stays
                            : 0.4f + 0.6f * (float)(rng.g() % 1000) / 1000.f;
      lab0[i] = (uint8_t)(rng.g() % 20);
    }
    std::vector<float> want_best = best0;
    std::vector<uint8_t> want_lab = lab0;
    for (int64_t i = 0; i < n; ++i) {
      const float s = cat[i] / (times[i] == 0.f ? 1.f : times[i]);
      if (s > want_best[i]) want_best[i] = s, want_lab[i] = 7;
    }
    for (Isa isa : all_isas()) {
      std::vector<float> best = best0;
      std::vector<uint8_t> lab = lab0;
      kern::table_for(isa).class_argmax(cat.data(), times.data(), n, 7, best.data(), lab.data());
      EXPECT_EQ(0, std::memcmp(best.data(), want_best.data(), best.size() * sizeof(float)))
          << kern::isa_name(isa) << " n=" << n;
      EXPECT_EQ(lab, want_lab) << kern::isa_name(isa) << " n=" << n;
      ++cases;
    }
  }
  std::printf("[ClassArgmax] %d cases bit for bit\n", cases);
}

}  // namespace
