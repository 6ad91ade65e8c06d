// tests/kernels/test_layernorm.cpp: LayerNorm over rows (with and without a residual, in place or
// not). Every SIMD path against the scalar reference at awkward widths, atol 1e-5, rtol 1e-5
// (float statistics vs the reference's double); the threaded entry point for every ISA against
// the definition computed in double; layernorm_rows_add bit for bit against layernorm_rows and an
// elementwise add.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/internal.h"
#include "kernels/kernels.h"
#include "tests/kernels/kernel_test_util.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

using namespace kern::ktest;

TEST(LayerNorm, SimdMatchesReference) {
  Rng rng(2);
  for (Isa isa : simd_isas()) {
    DiffLog log("layernorm " + isa_str(isa) + " vs ref");
    const kern::KernelTable& T = kern::table_for(isa);
    for (int64_t C : {1, 3, 7, 8, 13, 16, 17, 127, 255, 256, 257, 1000}) {
      for (int64_t rows : {1, 7}) {
        for (int variant = 0; variant < 4; ++variant) {  // bit 0: residual, bit 1: in place
          const bool res = variant & 1, inplace = variant & 2;
          // An offset mean (5) with a small spread is the hard case for the variance.
          std::vector<float> x = rng.normals((size_t)(rows * C), 5.f, 0.5f);
          std::vector<float> r = rng.normals((size_t)(rows * C), 0.f, 0.3f);
          std::vector<float> g = rng.normals((size_t)C, 1.f, 0.2f), b = rng.normals((size_t)C, 0.f, 0.2f);
          std::vector<float> want((size_t)(rows * C)), got((size_t)(rows * C));
          kern::ref::layernorm_rows(x.data(), res ? r.data() : nullptr, g.data(), b.data(), want.data(), rows, C, 1e-5f);
          if (inplace) {
            got = x;
            T.layernorm_rows(got.data(), res ? r.data() : nullptr, g.data(), b.data(), got.data(), rows, C, 1e-5f);
          } else {
            T.layernorm_rows(x.data(), res ? r.data() : nullptr, g.data(), b.data(), got.data(), rows, C, 1e-5f);
          }
          EXPECT_TRUE(close("layernorm " + isa_str(isa) + " rows=" + std::to_string(rows) + " C=" +
                                std::to_string(C) + " residual=" + std::to_string(res) +
                                " inplace=" + std::to_string(inplace),
                            got.data(), want.data(), rows * C, 1e-5, 1e-5, &log));
        }
      }
    }
  }
}

TEST(LayerNorm, ThreadedEntryPointAndDoubleFormula) {
  Rng rng(3);
  const int64_t rows = 53, C = 256;
  std::vector<float> x = rng.normals((size_t)(rows * C)), r = rng.normals((size_t)(rows * C));
  std::vector<float> g = rng.normals((size_t)C, 1.f, 0.1f), b = rng.normals((size_t)C, 0.f, 0.1f);
  // The definition, in double: y = (v - mean) / sqrt(var_biased + eps) * g + b, v = x + r.
  std::vector<float> want((size_t)(rows * C));
  for (int64_t i = 0; i < rows; ++i) {
    double s = 0, ss = 0;
    for (int64_t c = 0; c < C; ++c) s += (double)(x[i * C + c] + r[i * C + c]);
    const double mean = s / C;
    for (int64_t c = 0; c < C; ++c) ss += std::pow((double)(x[i * C + c] + r[i * C + c]) - mean, 2);
    const double rstd = 1.0 / std::sqrt(ss / C + 1e-5);
    for (int64_t c = 0; c < C; ++c)
      want[i * C + c] = (float)(((double)(x[i * C + c] + r[i * C + c]) - mean) * rstd * g[c] + b[c]);
  }
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    std::vector<float> got = x;  // in place
    kern::layernorm_rows(got.data(), r.data(), g.data(), b.data(), got.data(), rows, C, 1e-5f);
    EXPECT_TRUE(close("layernorm_rows threaded in-place " + isa_str(isa), got.data(), want.data(), rows * C, 1e-5, 1e-5));
  }
}

// layernorm_rows_add gives exactly layernorm_rows followed by z = y + a (the encoder relies on it
// for byte-identical outputs), on every ISA, in place or not, with and without a residual, at row
// counts that split unevenly over threads and over its blocks of 16 rows.
TEST(LayerNorm, RowsAddIsLayerNormThenAdd) {
  Rng rng(4);
  for (Isa isa : all_isas()) {
    ScopedIsa s(isa);
    for (int64_t C : {256, 37}) {
      for (int64_t rows : {1, 15, 17, 53, 300}) {
        std::vector<float> x = rng.normals((size_t)(rows * C)), r = rng.normals((size_t)(rows * C));
        std::vector<float> a = rng.normals((size_t)(rows * C));
        std::vector<float> g = rng.normals((size_t)C, 1.f, 0.1f), b = rng.normals((size_t)C, 0.f, 0.1f);
        for (bool res : {false, true}) {
          for (bool inplace : {false, true}) {
            std::vector<float> want_y((size_t)(rows * C)), want_z((size_t)(rows * C));
            kern::layernorm_rows(x.data(), res ? r.data() : nullptr, g.data(), b.data(), want_y.data(), rows, C,
                                 1e-5f);
            for (size_t i = 0; i < want_z.size(); ++i) want_z[i] = want_y[i] + a[i];
            std::vector<float> y = inplace ? x : std::vector<float>((size_t)(rows * C), -1.f);
            std::vector<float> z((size_t)(rows * C), -1.f);
            kern::layernorm_rows_add(inplace ? y.data() : x.data(), res ? r.data() : nullptr, g.data(), b.data(),
                                     y.data(), a.data(), z.data(), rows, C, 1e-5f);
            const std::string what = isa_str(isa) + " C=" + std::to_string(C) + " rows=" + std::to_string(rows) +
                                     (res ? " residual" : "") + (inplace ? " in place" : "");
            EXPECT_EQ(0, std::memcmp(y.data(), want_y.data(), y.size() * sizeof(float))) << "y " << what;
            EXPECT_EQ(0, std::memcmp(z.data(), want_z.data(), z.size() * sizeof(float))) << "z " << what;
          }
        }
      }
    }
  }
}

}  // namespace
