// kernels/dispatch.cpp: the one place that decides which ISA path runs.
//
// Reads cpuid and the OS-saved register state (xgetbv) once, then picks the best path unless
// M2FP_ISA=scalar|avx2|avx512 forces one. The threaded entry points of kernels.h live here too:
// they split rows/queries/pixels over the OpenMP pool (the same pool oneDNN uses) and call the
// active table's single-threaded chunk functions.
#include <cpuid.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/internal.h"

#if defined(M2FP_EMULATED_AVX512) && !defined(SIMDE_VERSION)
#error "M2FP_EMULATED_AVX512 is for the SIMDe-emulated test build only (tests/kernels_emu)"
#endif

namespace m2fp::kern {
namespace {

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false,
       avx512dq = false, avx512bf16 = false, os_avx = false, os_avx512 = false;
};

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27);
  f.fma = c & (1u << 12);
  if (osxsave) {
    const uint64_t xcr0 = xgetbv0();
    f.os_avx = (xcr0 & 0x6) == 0x6;            // XMM and YMM state
    f.os_avx512 = (xcr0 & 0xE6) == 0xE6;       // + opmask, ZMM_Hi256, Hi16_ZMM
  }
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512bf16 = a & (1u << 5);
  }
  return f;
}

const CpuFeatures& cpu() {
  static const CpuFeatures f = detect();
  return f;
}

std::atomic<int> g_active{-1};

Isa choose() {
  const char* env = std::getenv("M2FP_ISA");
  if (env && *env) {
    Isa isa;
    if (!parse_isa(env, &isa))
      throw std::runtime_error(std::string("M2FP_ISA='") + env +
                               "' is not one of scalar, avx2, avx512");
    if (!isa_supported(isa))
      throw std::runtime_error(std::string("M2FP_ISA=") + env + " is not supported on this CPU");
    return isa;
  }
  return best_isa();
}

}  // namespace

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.avx2 && f.fma && f.os_avx;
    case Isa::Avx512:
#if defined(M2FP_EMULATED_AVX512)
      // Only in the test build tests/kernels_emu, whose avx512 table is compiled against SIMDe
      // (AVX2 underneath): it runs wherever AVX2 does. The real library never defines this.
      return f.avx2 && f.fma && f.os_avx;
#else
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.os_avx512;
#endif
  }
  return false;
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_acquire);
  if (v < 0) {
    v = (int)choose();
    g_active.store(v, std::memory_order_release);
  }
  return (Isa)v;
}

void set_active_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::runtime_error(std::string("ISA ") + isa_name(isa) + " is not supported on this CPU");
  g_active.store((int)isa, std::memory_order_release);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool parse_isa(const char* s, Isa* out) {
  if (!std::strcmp(s, "scalar")) *out = Isa::Scalar;
  else if (!std::strcmp(s, "avx2")) *out = Isa::Avx2;
  else if (!std::strcmp(s, "avx512")) *out = Isa::Avx512;
  else return false;
  return true;
}

const KernelTable& table_for(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return avx2_table();
    case Isa::Avx512: return avx512_table();
    default: return scalar_table();
  }
}

const KernelTable& active() { return table_for(active_isa()); }

// ---- threaded entry points --------------------------------------------------------------------
namespace {
// Static split of [0, n) over the pool; each thread gets one contiguous chunk.
template <class F>
void parallel_chunks(int64_t n, int64_t min_chunk, F&& fn) {
  if (n <= 0) return;
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  nt = (int)std::max<int64_t>(1, std::min<int64_t>(nt, n / std::max<int64_t>(1, min_chunk)));
  if (nt == 1) {
    fn(0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t b = n * t / T, e = n * (t + 1) / T;
    if (b < e) fn(b, e);
  }
}
}  // namespace

void softmax_rows(float* x, int64_t rows, int64_t n) {
  const KernelTable& k = active();
  parallel_chunks(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, n)),
                  [&](int64_t b, int64_t e) { k.softmax_rows(x + b * n, e - b, n); });
}

void layernorm_rows(const float* x, const float* residual, const float* gamma, const float* beta,
                    float* y, int64_t rows, int64_t C, float eps) {
  const KernelTable& k = active();
  parallel_chunks(rows, 16, [&](int64_t b, int64_t e) {
    k.layernorm_rows(x + b * C, residual ? residual + b * C : nullptr, gamma, beta, y + b * C, e - b,
                     C, eps);
  });
}

