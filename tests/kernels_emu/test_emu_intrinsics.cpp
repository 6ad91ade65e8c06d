// tests/kernels_emu/test_emu_intrinsics.cpp: the emulation layer itself (compiled like the kernels:
// no -mavx512*, forced include avx512_on_simde.h). Every intrinsic the AVX-512 kernels use is
// checked against its Intel SDM semantics on the inputs where a careless implementation differs:
// NaN operand order of max/min, ordered/unordered compares, round-half-even and -0, single
// rounding of FMA, exact vscalefps at the exponent range ends, index bits of permutes/shuffles,
// truncating conversions, the reduction order of GCC's headers, and masked memory accesses that
// must not touch the unselected lanes (guard page: an access there crashes the test).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#ifndef SIMDE_VERSION
#error "test_emu_intrinsics.cpp must be compiled with the forced include tests/kernels_emu/avx512_on_simde.h"
#endif

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

struct F16 { alignas(64) float v[16]; };
struct I16 { alignas(64) int32_t v[16]; };
struct D8 { alignas(64) double v[8]; };

F16 get(__m512 a) { F16 r; _mm512_storeu_ps(r.v, a); return r; }
I16 get(__m512i a) { I16 r; _mm512_storeu_si512(r.v, a); return r; }
D8 get(__m512d a) { D8 r; _mm512_storeu_pd(r.v, a); return r; }
__m512 put(const F16& a) { return _mm512_loadu_ps(a.v); }
__m512i put(const I16& a) { return _mm512_loadu_si512(a.v); }

uint32_t bits(float x) { uint32_t b; std::memcpy(&b, &x, 4); return b; }
bool same(float a, float b) { return bits(a) == bits(b); }  // bit-identical (NaN payload, -0)

