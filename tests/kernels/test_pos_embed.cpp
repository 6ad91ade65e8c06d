// tests/kernels/test_pos_embed.cpp: the sine position encoding's layout on a hand-checked pixel,
// and its argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/kernels.h"

namespace kern = m2fp::kern;

namespace {

TEST(SinePosEmbed, LayoutAndErrors) {
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

}  // namespace
