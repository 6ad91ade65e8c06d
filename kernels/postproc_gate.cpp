// kernels/postproc_gate.cpp: paste_gate (kernels.h), the conservative logit below which
// mask_row_fused's paste sink skips a group of lanes without computing their sigmoid.
#include <cmath>
#include <limits>

#include "kernels/kernels.h"

namespace m2fp::kern {

float paste_gate(float score) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  // sigmoid(v) <= 1 on every path (1 / (1 + e) with e >= 0, correctly rounded), so p <= score:
  // nothing pastes when score <= 0.5 (or NaN).
  if (!(score > 0.5f)) return kInf;
  // p > 0.5 needs sigmoid(v) > 0.5 / score. The computed p is within a few ulp (exp ~1 ulp, then
  // three correctly rounded operations: < 2^-21 relative) of the exact one, so any v whose exact
  // sigmoid is at most s = 0.5 / score * (1 - 1e-5) (about 80 ulp of margin) computes p < 0.5.
  const double s = 0.5 / (double)score * (1.0 - 1e-5);
  if (!(s > 0.0)) return -kInf;  // score = +inf: every lane may paste
  if (s >= 1.0) return 0.f;      // score within 1e-5 of 0.5: only v > 0 can (sigmoid(v <= 0) <= 0.5)
  const double t = std::log(s) - std::log1p(-s);  // logit(s): sigmoid(v) <= s exactly when v <= t
  float g = (float)t;
  if ((double)g > t) g = std::nextafter(g, -kInf);  // rounded down: every float v <= g is <= t
  return g;
}

}  // namespace m2fp::kern