// Two pages, the second PROT_NONE: tail(n) is a pointer to n bytes ending exactly at the guard.
struct GuardedPage {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  char* base = nullptr;
  GuardedPage() {
    void* p = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
    base = static_cast<char*>(p);
    if (mprotect(base + page, page, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
  }
  ~GuardedPage() { munmap(base, 2 * page); }
  char* tail(size_t n) { return base + page - n; }
};

}  // namespace

TEST(EmuIntrinsics, TypesAreEmulated) {
  static_assert(sizeof(__m512) == 64 && sizeof(__m512i) == 64 && sizeof(__m512d) == 64, "");
  static_assert(sizeof(__mmask16) == 2 && sizeof(__mmask8) == 1, "");
#ifdef __AVX512F__
  FAIL() << "compiled with AVX-512 enabled: nothing would be emulated";
#endif
}

TEST(EmuIntrinsics, MaxMinCompareNaNAndZeros) {
  F16 a{}, b{};
  const float av[6] = {1.f, kNaN, 2.f, 0.f, -0.f, kNaN};
  const float bv[6] = {2.f, 3.f, kNaN, -0.f, 0.f, -kNaN};
  for (int i = 0; i < 6; ++i) a.v[i] = av[i], b.v[i] = bv[i];
  const F16 mx = get(_mm512_max_ps(put(a), put(b))), mn = get(_mm512_min_ps(put(a), put(b)));
  for (int i = 0; i < 6; ++i) {
    // maxps/minps: a > b ? a : b / a < b ? a : b, the second operand on NaN and on equal (+-0)
    EXPECT_TRUE(same(mx.v[i], av[i] > bv[i] ? av[i] : bv[i])) << "max lane " << i;
    EXPECT_TRUE(same(mn.v[i], av[i] < bv[i] ? av[i] : bv[i])) << "min lane " << i;
  }
  // ordered compares are false on NaN, NEQ_UQ is true
  const __mmask16 ge = _mm512_cmp_ps_mask(put(a), put(b), _CMP_GE_OQ);
  const __mmask16 le = _mm512_cmp_ps_mask(put(a), put(b), _CMP_LE_OQ);
  const __mmask16 lt = _mm512_cmp_ps_mask(put(a), put(b), _CMP_LT_OQ);
  const __mmask16 ne = _mm512_cmp_ps_mask(put(a), put(b), _CMP_NEQ_UQ);
  for (int i = 0; i < 16; ++i) {
    const float x = a.v[i], y = b.v[i];
    const bool unordered = std::isnan(x) || std::isnan(y);
    EXPECT_EQ((ge >> i) & 1, (!unordered && x >= y) ? 1 : 0) << "GE_OQ lane " << i;
    EXPECT_EQ((le >> i) & 1, (!unordered && x <= y) ? 1 : 0) << "LE_OQ lane " << i;
    EXPECT_EQ((lt >> i) & 1, (!unordered && x < y) ? 1 : 0) << "LT_OQ lane " << i;
    EXPECT_EQ((ne >> i) & 1, (unordered || x != y) ? 1 : 0) << "NEQ_UQ lane " << i;
  }
}

TEST(EmuIntrinsics, RoundscaleFloorAndNearestEven) {
  const float in[16] = {-2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 2.5f, -0.2f, 0.2f,
                        -1e-40f, 8388609.f, 1e9f, INFINITY, -INFINITY, kNaN, -3.7f, 127.5f};
  F16 x;
  std::memcpy(x.v, in, sizeof in);
  const F16 fl = get(_mm512_roundscale_ps(put(x), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
  const F16 rn = get(_mm512_roundscale_ps(put(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (int i = 0; i < 16; ++i) {
    if (std::isnan(in[i])) {
      EXPECT_TRUE(std::isnan(fl.v[i]) && std::isnan(rn.v[i]));
      continue;
    }
    EXPECT_TRUE(same(fl.v[i], std::floor(in[i]))) << in[i] << " floor -> " << fl.v[i];
    EXPECT_TRUE(same(rn.v[i], std::nearbyint(in[i]))) << in[i] << " nearest -> " << rn.v[i];
  }
  EXPECT_TRUE(same(rn.v[6], -0.f));  // -0.2 -> -0
  EXPECT_EQ(rn.v[15], 128.f);        // 127.5 -> 128 (even)
}

TEST(EmuIntrinsics, FmaIsFused) {
  const float a = 1.f + 0x1p-12f, c = -(1.f + 0x1p-11f);  // a*a = 1 + 2^-11 + 2^-24
  EXPECT_EQ(get(_mm512_fmadd_ps(_mm512_set1_ps(a), _mm512_set1_ps(a), _mm512_set1_ps(c))).v[7], 0x1p-24f);
  EXPECT_EQ(get(_mm512_fnmadd_ps(_mm512_set1_ps(a), _mm512_set1_ps(a), _mm512_set1_ps(-c))).v[3], -0x1p-24f);
  const double ad = 1.0 + 0x1p-27, cd = -(1.0 + 0x1p-26);
  EXPECT_EQ(get(_mm512_fmadd_pd(_mm512_set1_pd(ad), _mm512_set1_pd(ad), _mm512_set1_pd(cd))).v[5], 0x1p-54);
}

TEST(EmuIntrinsics, ScalefIsExact) {
  const float xs[16] = {1.5f, 0.70710677f, 1.4f, 1.f, 1.5f, 1.f, -3.f, 0.f,
                        INFINITY, 1.f, 0.f, 2.f, kNaN, 1.f, 1e-40f, 1.f};
  const float ys[16] = {3.7f, 128.f, -150.f, -150.f, -150.f, -149.5f, -2.f, 1000.f,
                        -5.f, INFINITY, INFINITY, -INFINITY, 1.f, kNaN, 3.f, -126.f};
  F16 x, y;
  std::memcpy(x.v, xs, sizeof xs);
  std::memcpy(y.v, ys, sizeof ys);
  const F16 r = get(_mm512_scalef_ps(put(x), put(y)));
  EXPECT_EQ(r.v[0], 12.f);                                  // 1.5 * 2^3
  EXPECT_EQ(r.v[1], std::ldexp(0.70710677f, 128));          // finite: 2^128 itself is not a float
  EXPECT_TRUE(std::isfinite(r.v[1]));
  EXPECT_EQ(r.v[2], 0x1p-149f);                             // 1.4 * 2^-150 rounds up to the min subnormal
  EXPECT_EQ(r.v[3], 0.f);                                   // 2^-150: a tie, to even (0)
  EXPECT_EQ(r.v[4], 0x1p-149f);                             // 0.75 * 2^-149 rounds to 2^-149
  EXPECT_EQ(r.v[5], 0.f);                                   // floor(-149.5) = -150
  EXPECT_EQ(r.v[6], -0.75f);
  EXPECT_TRUE(same(r.v[7], 0.f));                           // 0 * 2^1000
  EXPECT_EQ(r.v[8], INFINITY);                              // inf * 2^-5
  EXPECT_EQ(r.v[9], INFINITY);                              // x * 2^inf
  EXPECT_TRUE(std::isnan(r.v[10]));                         // 0 * 2^inf: indefinite
  EXPECT_TRUE(same(r.v[11], 0.f));                          // x * 2^-inf
  EXPECT_TRUE(std::isnan(r.v[12]));
  EXPECT_TRUE(std::isnan(r.v[13]));
  EXPECT_EQ(r.v[14], std::ldexp(1e-40f, 3));                // subnormal input kept (DAZ off)
  EXPECT_EQ(r.v[15], FLT_MIN);
}

TEST(EmuIntrinsics, ReductionsInGccOrder) {
  // GCC's _mm512_reduce_add_ps adds the high half to the low half first: 1e8 in lane 0 and -1e8
  // in lane 8 cancel before the 1s are added (a left-to-right sum would lose them).
  F16 x;
  for (float& v : x.v) v = 1.f;
  x.v[0] = 1e8f, x.v[8] = -1e8f;
  EXPECT_EQ(_mm512_reduce_add_ps(put(x)), 14.f);
  // ((hi + lo) quarters, then pairs (0,2) (1,3), then the two): lanes 0..15 = 2^i * 1e-3 ...
  for (int i = 0; i < 16; ++i) x.v[i] = (float)(i + 1) / 3.f;
  float t3[8], t6[4];
  for (int i = 0; i < 8; ++i) t3[i] = x.v[8 + i] + x.v[i];
  for (int i = 0; i < 4; ++i) t6[i] = t3[4 + i] + t3[i];
  EXPECT_TRUE(same(_mm512_reduce_add_ps(put(x)), (t6[0] + t6[2]) + (t6[1] + t6[3])));
  D8 d;
  for (int i = 0; i < 8; ++i) d.v[i] = 1.0;
  d.v[1] = 1e17, d.v[5] = -1e17;
  EXPECT_EQ(_mm512_reduce_add_pd(_mm512_loadu_pd(d.v)), 6.0);
  for (int i = 0; i < 16; ++i) x.v[i] = (float)((i * 7) % 16) - 20.f;
  x.v[11] = 3.5f;
  EXPECT_EQ(_mm512_reduce_max_ps(put(x)), 3.5f);
  for (float& v : x.v) v = -INFINITY;
  EXPECT_EQ(_mm512_reduce_max_ps(put(x)), -INFINITY);
}

TEST(EmuIntrinsics, ConversionsAndShifts) {
  const float fs[16] = {2.7f, -2.7f, kNaN, 3e9f, -3e9f, -2147483648.f, 2147483520.f, -0.f,
                        INFINITY, -INFINITY, 0.99f, -0.99f, 16777217.f, 1e-30f, 100.5f, -100.5f};
  F16 f;
  std::memcpy(f.v, fs, sizeof fs);
  const I16 t = get(_mm512_cvttps_epi32(put(f)));
  const int32_t want[16] = {2, -2, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN, 2147483520, 0,
                            INT32_MIN, INT32_MIN, 0, 0, 16777216, 0, 100, -100};
  for (int i = 0; i < 16; ++i) EXPECT_EQ(t.v[i], want[i]) << "cvttps lane " << i << " (" << fs[i] << ")";

  // cvtps_pd of the low and high halves (castps512_ps256 / extractf32x8)
  F16 g;
  for (int i = 0; i < 16; ++i) g.v[i] = 1.f / (float)(i + 3);
  const D8 lo = get(_mm512_cvtps_pd(_mm512_castps512_ps256(put(g))));
  const D8 hi = get(_mm512_cvtps_pd(_mm512_extractf32x8_ps(put(g), 1)));
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(lo.v[i], (double)g.v[i]);
    EXPECT_EQ(hi.v[i], (double)g.v[8 + i]);
  }

  // vpmovdb truncates (no saturation), vpmovzxbd zero-extends
  I16 w;
  for (int i = 0; i < 16; ++i) w.v[i] = (i - 8) * 0x01010137;
  alignas(16) uint8_t b[16];
  _mm_storeu_si128((__m128i*)b, _mm512_cvtepi32_epi8(put(w)));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(b[i], (uint8_t)((uint32_t)w.v[i] & 0xFF)) << i;
  // vpmovdw truncates too
  alignas(32) uint16_t h[16];
  _mm256_storeu_si256((__m256i*)h, _mm512_cvtepi32_epi16(put(w)));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(h[i], (uint16_t)((uint32_t)w.v[i] & 0xFFFF)) << i;
  const I16 z = get(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)b)));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(z.v[i], (int32_t)b[i]) << i;

  // arithmetic shift right, counts above 31 fill with the sign
  const I16 s22 = get(_mm512_srai_epi32(put(w), 22)), s40 = get(_mm512_srai_epi32(put(w), 40));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(s22.v[i], (int32_t)std::floor((double)w.v[i] / 4194304.0)) << i;
    EXPECT_EQ(s40.v[i], w.v[i] < 0 ? -1 : 0) << i;
  }
  // 32-bit multiply keeps the low half, max/min are signed
  const I16 m = get(_mm512_mullo_epi32(put(w), _mm512_set1_epi32(0x10001)));
  const I16 mx = get(_mm512_max_epi32(put(w), _mm512_setzero_si512()));
  const I16 mn = get(_mm512_min_epi32(put(w), _mm512_set1_epi32(255)));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(m.v[i], (int32_t)((uint32_t)w.v[i] * 0x10001u)) << i;
    EXPECT_EQ(mx.v[i], std::max(w.v[i], 0)) << i;
    EXPECT_EQ(mn.v[i], std::min(w.v[i], 255)) << i;
  }
}

