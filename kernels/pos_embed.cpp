// kernels/pos_embed.cpp: sine position encoding (kern::sine_pos_embed in kernels/kernels.h).
//
// Upstream: PositionEmbeddingSine (maskdino/position_encoding.py) with normalize=True,
// scale = 2*pi, no padding mask, evaluated in float32 exactly as its torch ops do:
//   y_embed = cumsum of ones = row + 1 (exact);  y_embed / (y_embed[-1] + 1e-6) * scale, where
//             each step is one float32 operation (H + 1e-6f rounded to float, then the division,
//             then the product with (float)(2*pi));
//   dim_t   = T ** (2 * (i // 2) / F): the exponent is exact in float32 for F a power of two and
//             rounded once otherwise; the power is computed in double and rounded to float
//             (torch's float pow is within 1 ulp of that);
//   pos     = embed / dim_t in float32; sin for even channels, cos for odd ones, computed in
//             double on that float argument and rounded to float (torch's float sin/cos are
//             within ~1 ulp).
// The y part depends only on the row and the x part only on the column, so (H + W) x F values
// are computed and the [H*W, 2F] output is filled by copies. Not on a hot path (once per input
// size); the SIMD variants are not needed.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace m2fp::kern {

namespace {
// table[n][F]: the F encodings of positions 1..n along an axis of length n.
std::vector<float> axis_table(int64_t n, int F, const std::vector<float>& dim_t) {
  const float scale = (float)(2.0 * M_PI);
  const float denom = (float)n + 1e-6f;
  std::vector<float> t((size_t)n * F);
  for (int64_t r = 0; r < n; ++r) {
    const float e = (float)(r + 1) / denom * scale;
    for (int i = 0; i < F; ++i) {
      const float arg = e / dim_t[i];
      t[(size_t)r * F + i] = (float)((i % 2 == 0) ? std::sin((double)arg) : std::cos((double)arg));
    }
  }
  return t;
}
}  // namespace

void sine_pos_embed(int64_t H, int64_t W, int num_feats, float temperature, float* out) {
  if (H <= 0 || W <= 0)
    throw std::invalid_argument("sine_pos_embed: map size must be positive, got " +
                                std::to_string(H) + "x" + std::to_string(W));
  if (num_feats <= 0 || num_feats % 2 != 0)
    throw std::invalid_argument("sine_pos_embed: num_feats must be positive and even, got " +
                                std::to_string(num_feats));
  if (!(temperature > 0.f) || !std::isfinite(temperature))
    throw std::invalid_argument("sine_pos_embed: temperature must be a positive finite number");
  if (!out) throw std::invalid_argument("sine_pos_embed: null output");
  const int F = num_feats;
  std::vector<float> dim_t(F);  // [F]
  for (int i = 0; i < F; ++i) {
    const float ex = (float)(2 * (i / 2)) / (float)F;
    dim_t[i] = (float)std::pow((double)temperature, (double)ex);
  }
  const std::vector<float> ty = axis_table(H, F, dim_t);  // [H][F]
  const std::vector<float> tx = axis_table(W, F, dim_t);  // [W][F]
  for (int64_t r = 0; r < H; ++r)
    for (int64_t c = 0; c < W; ++c) {
      float* o = out + (r * W + c) * 2 * F;  // [2F]: y part, then x part
      std::memcpy(o, ty.data() + (size_t)r * F, sizeof(float) * F);
      std::memcpy(o + F, tx.data() + (size_t)c * F, sizeof(float) * F);
    }
}

}  // namespace m2fp::kern
