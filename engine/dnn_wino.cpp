// engine/dnn_wino.cpp: fp32 3x3 weights into oneDNN's Winograd F(4x4, 3x3) layout (dnn_wino.h).
// Built with -ffp-contract=off (CMakeLists.txt): every product and sum is rounded to fp32 on its own,
// as oneDNN's reorder computes them, so that the bytes are the same.
#include "engine/dnn_wino.h"

#include <cstdint>
#include <stdexcept>

namespace m2fp::dnn {
namespace {

// The weight transform G of F(4x4, 3x3) with oneDNN's scaling (6 x 3), as fp32.
constexpr float kG[6][3] = {{1.13777777777778f, 0.f, 0.f},
                            {-0.688403361344538f, -0.430252100840336f, -0.26890756302521f},
                            {-0.688403361344538f, 0.430252100840336f, -0.26890756302521f},
                            {0.119514472455649f, 0.179271708683473f, 0.26890756302521f},
                            {0.119514472455649f, -0.179271708683473f, 0.26890756302521f},
                            {0.f, 0.f, 1.f}};
constexpr int kR = 3, kA = 6;
constexpr int kMaxOcBlock = 64;

}  // namespace

bool wino_layout_supported(const WinoWeightLayout& L) {
  if (L.r != kR || L.alpha != kA || L.ic <= 0 || L.oc <= 0 || L.ic_block <= 0 || L.oc_block <= 0 ||
      L.ic2_block <= 0 || L.oc2_block <= 0 || L.oc_block > kMaxOcBlock)
    return false;
  if (L.ic % L.ic_block || L.oc % L.oc_block) return false;
  if ((L.ic / L.ic_block) % L.ic2_block || (L.oc / L.oc_block) % L.oc2_block) return false;
  return L.size == (size_t)kA * kA * L.ic * L.oc * sizeof(float);
}

void wino_weights_from_oihw(const float* w, int out_c, int in_c, const WinoWeightLayout& L, float* dst) {
  if (!wino_layout_supported(L) || out_c > L.oc || in_c > L.ic || out_c <= 0 || in_c <= 0)
    throw std::invalid_argument("wino_weights_from_oihw: unsupported Winograd weight layout");
  const int ocb = L.oc_block, icb = L.ic_block, oc2 = L.oc2_block, ic2 = L.ic2_block;
  const int nb_oc = L.oc / ocb, ic_chunks = L.ic / icb / ic2;
  const int64_t n_work = (int64_t)L.ic * nb_oc;
  // One work item: input channel iic, output block ob (ocb output channels), as oneDNN splits it.
  // (Inside M2FP::prepare's parallel tasks the region below is nested and runs on its own thread.)
#pragma omp parallel for schedule(static) if (n_work >= 1024)
  for (int64_t item = 0; item < n_work; ++item) {
    const int iic = (int)(item / nb_oc), ob = (int)(item % nb_oc);
    // The block's weights, transposed to [ih][iw][o] so that the sums below run along o.
    float in[kR * kR][kMaxOcBlock];
    for (int o = 0; o < ocb; ++o) {
      const int oc = ob * ocb + o;
      const bool valid = iic < in_c && oc < out_c;
      const float* src = valid ? w + ((int64_t)oc * in_c + iic) * (kR * kR) : nullptr;
      for (int t = 0; t < kR * kR; ++t) in[t][o] = valid ? src[t] : 0.f;
    }
    // g G^T along the kernel's width for each of its rows: ws[ih][j][o] = sum_iw w[o][iic][ih][iw] G[j][iw],
    // summed from 0 in the order of iw.
    float ws[kR][kA][kMaxOcBlock];
    for (int ih = 0; ih < kR; ++ih)
      for (int j = 0; j < kA; ++j) {
        float* acc = ws[ih][j];
        for (int o = 0; o < ocb; ++o) acc[o] = 0.f;
        for (int iw = 0; iw < kR; ++iw) {
          const float g = kG[j][iw];
          const float* v = in[ih * kR + iw];
          for (int o = 0; o < ocb; ++o) acc[o] += v[o] * g;
        }
      }
    // G (g G^T): out[i][j][o] = sum_k G[i][k] ws[k][j][o], summed from 0 in the order of k, written
    // where wino_wei_OBaaIBOIio keeps it.
    const int occ = ob / oc2, obb = ob % oc2;
    const int icc = iic / (icb * ic2), ib = (iic / icb) % ic2, ii = iic % icb;
    for (int i = 0; i < kA; ++i)
      for (int j = 0; j < kA; ++j) {
        const int64_t off =
            ((((((int64_t)occ * kA + i) * kA + j) * ic_chunks + icc) * oc2 + obb) * ic2 + ib) * icb + ii;
        float* out = dst + off * ocb;
        for (int o = 0; o < ocb; ++o) out[o] = 0.f;
        for (int k = 0; k < kR; ++k) {
          const float g = kG[i][k];
          const float* v = ws[k][j];
          for (int o = 0; o < ocb; ++o) out[o] += g * v[o];
        }
      }
  }
}

}  // namespace m2fp::dnn
