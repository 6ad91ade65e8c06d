// engine/dnn_wino.h: fp32 3x3 weights into oneDNN's Winograd F(4x4, 3x3) layout (wino_wei_OBaaIBOIio,
// what its jit_wino_4x3 kernel asks for), in place of oneDNN 2.6's reorder, for engine/dnn.cpp's
// WeightStore at model load.
//
// oneDNN's reorder (wino_reorder_t) transforms the weights (G g G^T) into a scratchpad of the output's
// size in [alpha][alpha][ic][oc] order and then copies it into the blocked layout, element by element:
// ~73 ms of CPU per 256-channel layer on the (busy) development VM, 2026-12-06, ~33 ms with its 9 MB
// scratchpad given in huge pages; ~1.6 s of CPU for the 22 layers of the default Winograd plan. This
// computes the same values with the same floating-point operations in the same order (products and
// sums in fp32, no fused multiply-add: dnn_wino.cpp is built with -ffp-contract=off) and writes each
// straight to its place: the bytes are oneDNN's (tests/engine/test_dnn.cpp compares them for every
// Winograd layout the network uses), in a few ms per layer.
#pragma once

#include <cstddef>

namespace m2fp::dnn {

// The parameters of a wino_wei_OBaaIBOIio layout (oneDNN's dnnl_wino_desc_t, f32).
struct WinoWeightLayout {
  int r = 0, alpha = 0;              // kernel size (3) and tile size (6)
  int ic = 0, oc = 0;                // channels as laid out (may be padded over the layer's)
  int ic_block = 0, oc_block = 0;    // inner blocks
  int ic2_block = 0, oc2_block = 0;  // blocks of blocks
  size_t size = 0;                   // bytes
};

// Whether wino_weights_from_oihw handles this layout (r 3, alpha 6, consistent blocking, fp32 size).
bool wino_layout_supported(const WinoWeightLayout& L);

// w [out_c, in_c, 3, 3] (oihw, fp32) -> dst in layout L (L.size bytes; channels beyond out_c/in_c
// are zeros). L must be supported (std::invalid_argument otherwise).
void wino_weights_from_oihw(const float* w, int out_c, int in_c, const WinoWeightLayout& L, float* dst);

}  // namespace m2fp::dnn
