// tests/kernels_emu/avx512_on_simde.h: forced include (-include) of the emulated AVX-512 build.
//
// The AVX-512 kernel sources (kernels/avx512/*.cpp and the shared bodies they instantiate) are
// compiled WITHOUT -mavx512* flags, with -mavx2 -mfma: every _mm512_* intrinsic, __m512 type and
// __mmask16 then comes from SIMDe (Debian libsimde-dev, portable implementations on top of AVX2)
// through SIMDE_ENABLE_NATIVE_ALIASES, so the unchanged kernel code runs on any AVX2 machine.
//
// SIMDe 0.7.4 lacks some intrinsics the kernels use, and implements a few others in a way that
// differs from the hardware; this header replaces those with stand-ins written from the Intel SDM,
// lane by lane, exact:
//   - masked loads/stores and gathers (absent from SIMDe 0.7.4) touch ONLY the selected lanes, as
//     the hardware does (it suppresses faults on the others): a "load everything, then blend"
//     version would read and write past the buffers,
//   - _mm512_stream_ps aborts on an address that is not 64-byte aligned (the hardware faults),
//   - _mm512_roundscale_ps: SIMDe's macro misreads an unparenthesised immediate such as
//     `_MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC` (floor became "floor to a multiple of 0.5"),
//   - _mm512_mullo_epi32 wraps as the instruction does (SIMDe's C multiply overflows: UB),
//   - _mm512_scalef_ps is exact (x * 2^floor(y), one rounding, gradual underflow; SIMDe computes
//     x * exp2f(floor(y)), which overflows for y = 128 and flushes subnormal inputs),
//   - _mm512_reduce_{add,max}_* combine the lanes in the order of GCC 12's own avx512fintrin.h
//     (the order the real build uses: halves, quarters, pairs), so sums round as in the real build,
//   - conversions, shuffles and shifts follow the SDM (cvtt: 0x80000000 for NaN/out of range).
// A missing stand-in cannot go unnoticed: GCC's own AVX-512 intrinsics need the avx512f target,
// so using one here fails to compile ("inlining failed ... target specific option mismatch").
// tests/kernels_emu/test_emu_intrinsics.cpp checks every stand-in and the SIMDe intrinsics the
// kernels use against the SDM semantics (NaN operand order, rounding, masks, index bits).
#pragma once

#if defined(__AVX512F__)
#error "avx512_on_simde.h: compile the emulated sources without -mavx512* (SIMDe would use the real instructions)"
#endif
#if !defined(__AVX2__) || !defined(__FMA__)
#error "avx512_on_simde.h: compile the emulated sources with -mavx2 -mfma"
#endif

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

#if defined(SIMDE_X86_AVX512F_NATIVE)
#error "avx512_on_simde.h: SIMDe selected native AVX-512; this build must emulate it"
#endif

namespace m2fp_emu {

// ---- lane access --------------------------------------------------------------------------------
struct F16 { float v[16]; };
struct D8 { double v[8]; };
struct I16 { int32_t v[16]; };
struct B16 { uint8_t v[16]; };

static inline F16 lanes(simde__m512 a) { F16 r; simde_mm512_storeu_ps(r.v, a); return r; }
static inline D8 lanes(simde__m512d a) { D8 r; simde_mm512_storeu_pd(r.v, a); return r; }
static inline I16 lanes(simde__m512i a) { I16 r; simde_mm512_storeu_si512(r.v, a); return r; }
static inline simde__m512 vec(const F16& a) { return simde_mm512_loadu_ps(a.v); }
static inline simde__m512d vec(const D8& a) { return simde_mm512_loadu_pd(a.v); }
static inline simde__m512i vec(const I16& a) { return simde_mm512_loadu_si512(a.v); }
static inline B16 bytes(__m128i a) { B16 r; _mm_storeu_si128(reinterpret_cast<__m128i*>(r.v), a); return r; }
static inline __m128i vec(const B16& a) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.v)); }
static inline bool bit(unsigned k, int i) { return (k >> i) & 1u; }