void groupnorm_nhwc(const float* x, float* y, int64_t HW, int64_t C, int64_t G, const float* gamma,
                    const float* beta, float eps, bool relu) {
  if (G <= 0 || C % G != 0) throw std::invalid_argument("groupnorm_nhwc: C must divide into G groups");
  const KernelTable& k = active();
  const int T = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  std::vector<double> sums((size_t)T * 2 * C, 0.0);
  parallel_chunks(HW, 256, [&](int64_t b, int64_t e) {
    double* s = sums.data() + (size_t)omp_get_thread_num() * 2 * C;
    k.groupnorm_stats_nhwc(x + b * C, e - b, C, s, s + C);
  });
  const int64_t cg = C / G;
  std::vector<float> scale(C), shift(C);
  for (int64_t g = 0; g < G; ++g) {
    double s = 0, ss = 0;
    for (int t = 0; t < T; ++t)
      for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
        s += sums[(size_t)t * 2 * C + c];
        ss += sums[(size_t)t * 2 * C + C + c];
      }
    const double n = (double)HW * cg;
    const double mean = s / n;
    const double var = std::max(0.0, ss / n - mean * mean);
    const double rstd = 1.0 / std::sqrt(var + eps);
    for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
      scale[c] = (float)(gamma[c] * rstd);
      shift[c] = (float)(beta[c] - mean * rstd * gamma[c]);
    }
  }
  parallel_chunks(HW, 256, [&](int64_t b, int64_t e) {
    k.affine_nhwc(x + b * C, y + b * C, e - b, C, scale.data(), shift.data(), relu);
  });
}

void resize_bilinear_planes(const float* src, int64_t planes, int64_t H, int64_t W, float* dst,
                            int64_t oh, int64_t ow) {
  const KernelTable& k = active();
  // Work items are (plane, block of output rows) so small plane counts still use every thread.
  const int64_t rb = 16, blocks = (oh + rb - 1) / rb;
  parallel_chunks(planes * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t p = i / blocks, y0 = (i % blocks) * rb, y1 = std::min(oh, y0 + rb);
      k.resize_bilinear_plane_rows(src + p * H * W, H, W, dst + p * oh * ow + y0 * ow, oh, ow, y0, y1);
    }
  });
}

void resize_bilinear_nhwc(const float* src, int64_t H, int64_t W, int64_t C, float* dst, int64_t oh,
                          int64_t ow) {
  const KernelTable& k = active();
  parallel_chunks(oh, 1, [&](int64_t b, int64_t e) {
    k.resize_bilinear_nhwc_rows(src, H, W, C, dst + b * ow * C, oh, ow, b, e);
  });
}

void ms_deform_attn(const float* value, const int64_t* shapes, const int64_t* level_start, int L,
                    int P, int heads, int dh, const float* ref, const float* offsets,
                    const float* logits, int64_t ld_qp, float* out, int64_t Lq) {
  const KernelTable& k = active();
  parallel_chunks(Lq, 64, [&](int64_t b, int64_t e) {
    k.ms_deform_attn(value, shapes, level_start, L, P, heads, dh, ref, offsets, logits, ld_qp, out, b, e);
  });
}

void masked_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v,
                      int64_t ldv, const uint8_t* mask, float* out, int64_t ldo, int64_t Lq,
                      int64_t Lk, int heads, int dh, float scale) {
  if (Lq <= 0 || heads <= 0) return;
  const KernelTable& t = active();
  // Work items are (head, block of queries). The kernels reuse each block of keys for all the
  // queries of a call while it is in cache, so blocks are large (<= 64 queries, evenly sized)
  // and only split further (down to 8 queries) until every thread has about two items.
  const int nt = omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  int64_t nb = (Lq + 63) / 64;
  while (heads * nb < 2 * nt && Lq / (nb + 1) >= 8) ++nb;
  const int64_t qb = (Lq + nb - 1) / nb, blocks = (Lq + qb - 1) / qb;
  parallel_chunks(heads * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t h = i / blocks, q0 = (i % blocks) * qb, q1 = std::min(Lq, q0 + qb);
      t.attention_head(q + h * dh, ldq, k + h * dh, ldk, v + h * dh, ldv, mask, out + h * dh, ldo,
                       Lk, dh, scale, q0, q1);
    }
  });
}

void resize_pil_bilinear_u8(const uint8_t* src, int64_t H, int64_t W, int ch, uint8_t* dst,
                            int64_t oh, int64_t ow) {
  const KernelTable& k = active();
  std::vector<int32_t> xb, xc, yb, yc;
  const int kx = pil_bilinear_coeffs(W, ow, &xb, &xc);
  const int ky = pil_bilinear_coeffs(H, oh, &yb, &yc);
  // PIL only resamples the input rows the vertical pass will read.
  const int64_t ymin = yb[0];
  const int64_t ymax = yb[2 * (oh - 1)] + yb[2 * (oh - 1) + 1];
  std::vector<uint8_t> tmp((size_t)(ymax - ymin) * ow * ch);
  parallel_chunks(ymax - ymin, 8, [&](int64_t b, int64_t e) {
    k.pil_resample_h_u8(src + (ymin * W) * ch, W, ch, tmp.data(), ow, xb.data(), xc.data(), kx, b, e);
  });
  // Shift the vertical bounds to the temporary's first row.
  for (int64_t i = 0; i < oh; ++i) yb[2 * i] -= (int32_t)ymin;
  parallel_chunks(oh, 8, [&](int64_t b, int64_t e) {
    k.pil_resample_v_u8(tmp.data(), ow, ch, dst, yb.data(), yc.data(), ky, b, e);
  });
}

}  // namespace m2fp::kern
