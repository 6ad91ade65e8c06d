// kernels/norms_simd.h: the SIMD bodies of LayerNorm over rows and the two GroupNorm phases on NHWC
// data (KernelTable::layernorm_rows / groupnorm_stats_nhwc / affine_nhwc in kernels/kernels.h),
// shared by the AVX2 (V8) and AVX-512 (V16) paths; the scalar reference is kernels/ref/norms.cpp.
//
// LayerNorm: pass 1 forms v = x + residual (stored into y when there is a residual, so passes 2
// and 3 read it back from L1) and its sum; pass 2 the sum of squared deviations from the mean
// (two-pass variance, float, two accumulators); pass 3 y = ((v - mean) * rstd) * g + b. The last
// partial vector of a row is loaded masked (0 in the lanes past C, which add nothing).
// GroupNorm stats: tiles of kNormTile pixels, 2W-channel register blocks of double accumulators
// (x converted to double, x*x exact in double, 4 D vectors of sums and 4 of sums of squares),
// then blocks of W/2 channels and single channels, flushed into sum/sumsq once per tile. A
// channel's sums are the same sequence of double operations whichever block holds it (so V8 and
// V16 give identical sums).
// Affine: y = fma(x, scale, shift), max(y, 0) when relu; the tail masked.
// Include after the ISA's simd_ops.h (anonymous namespace, see kernels/avx2/simd_ops.h).
#pragma once

#include <cmath>
#include <cstdint>