// ---- masked loads: only the selected lanes are read, the others are 0 or src ---------------------
static inline simde__m512 mm512_mask_loadu_ps(simde__m512 src, simde__mmask16 k, const void* p) {
  F16 r = lanes(src);
  for (int i = 0; i < 16; ++i)
    if (bit(k, i)) std::memcpy(&r.v[i], static_cast<const char*>(p) + 4 * i, 4);
  return vec(r);
}
static inline simde__m512 mm512_maskz_loadu_ps(simde__mmask16 k, const void* p) {
  return mm512_mask_loadu_ps(simde_mm512_setzero_ps(), k, p);
}
static inline simde__m512d mm512_maskz_loadu_pd(simde__mmask8 k, const void* p) {
  D8 r{};
  for (int i = 0; i < 8; ++i)
    if (bit(k, i)) std::memcpy(&r.v[i], static_cast<const char*>(p) + 8 * i, 8);
  return vec(r);
}
static inline simde__m512i mm512_maskz_loadu_epi32(simde__mmask16 k, const void* p) {
  I16 r{};
  for (int i = 0; i < 16; ++i)
    if (bit(k, i)) std::memcpy(&r.v[i], static_cast<const char*>(p) + 4 * i, 4);
  return vec(r);
}
static inline __m256 mm256_maskz_loadu_ps(simde__mmask8 k, const void* p) {
  float r[8] = {};
  for (int i = 0; i < 8; ++i)
    if (bit(k, i)) std::memcpy(&r[i], static_cast<const char*>(p) + 4 * i, 4);
  return _mm256_loadu_ps(r);
}
static inline __m128i mm_maskz_loadu_epi8(simde__mmask16 k, const void* p) {
  B16 r{};
  for (int i = 0; i < 16; ++i)
    if (bit(k, i)) r.v[i] = static_cast<const uint8_t*>(p)[i];
  return vec(r);
}

// ---- masked stores: only the selected lanes are written -----------------------------------------
static inline void mm512_mask_storeu_ps(void* p, simde__mmask16 k, simde__m512 a) {
  const F16 x = lanes(a);
  for (int i = 0; i < 16; ++i)
    if (bit(k, i)) std::memcpy(static_cast<char*>(p) + 4 * i, &x.v[i], 4);
}
static inline void mm512_mask_storeu_pd(void* p, simde__mmask8 k, simde__m512d a) {
  const D8 x = lanes(a);
  for (int i = 0; i < 8; ++i)
    if (bit(k, i)) std::memcpy(static_cast<char*>(p) + 8 * i, &x.v[i], 8);
}
static inline void mm512_mask_storeu_epi32(void* p, simde__mmask16 k, simde__m512i a) {
  const I16 x = lanes(a);
  for (int i = 0; i < 16; ++i)
    if (bit(k, i)) std::memcpy(static_cast<char*>(p) + 4 * i, &x.v[i], 4);
}
static inline void mm_mask_storeu_epi8(void* p, simde__mmask16 k, __m128i a) {
  const B16 x = bytes(a);
  for (int i = 0; i < 16; ++i)
    if (bit(k, i)) static_cast<uint8_t*>(p)[i] = x.v[i];
}

// Non-temporal store: the hardware faults (#GP) unless p is 64-byte aligned.
static inline void mm512_stream_ps(void* p, simde__m512 a) {
  if (reinterpret_cast<uintptr_t>(p) & 63) {
    std::fprintf(stderr, "emulated AVX-512: _mm512_stream_ps to %p, not 64-byte aligned (#GP on hardware)\n", p);
    std::abort();
  }
  simde_mm512_storeu_ps(p, a);
}

// ---- gathers: lane i reads base + sign-extended idx[i] * scale when selected, else keeps src -------
static inline void check_scale(int scale) {
  if (scale != 1 && scale != 2 && scale != 4 && scale != 8) {
    std::fprintf(stderr, "emulated AVX-512: gather scale %d is not 1, 2, 4 or 8\n", scale);
    std::abort();
  }
}
static inline simde__m512 mm512_mask_i32gather_ps(simde__m512 src, simde__mmask16 k, simde__m512i idx,
                                                  const void* base, int scale) {
  check_scale(scale);
  F16 r = lanes(src);
  const I16 j = lanes(idx);
  for (int i = 0; i < 16; ++i)
    if (bit(k, i)) std::memcpy(&r.v[i], static_cast<const char*>(base) + (int64_t)j.v[i] * scale, 4);
  return vec(r);
}
static inline simde__m512i mm512_mask_i32gather_epi32(simde__m512i src, simde__mmask16 k, simde__m512i idx,
                                                      const void* base, int scale) {
  check_scale(scale);
  I16 r = lanes(src);
  const I16 j = lanes(idx);
  for (int i = 0; i < 16; ++i)
    if (bit(k, i)) std::memcpy(&r.v[i], static_cast<const char*>(base) + (int64_t)j.v[i] * scale, 4);
  return vec(r);
}