TEST(EmuIntrinsics, LaneMoves) {
  F16 a, b;
  I16 ia;
  for (int i = 0; i < 16; ++i) a.v[i] = (float)i, b.v[i] = 100.f + (float)i, ia.v[i] = 10 * i;
  // movehdup: odd lanes duplicated down; shuffle_epi32 DDBB: (1,1,3,3) in each 128-bit lane
  const F16 h = get(_mm512_movehdup_ps(put(a)));
  const I16 s = get(_mm512_shuffle_epi32(put(ia), _MM_PERM_DDBB));
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(h.v[i], (float)(i | 1)) << i;
    EXPECT_EQ(s.v[i], 10 * ((i & ~3) + ((i & 2) ? 3 : 1))) << i;
  }
  // blend: bit set -> second source; maskz_mov / maskz_sub zero the rest
  const __mmask16 k = 0x5A3C;
  const F16 bl = get(_mm512_mask_blend_ps(k, put(a), put(b)));
  const F16 mz = get(_mm512_maskz_mov_ps(k, put(b)));
  const F16 ms = get(_mm512_maskz_sub_ps(k, put(b), put(a)));
  for (int i = 0; i < 16; ++i) {
    const bool on = (k >> i) & 1;
    EXPECT_EQ(bl.v[i], on ? b.v[i] : a.v[i]) << i;
    EXPECT_TRUE(same(mz.v[i], on ? b.v[i] : 0.f)) << i;
    EXPECT_TRUE(same(ms.v[i], on ? 100.f : 0.f)) << i;
  }
  // permutex2var: index bits 0-3 pick the lane, bit 4 the table (b), higher bits are ignored
  I16 idx;
  for (int i = 0; i < 16; ++i) idx.v[i] = (i * 11 + 5) % 32 + (i % 3 == 0 ? 64 : 0);
  const F16 p = get(_mm512_permutex2var_ps(put(a), put(idx), put(b)));
  for (int i = 0; i < 16; ++i) {
    const int j = idx.v[i] & 31;
    EXPECT_EQ(p.v[i], j < 16 ? a.v[j] : b.v[j - 16]) << i;
  }
  // test_epi8_mask: bit i when (a[i] & b[i]) != 0
  alignas(16) uint8_t x[16], y[16];
  for (int i = 0; i < 16; ++i) x[i] = (uint8_t)(i * 37), y[i] = (uint8_t)(0x81 >> (i % 8));
  const __mmask16 t = _mm_test_epi8_mask(_mm_loadu_si128((const __m128i*)x), _mm_loadu_si128((const __m128i*)y));
  for (int i = 0; i < 16; ++i) EXPECT_EQ((t >> i) & 1, (x[i] & y[i]) ? 1 : 0) << i;
}

