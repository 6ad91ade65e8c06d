// engine/preprocess.h: photo -> network input, exactly as the upstream ModelScope pipeline does it.
//
// Multi-person (CIHP, image_human_parsing_pipeline.py):
//   (nh, nw) = _get_preprocess_shape(H0, W0, short_edge=640, max_size=1333)
//   T.Resize((nh, nw)) on the PIL image   -> PIL Image.resize(BILINEAR), bit-exact (kern::resize_pil_bilinear_u8)
//   T.ToTensor() * 255.                   -> v = (float)u8 / 255.f * 255.f   (float32, as torch computes it)
//   (x - pixel_mean) / pixel_std          -> float32 subtract, then divide
//   ImageList.from_tensors(size_div=32)   -> zero padding bottom/right to (Hp, Wp), multiples of 32
// Single-person (LIP, parsing_utils.center_to_target_size_test): shrink to fit the target with
//   int() truncations, centre on a canvas padded with 128 (PadTransform), box = get_box(...); the uint8
//   image is normalised directly (no /255*255 round trip), then zero padded to multiples of 32.
//
// Dimension key: H0, W0 original photo; nh, nw resized (or centred) image; Hp, Wp padded to 32.
#pragma once

#include <utility>

#include "engine/image.h"
#include "engine/parsing.h"
#include "engine/tensor.h"

namespace m2fp {

// The model's fixed normalisation (M2FP.pixel_mean / pixel_std, float32 buffers upstream).
constexpr float kPixelMean[3] = {123.675f, 116.28f, 103.53f};
constexpr float kPixelStd[3] = {58.395f, 57.12f, 57.375f};
constexpr int kSizeDivisibility = 32;

struct Preprocessed {
  Tensor input;   // [3, nh, nw] CHW (Layout::Plain), RGB 0..255: the dump `input.npy` (with_input only)
  Tensor image;   // [Hp, Wp, 3] HWC (Layout::HWC), normalised, zero padded: the backbone input
  int nh = 0, nw = 0;  // image size inside the padded canvas (upstream ImageList.image_sizes)
  int Hp = 0, Wp = 0;  // padded size, multiples of 32
  BBox crop_box;       // single-person: where the photo sits in the centred image;
                       // multi-person: {0, 0, nw, nh}
};

// Upstream _get_preprocess_shape in double precision: returns (newh, neww). Throws
// std::invalid_argument for non-positive arguments.
std::pair<int, int> multi_person_resize_shape(int h, int w, int short_edge, int max_size);

// Multi-person pre-processing. Throws ImageError when the photo is so elongated that a resized
// side would be 0 pixels, std::invalid_argument for bad sizes. with_input: also fill
// Preprocessed::input (only dumps read it).
Preprocessed preprocess_multi_person(const Image& img, int short_edge = 640, int max_size = 1333,
                                     bool with_input = true);

// The plan of center_to_target_size_test for one photo size.
struct CenterPlan {
  int new_h = 0, new_w = 0;        // size after the (optional) resize
  bool resize = false;             // ResizeTransform applied
  bool padded = false;             // PadTransform padded (false: the quirk pad_left == pad_top == 0)
  int pad_top = 0, pad_left = 0;   // offsets of the photo in the centred image
  int out_h = 0, out_w = 0;        // size of the centred image (target, or new size when not padded)
  BBox box;                        // get_box(new_h, new_w, trg_h, trg_w)
};
// Upstream quirk handled here: a SQUARE photo larger than the target on both sides matches none of
// upstream's branches (new size 0x0, which PIL refuses, so the upstream pipeline raises); it is
// fitted like a photo one pixel wider or taller would be: the shorter target side, both sides.
CenterPlan single_person_plan(int src_h, int src_w, int target_w, int target_h);

// Single-person pre-processing onto a target_w x target_h canvas (LIP: input_single_human.sizes[0]
// = [w, h]). Throws ImageError when a resized side would be 0 pixels.
Preprocessed preprocess_single_person(const Image& img, int target_w, int target_h, bool with_input = true);

// PIL Image.resize((nw, nh), BILINEAR) of an RGB image (a copy when the size is unchanged, as PIL).
Image resize_image_pil(const Image& img, int nw, int nh);

}  // namespace m2fp