// ---- conversions ----------------------------------------------------------------------------------
static inline simde__m512d mm512_cvtps_pd(__m256 a) {  // exact widening
  float f[8];
  _mm256_storeu_ps(f, a);
  D8 r;
  for (int i = 0; i < 8; ++i) r.v[i] = (double)f[i];
  return vec(r);
}
// Truncation toward zero; NaN and values outside int32 give the "integer indefinite" 0x80000000.
static inline simde__m512i mm512_cvttps_epi32(simde__m512 a) {
  const F16 x = lanes(a);
  I16 r;
  for (int i = 0; i < 16; ++i)
    r.v[i] = (x.v[i] > -2147483904.0f && x.v[i] < 2147483648.0f) ? (int32_t)x.v[i] : INT32_MIN;
  return vec(r);
}
static inline __m128i mm512_cvtepi32_epi8(simde__m512i a) {  // vpmovdb: the low byte of each lane
  const I16 x = lanes(a);
  B16 r;
  for (int i = 0; i < 16; ++i) r.v[i] = (uint8_t)((uint32_t)x.v[i] & 0xFFu);
  return vec(r);
}
static inline __m256i mm512_cvtepi32_epi16(simde__m512i a) {  // vpmovdw: the low 16 bits of each lane
  const I16 x = lanes(a);
  alignas(32) uint16_t r[16];
  for (int i = 0; i < 16; ++i) r[i] = (uint16_t)((uint32_t)x.v[i] & 0xFFFFu);
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(r));
}
static inline simde__m512i mm512_cvtepu8_epi32(__m128i a) {  // vpmovzxbd
  const B16 x = bytes(a);
  I16 r;
  for (int i = 0; i < 16; ++i) r.v[i] = x.v[i];
  return vec(r);
}

// ---- lane moves -----------------------------------------------------------------------------------
static inline __m256 mm512_extractf32x8_ps(simde__m512 a, int imm) {
  const F16 x = lanes(a);
  return _mm256_loadu_ps(x.v + 8 * (imm & 1));
}
static inline simde__m512 mm512_movehdup_ps(simde__m512 a) {  // r[2i] = r[2i+1] = a[2i+1]
  const F16 x = lanes(a);
  F16 r;
  for (int i = 0; i < 16; i += 2) r.v[i] = r.v[i + 1] = x.v[i + 1];
  return vec(r);
}
static inline simde__m512i mm512_shuffle_epi32(simde__m512i a, int imm) {  // within each 128-bit lane
  const I16 x = lanes(a);
  I16 r;
  for (int i = 0; i < 16; ++i) r.v[i] = x.v[(i & ~3) + ((imm >> (2 * (i & 3))) & 3)];
  return vec(r);
}
static inline simde__m512i mm512_srai_epi32(simde__m512i a, unsigned int imm) {  // counts > 31: sign
  const I16 x = lanes(a);
  I16 r;
  const int n = imm > 31 ? 31 : (int)imm;
  for (int i = 0; i < 16; ++i) r.v[i] = x.v[i] < 0 ? ~(~x.v[i] >> n) : (x.v[i] >> n);
  return vec(r);
}
static inline simde__mmask16 mm_test_epi8_mask(__m128i a, __m128i b) {  // bit i: (a[i] & b[i]) != 0
  const B16 x = bytes(a), y = bytes(b);
  unsigned k = 0;
  for (int i = 0; i < 16; ++i) k |= (unsigned)((x.v[i] & y.v[i]) != 0) << i;
  return (simde__mmask16)k;
}

// vpmulld: the low 32 bits of the product. SIMDe 0.7.4 multiplies int32_t lanes in C, which is
// undefined behaviour on overflow (UBSan stops there); here it is the AVX2 instruction per half.
static inline simde__m512i mm512_mullo_epi32(simde__m512i a, simde__m512i b) {
  const I16 x = lanes(a), y = lanes(b);
  I16 r;
  for (int h = 0; h < 16; h += 8)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(r.v + h),
                        _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.v + h)),
                                           _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y.v + h))));
  return vec(r);
}