namespace m2fp::kern {
namespace {

constexpr int64_t kNormTile = 8;  // pixels per GroupNorm statistics tile: 8 rows walked as 8 sequential streams

template <class V>
void layernorm_rows_simd(const float* x, const float* residual, const float* gamma, const float* beta,
                         float* y, int64_t rows, int64_t C, float eps) {
  using F = typename V::F;
  constexpr int W = V::W;
  const float invC = 1.f / (float)C;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;  // [C]
    float* yr = y + r * C;        // [C], may alias xr
    const float* v = xr;          // [C] the normalised input: x, or x + residual stored in y
    F s0 = V::zero(), s1 = V::zero();
    int64_t c = 0;
    if (residual) {
      const float* rr = residual + r * C;  // [C]
      for (; c + W <= C; c += W) {
        const F a = V::add(V::load(xr + c), V::load(rr + c));
        V::store(yr + c, a);
        s0 = V::add(s0, a);
      }
      if (c < C) {
        const int t = (int)(C - c);
        const F a = V::add(V::load_n(xr + c, t), V::load_n(rr + c, t));
        V::store_n(yr + c, a, t);
        s1 = a;
      }
      v = yr;
    } else {
      for (; c + 2 * W <= C; c += 2 * W) {
        s0 = V::add(s0, V::load(xr + c));
        s1 = V::add(s1, V::load(xr + c + W));
      }
      for (; c + W <= C; c += W) s0 = V::add(s0, V::load(xr + c));
      if (c < C) s0 = V::add(s0, V::load_n(xr + c, (int)(C - c)));
    }
    const float mean = V::hsum(V::add(s0, s1)) * invC;
    const F mv = V::set1(mean);
    F q0 = V::zero(), q1 = V::zero();
    for (c = 0; c + 2 * W <= C; c += 2 * W) {
      const F d0 = V::sub(V::load(v + c), mv);
      const F d1 = V::sub(V::load(v + c + W), mv);
      q0 = V::fma(d0, d0, q0);
      q1 = V::fma(d1, d1, q1);
    }
    for (; c + W <= C; c += W) {
      const F d = V::sub(V::load(v + c), mv);
      q0 = V::fma(d, d, q0);
    }
    if (c < C) {
      const int t = (int)(C - c);
      const F d = V::where(V::tail_m(t), V::sub(V::load_n(v + c, t), mv));
      q0 = V::fma(d, d, q0);
    }
    const float var = V::hsum(V::add(q0, q1)) * invC;
    const F rs = V::set1(1.f / std::sqrt(var + eps));
    for (c = 0; c + W <= C; c += W) {
      const F nv = V::mul(V::sub(V::load(v + c), mv), rs);
      V::store(yr + c, V::fma(nv, V::load(gamma + c), V::load(beta + c)));
    }
    if (c < C) {
      const int t = (int)(C - c);
      const F nv = V::mul(V::sub(V::load_n(v + c, t), mv), rs);
      V::store_n(yr + c, V::fma(nv, V::load_n(gamma + c, t), V::load_n(beta + c, t)), t);
    }
  }
}

template <class V>
void groupnorm_stats_nhwc_simd(const float* x, int64_t n_pix, int64_t C, double* sum, double* sumsq) {
  using F = typename V::F;
  using D = typename V::D;
  constexpr int W = V::W, H = W / 2;  // H: doubles per D vector
  for (int64_t p0 = 0; p0 < n_pix; p0 += kNormTile) {
    const int64_t p1 = p0 + kNormTile < n_pix ? p0 + kNormTile : n_pix;
    int64_t c = 0;
    for (; c + 2 * W <= C; c += 2 * W) {  // 2W channels: 4 D of sums + 4 of sums of squares
      D s[4], q[4];
      for (int j = 0; j < 4; ++j) s[j] = q[j] = V::zero_d();
      for (int64_t p = p0; p < p1; ++p) {
        const float* xp = x + p * C + c;  // [2W]
        const F a = V::load(xp), b = V::load(xp + W);
        const D d[4] = {V::cvt_lo(a), V::cvt_hi(a), V::cvt_lo(b), V::cvt_hi(b)};
        for (int j = 0; j < 4; ++j) {
          s[j] = V::add_d(s[j], d[j]);
          q[j] = V::fma_d(d[j], d[j], q[j]);
        }
      }
      for (int j = 0; j < 4; ++j) {
        V::store_d(sum + c + H * j, V::add_d(V::load_d(sum + c + H * j), s[j]));
        V::store_d(sumsq + c + H * j, V::add_d(V::load_d(sumsq + c + H * j), q[j]));
      }
    }
    for (; c + H <= C; c += H) {  // W/2 channels: one D of each
      D s = V::zero_d(), q = V::zero_d();
      for (int64_t p = p0; p < p1; ++p) {
        const D d = V::load_half_cvt(x + p * C + c);
        s = V::add_d(s, d);
        q = V::fma_d(d, d, q);
      }
      V::store_d(sum + c, V::add_d(V::load_d(sum + c), s));
      V::store_d(sumsq + c, V::add_d(V::load_d(sumsq + c), q));
    }
    for (; c < C; ++c) {  // the last < W/2 channels, the same operations one at a time
      double s = 0.0, q = 0.0;
      for (int64_t p = p0; p < p1; ++p) {
        const double v = x[p * C + c];
        s += v;
        q = std::fma(v, v, q);
      }
      sum[c] += s;
      sumsq[c] += q;
    }
  }
}

template <class V>
void affine_nhwc_simd(const float* x, float* y, int64_t n_pix, int64_t C, const float* scale,
                      const float* shift, bool relu) {
  using F = typename V::F;
  constexpr int W = V::W;
  const F zero = V::zero();
  const int64_t Cv = C - C % W;
  const int t = (int)(C - Cv);
  for (int64_t p = 0; p < n_pix; ++p) {
    const float* xp = x + p * C;  // [C]
    float* yp = y + p * C;        // [C], may alias xp
    for (int64_t c = 0; c < Cv; c += W) {
      F v = V::fma(V::load(xp + c), V::load(scale + c), V::load(shift + c));
      if (relu) v = V::max(v, zero);
      V::store(yp + c, v);
    }
    if (t > 0) {
      F v = V::fma(V::load_n(xp + Cv, t), V::load_n(scale + Cv, t), V::load_n(shift + Cv, t));
      if (relu) v = V::max(v, zero);
      V::store_n(yp + Cv, v, t);
    }
  }
}

}  // namespace
}  // namespace m2fp::kern