// The masked accesses and gathers of the kernels read/write only the selected lanes: data placed
// right before a PROT_NONE page, the unselected lanes pointing into it.
TEST(EmuIntrinsics, MaskedMemoryTouchesOnlySelectedLanes) {
  GuardedPage g;
  for (int n = 0; n <= 16; ++n) {
    const __mmask16 k = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
    float* f = reinterpret_cast<float*>(g.tail(4 * (size_t)n));
    for (int i = 0; i < n; ++i) f[i] = (float)(i + 1);
    const F16 z = get(_mm512_maskz_loadu_ps(k, f));
    const F16 m = get(_mm512_mask_loadu_ps(_mm512_set1_ps(-1.f), k, f));
    for (int i = 0; i < 16; ++i) {
      EXPECT_EQ(z.v[i], i < n ? (float)(i + 1) : 0.f) << n << " " << i;
      EXPECT_EQ(m.v[i], i < n ? (float)(i + 1) : -1.f) << n << " " << i;
    }
    _mm512_mask_storeu_ps(f, k, _mm512_set1_ps(7.f));
    for (int i = 0; i < n; ++i) EXPECT_EQ(f[i], 7.f);
    int32_t* q = reinterpret_cast<int32_t*>(f);
    const I16 qi = get(_mm512_maskz_loadu_epi32(k, q));
    for (int i = 0; i < 16; ++i) EXPECT_EQ(qi.v[i], i < n ? (int32_t)bits(7.f) : 0);
    _mm512_mask_storeu_epi32(q, k, _mm512_set1_epi32(5));
    for (int i = 0; i < n; ++i) EXPECT_EQ(q[i], 5);
    // gathers: unselected lanes index into the guard page
    I16 idx;
    for (int i = 0; i < 16; ++i) idx.v[i] = i < n ? (n - 1 - i) : 1000 + i;
    const I16 gi = get(_mm512_mask_i32gather_epi32(_mm512_set1_epi32(-9), k, put(idx), q, 4));
    const F16 gf = get(_mm512_mask_i32gather_ps(_mm512_set1_ps(-9.f), k, put(idx), f, 4));
    for (int i = 0; i < 16; ++i) {
      EXPECT_EQ(gi.v[i], i < n ? 5 : -9);
      EXPECT_TRUE(same(gf.v[i], i < n ? f[n - 1 - i] : -9.f));
    }
    // 8-lane masks: doubles and the 256-bit float load
    if (n <= 8) {
      const __mmask8 k8 = (__mmask8)((1u << n) - 1u);
      double* d = reinterpret_cast<double*>(g.tail(8 * (size_t)n));
      for (int i = 0; i < n; ++i) d[i] = 0.5 * (i + 1);
      const D8 dz = get(_mm512_maskz_loadu_pd(k8, d));
      for (int i = 0; i < 8; ++i) EXPECT_EQ(dz.v[i], i < n ? 0.5 * (i + 1) : 0.0);
      _mm512_mask_storeu_pd(d, k8, _mm512_set1_pd(3.0));
      for (int i = 0; i < n; ++i) EXPECT_EQ(d[i], 3.0);
      float* f8 = reinterpret_cast<float*>(g.tail(4 * (size_t)n));
      for (int i = 0; i < n; ++i) f8[i] = (float)(10 + i);
      alignas(32) float o[8];
      _mm256_storeu_ps(o, _mm256_maskz_loadu_ps(k8, f8));
      for (int i = 0; i < 8; ++i) EXPECT_EQ(o[i], i < n ? (float)(10 + i) : 0.f);
    }
    // bytes
    uint8_t* b = reinterpret_cast<uint8_t*>(g.tail((size_t)n));
    for (int i = 0; i < n; ++i) b[i] = (uint8_t)(200 + i);
    alignas(16) uint8_t o[16];
    _mm_storeu_si128((__m128i*)o, _mm_maskz_loadu_epi8(k, b));
    for (int i = 0; i < 16; ++i) EXPECT_EQ(o[i], i < n ? (uint8_t)(200 + i) : 0);
    _mm_mask_storeu_epi8(b, k, _mm_set1_epi8(9));
    for (int i = 0; i < n; ++i) EXPECT_EQ(b[i], 9);
  }
}

TEST(EmuIntrinsicsDeathTest, StreamStoreNeedsAlignment) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  alignas(64) float buf[48];
  _mm512_stream_ps(buf + 16, _mm512_set1_ps(2.f));  // aligned: a plain store
  _mm_sfence();
  for (int i = 16; i < 32; ++i) EXPECT_EQ(buf[i], 2.f);
  EXPECT_DEATH(_mm512_stream_ps(buf + 4, _mm512_set1_ps(1.f)), "not 64-byte aligned");
}