// ---- vrndscaleps: round(x * 2^M) * 2^-M, M = imm[7:4], mode imm[1:0] (imm[2]: MXCSR, assumed the
// default round-to-nearest-even). SIMDe 0.7.4's macro computes M as `(imm8 >> 4) & 15` without
// parentheses around imm8, so the kernels' `_MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC` (0x01 |
// 0x08) became M = 1: floor to multiples of 0.5 (-0.2 -> -0.5). Exact replacement:
static inline simde__m512 mm512_roundscale_ps(simde__m512 a, int imm) {
  const int M = (imm >> 4) & 15, mode = (imm & 4) ? 0 : (imm & 3);
  F16 x = lanes(a);
  for (float& v : x.v) {
    if (std::isnan(v)) {
      uint32_t b;
      std::memcpy(&b, &v, 4);
      b |= 0x00400000u;  // QNaN(src)
      std::memcpy(&v, &b, 4);
      continue;
    }
    if (std::isinf(v)) continue;
    const double t = std::ldexp((double)v, M);  // exact
    const double r = mode == 0 ? std::nearbyint(t) : mode == 1 ? std::floor(t) : mode == 2 ? std::ceil(t) : std::trunc(t);
    v = std::copysign((float)std::ldexp(r, -M), v);  // representable: a multiple of 2^-M near v
  }
  return vec(x);
}

// ---- vscalefps: x * 2^floor(y), exact (SDM table "VSCALEFPS special cases", MXCSR.DAZ = 0) -------
static inline float scalef1(float x, float y) {
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  auto quiet = [](float v) {  // QNaN(v): v with the quiet bit set
    uint32_t b;
    std::memcpy(&b, &v, 4);
    b |= 0x00400000u;
    std::memcpy(&v, &b, 4);
    return v;
  };
  if (std::isnan(x)) return quiet(x);
  if (std::isnan(y)) return quiet(y);
  if (std::isinf(y)) {
    if (y > 0) return (x == 0.f) ? qnan : std::copysign(INFINITY, x);  // 0 * 2^inf: indefinite
    return std::isinf(x) ? qnan : std::copysign(0.f, x);               // inf * 2^-inf: indefinite
  }
  if (std::isinf(x) || x == 0.f) return x;
  const float e = std::floor(y);  // |e| beyond 400 over/underflows any float the same way
  const int n = e > 400.f ? 400 : e < -400.f ? -400 : (int)e;
  return std::scalbn(x, n);  // one correctly rounded result, subnormals included
}
static inline simde__m512 mm512_scalef_ps(simde__m512 a, simde__m512 b) {
  const F16 x = lanes(a), y = lanes(b);
  F16 r;
  for (int i = 0; i < 16; ++i) r.v[i] = scalef1(x.v[i], y.v[i]);
  return vec(r);
}

// ---- reductions in GCC 12's order (avx512fintrin.h __MM512_REDUCE_OP) ---------------------------
static inline float mm512_reduce_add_ps(simde__m512 a) {
  const F16 x = lanes(a);
  float t3[8], t6[4];
  for (int i = 0; i < 8; ++i) t3[i] = x.v[8 + i] + x.v[i];  // high half + low half
  for (int i = 0; i < 4; ++i) t6[i] = t3[4 + i] + t3[i];
  const float t8_0 = t6[0] + t6[2], t8_1 = t6[1] + t6[3];
  return t8_0 + t8_1;
}
static inline double mm512_reduce_add_pd(simde__m512d a) {
  const D8 x = lanes(a);
  double t3[4], t6[2];
  for (int i = 0; i < 4; ++i) t3[i] = x.v[4 + i] + x.v[i];
  for (int i = 0; i < 2; ++i) t6[i] = t3[2 + i] + t3[i];
  return t6[0] + t6[1];
}
// maxps(a, b) = a > b ? a : b (the second operand on NaN or equal), applied as GCC does.
static inline float maxps1(float a, float b) { return a > b ? a : b; }
static inline float mm512_reduce_max_ps(simde__m512 a) {
  const F16 x = lanes(a);
  float t3[8], t6[4], t8[4];
  for (int i = 0; i < 8; ++i) t3[i] = maxps1(x.v[8 + i], x.v[i]);  // _mm256_max_ps(hi, lo)
  for (int i = 0; i < 4; ++i) t6[i] = maxps1(t3[4 + i], t3[i]);    // _mm_max_ps(hi, lo)
  const int s7[4] = {2, 3, 0, 1};
  for (int i = 0; i < 4; ++i) t8[i] = maxps1(t6[i], t6[s7[i]]);
  return maxps1(t8[0], t8[1]);  // T10[0] = max(T8[0], T9[0] = T8[1])
}

}  // namespace m2fp_emu

