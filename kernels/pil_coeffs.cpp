// kernels/pil_coeffs.cpp: Pillow's BILINEAR resampling coefficients for one axis.
//
// Reproduces, operation for operation, what Pillow (libImaging/Resample.c: precompute_coeffs and
// normalize_coeffs_8bpc) computes for Image.resize(size, BILINEAR) with the default box
// (0, 0, width, height):
//   scale   = (double)((float)in - 0.f) / out          (PIL keeps the box in float)
//   fscale  = max(scale, 1)                              (the triangle widens when shrinking)
//   support = 1.0 * fscale,  ksize = 2 * ceil(support) + 1
//   per output i: center = (i + 0.5) * scale
//                 xmin = max(0, (int)(center - support + 0.5)), xmax = min(in, (int)(center + support + 0.5))
//                 w[x] = tri((x + xmin - center + 0.5) / fscale), x < xmax - xmin, normalised by their sum
//                 fixed point: (int)(w * 2^22 + 0.5)  (or -0.5 for negative w)
// Taps past the count stay 0 so kernels may read ksize taps per output.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/internal.h"

namespace m2fp::kern {
namespace {

double pil_triangle(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

}  // namespace

int pil_bilinear_coeffs(int64_t in_size, int64_t out_size, std::vector<int32_t>* bounds,
                        std::vector<int32_t>* coeffs) {
  if (!bounds || !coeffs) throw std::invalid_argument("pil_bilinear_coeffs: null output vector");
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max() / 64;
  if (in_size < 1 || out_size < 1 || in_size > kMax || out_size > kMax)
    throw std::invalid_argument("pil_bilinear_coeffs: sizes must be in [1, " + std::to_string(kMax) +
                                "], got in=" + std::to_string(in_size) +
                                " out=" + std::to_string(out_size));
  const int in = (int)in_size, out = (int)out_size;
  const float in0 = 0.f, in1 = (float)in;
  const double scale = (double)(in1 - in0) / out;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;  // BILINEAR support is 1
  const int ksize = (int)std::ceil(support) * 2 + 1;
  if ((int64_t)out * ksize > std::numeric_limits<int32_t>::max())
    throw std::invalid_argument("pil_bilinear_coeffs: coefficient table too large for in=" +
                                std::to_string(in) + " out=" + std::to_string(out));

  bounds->assign((size_t)out * 2, 0);
  coeffs->assign((size_t)out * ksize, 0);
  std::vector<double> k((size_t)ksize);
  for (int xx = 0; xx < out; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in) xmax = in;
    xmax -= xmin;
    if (xmax < 1 || xmax > ksize)
      throw std::logic_error("pil_bilinear_coeffs: tap count " + std::to_string(xmax) +
                             " out of range at output " + std::to_string(xx));
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = pil_triangle((x + xmin - center + 0.5) * ss);
      k[(size_t)x] = w;
      ww += w;
    }
    int32_t* kk = coeffs->data() + (size_t)xx * ksize;
    for (int x = 0; x < xmax; ++x) {
      double w = k[(size_t)x];
      if (ww != 0.0) w /= ww;
      kk[x] = w < 0 ? (int32_t)(-0.5 + w * (1 << kPilPrecisionBits))
                    : (int32_t)(0.5 + w * (1 << kPilPrecisionBits));
    }
    (*bounds)[(size_t)xx * 2 + 0] = xmin;
    (*bounds)[(size_t)xx * 2 + 1] = xmax;
  }
  return ksize;
}

}  // namespace m2fp::kern