// ---- route the intrinsic names to the stand-ins ---------------------------------------------------
#undef _mm512_mask_loadu_ps
#define _mm512_mask_loadu_ps m2fp_emu::mm512_mask_loadu_ps
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps m2fp_emu::mm512_maskz_loadu_ps
#undef _mm512_maskz_loadu_pd
#define _mm512_maskz_loadu_pd m2fp_emu::mm512_maskz_loadu_pd
#undef _mm512_maskz_loadu_epi32
#define _mm512_maskz_loadu_epi32 m2fp_emu::mm512_maskz_loadu_epi32
#undef _mm256_maskz_loadu_ps
#define _mm256_maskz_loadu_ps m2fp_emu::mm256_maskz_loadu_ps
#undef _mm_maskz_loadu_epi8
#define _mm_maskz_loadu_epi8 m2fp_emu::mm_maskz_loadu_epi8
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps m2fp_emu::mm512_mask_storeu_ps
#undef _mm512_mask_storeu_pd
#define _mm512_mask_storeu_pd m2fp_emu::mm512_mask_storeu_pd
#undef _mm512_mask_storeu_epi32
#define _mm512_mask_storeu_epi32 m2fp_emu::mm512_mask_storeu_epi32
#undef _mm_mask_storeu_epi8
#define _mm_mask_storeu_epi8 m2fp_emu::mm_mask_storeu_epi8
#undef _mm512_stream_ps
#define _mm512_stream_ps m2fp_emu::mm512_stream_ps
#undef _mm512_mask_i32gather_ps
#define _mm512_mask_i32gather_ps m2fp_emu::mm512_mask_i32gather_ps
#undef _mm512_mask_i32gather_epi32
#define _mm512_mask_i32gather_epi32 m2fp_emu::mm512_mask_i32gather_epi32
#undef _mm512_cvtps_pd
#define _mm512_cvtps_pd m2fp_emu::mm512_cvtps_pd
#undef _mm512_cvttps_epi32
#define _mm512_cvttps_epi32 m2fp_emu::mm512_cvttps_epi32
#undef _mm512_cvtepi32_epi8
#define _mm512_cvtepi32_epi8 m2fp_emu::mm512_cvtepi32_epi8
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi16 m2fp_emu::mm512_cvtepi32_epi16
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 m2fp_emu::mm512_cvtepu8_epi32
#undef _mm512_extractf32x8_ps
#define _mm512_extractf32x8_ps m2fp_emu::mm512_extractf32x8_ps
#undef _mm512_movehdup_ps
#define _mm512_movehdup_ps m2fp_emu::mm512_movehdup_ps
#undef _mm512_shuffle_epi32
#define _mm512_shuffle_epi32(a, imm) m2fp_emu::mm512_shuffle_epi32((a), (int)(imm))
#undef _mm512_srai_epi32
#define _mm512_srai_epi32 m2fp_emu::mm512_srai_epi32
#undef _mm_test_epi8_mask
#define _mm_test_epi8_mask m2fp_emu::mm_test_epi8_mask
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32 m2fp_emu::mm512_mullo_epi32
#undef _mm512_roundscale_ps
#define _mm512_roundscale_ps(a, imm) m2fp_emu::mm512_roundscale_ps((a), (int)(imm))
#undef _mm512_scalef_ps
#define _mm512_scalef_ps m2fp_emu::mm512_scalef_ps
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps m2fp_emu::mm512_reduce_add_ps
#undef _mm512_reduce_add_pd
#define _mm512_reduce_add_pd m2fp_emu::mm512_reduce_add_pd
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps m2fp_emu::mm512_reduce_max_ps
