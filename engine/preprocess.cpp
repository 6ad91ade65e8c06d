// engine/preprocess.cpp: photo -> network input (see preprocess.h for the upstream semantics).
#include "engine/preprocess.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/kernels.h"

namespace m2fp {
namespace {

int round_up(int x, int m) { return (x + m - 1) / m * m; }

std::string size_str(int w, int h) { return std::to_string(w) + "x" + std::to_string(h); }

// Fills image [Hp, Wp, 3] with (value - mean) / std, zero padded, and, when `with_input`, input
// [3, nh, nw] with value(u8). `value` is what upstream feeds the model for a uint8 pixel. Both
// depend only on the byte and the channel, so they come from 256-entry tables computed with the
// same float32 operations. Only the padding is zeroed (the rest is written once).
template <class ValueFn>
void fill_tensors(const uint8_t* px, int width, int height, Preprocessed& p, ValueFn value, bool with_input) {
  float val[256], norm[3][256];
  for (int u = 0; u < 256; ++u) {
    val[u] = value((uint8_t)u);
    // float32 subtract then divide, as torch's (x - mean) / std (no reciprocal).
    for (int c = 0; c < 3; ++c) norm[c][u] = (val[u] - kPixelMean[c]) / kPixelStd[c];
  }
  const int nh = height, nw = width;
  p.nh = nh;
  p.nw = nw;
  p.Hp = round_up(nh, kSizeDivisibility);
  p.Wp = round_up(nw, kSizeDivisibility);
  if (with_input) p.input = Tensor::empty({3, nh, nw});  // [3, nh, nw]
  p.image = Tensor::empty({p.Hp, p.Wp, 3}, Layout::HWC);  // [Hp, Wp, 3]
  float* im = p.image.data();
  const size_t plane = (size_t)nh * nw;
  for (int y = 0; y < nh; ++y) {
    const uint8_t* s = px + (size_t)y * nw * 3;
    float* drow = im + (size_t)y * p.Wp * 3;
    for (int x = 0; x < 3 * nw; x += 3) {
      drow[x] = norm[0][s[x]];
      drow[x + 1] = norm[1][s[x + 1]];
      drow[x + 2] = norm[2][s[x + 2]];
    }
    std::fill(drow + 3 * nw, drow + 3 * p.Wp, 0.f);
    if (!with_input) continue;
    float* in0 = p.input.data() + (size_t)y * nw;
    for (int x = 0; x < nw; ++x)
      for (int c = 0; c < 3; ++c) in0[c * plane + x] = val[s[3 * x + c]];
  }
  std::fill(im + (size_t)nh * p.Wp * 3, im + (size_t)p.Hp * p.Wp * 3, 0.f);
}

}  // namespace

std::pair<int, int> multi_person_resize_shape(int h, int w, int short_edge, int max_size) {
  if (h <= 0 || w <= 0 || short_edge <= 0 || max_size <= 0)
    throw std::invalid_argument("multi_person_resize_shape: sizes must be positive (h=" +
                                std::to_string(h) + ", w=" + std::to_string(w) + ", short_edge=" +
                                std::to_string(short_edge) + ", max_size=" +
                                std::to_string(max_size) + ")");
  // Same operations, same order, in double, as upstream's Python floats.
  const double size = short_edge * 1.0;
  double scale = size / std::min(h, w);
  double newh, neww;
  if (h < w) {
    newh = size;
    neww = scale * w;
  } else {
    newh = scale * h;
    neww = size;
  }
  if (std::max(newh, neww) > max_size) {
    scale = max_size * 1.0 / std::max(newh, neww);
    newh = newh * scale;
    neww = neww * scale;
  }
  return {(int)(newh + 0.5), (int)(neww + 0.5)};
}

Image resize_image_pil(const Image& img, int nw, int nh) {
  if (nw <= 0 || nh <= 0)
    throw std::invalid_argument("resize_image_pil: target size " + size_str(nw, nh) +
                                " must be positive");
  if (img.width <= 0 || img.height <= 0 || img.rgb.size() != (size_t)img.width * img.height * 3)
    throw std::invalid_argument("resize_image_pil: invalid source image " +
                                size_str(img.width, img.height));
  if (nw == img.width && nh == img.height) return img;  // PIL returns a copy
  Image out;
  out.width = nw;
  out.height = nh;
  out.rgb.resize((size_t)nw * nh * 3);
  kern::resize_pil_bilinear_u8(img.rgb.data(), img.height, img.width, 3, out.rgb.data(), nh, nw);
  return out;
}

Preprocessed preprocess_multi_person(const Image& img, int short_edge, int max_size, bool with_input) {
  if (img.width <= 0 || img.height <= 0)
    throw std::invalid_argument("preprocess_multi_person: empty image " +
                                size_str(img.width, img.height));
  const auto [nh, nw] = multi_person_resize_shape(img.height, img.width, short_edge, max_size);
  if (nh < 1 || nw < 1)
    throw ImageError("image " + size_str(img.width, img.height) +
                     " is too elongated: resizing it to short edge " + std::to_string(short_edge) +
                     " / max size " + std::to_string(max_size) + " gives " + size_str(nw, nh));
  if (img.rgb.size() != (size_t)img.width * img.height * 3)
    throw std::invalid_argument("preprocess_multi_person: invalid image " + size_str(img.width, img.height));
  // The resized pixels (as resize_image_pil gives them) and the resize's scratch in one block from
  // the buffer pool: no zero-filled std::vector, and pages an earlier parse mapped.
  Tensor resized;
  const uint8_t* px = img.rgb.data();
  if (nw != img.width || nh != img.height) {
    const size_t out_bytes = ((size_t)nw * nh * 3 + 63) / 64 * 64;
    resized = Tensor::empty_bytes({(int64_t)out_bytes}, Layout::Opaque,
                                  out_bytes + kern::resize_pil_bilinear_u8_scratch_bytes(img.height, 3, nw));
    uint8_t* dst = reinterpret_cast<uint8_t*>(resized.data());
    kern::resize_pil_bilinear_u8(img.rgb.data(), img.height, img.width, 3, dst, nh, nw, dst + out_bytes);
    px = dst;
  }
  Preprocessed p;
  // ToTensor() (u8 / 255 in float32) then * 255. (float32): not always exactly u8.
  fill_tensors(px, nw, nh, p, [](uint8_t u) { return (float)u / 255.0f * 255.0f; }, with_input);
  p.crop_box = BBox{0, 0, nw, nh};
  return p;
}

CenterPlan single_person_plan(int src_h, int src_w, int target_w, int target_h) {
  if (src_h <= 0 || src_w <= 0 || target_w <= 0 || target_h <= 0)
    throw std::invalid_argument("single_person_plan: sizes must be positive (photo " +
                                size_str(src_w, src_h) + ", target " +
                                size_str(target_w, target_h) + ")");
  const int trg_h = target_h, trg_w = target_w;
  // int(a * b / c) in Python: exact integer product, correctly rounded true division, truncation.
  auto scaled = [](int a, int b, int c) { return (int)((double)((int64_t)a * b) / c); };
  CenterPlan p;
  if (src_h > trg_h && src_w > trg_w) {
    if (src_h >= src_w) {  // upstream: src_h > src_w (see the header for the square case)
      p.new_h = trg_h;
      p.new_w = scaled(p.new_h, src_w, src_h);
      if (p.new_w > trg_w) {
        p.new_w = trg_w;
        p.new_h = scaled(p.new_w, src_h, src_w);
      }
    } else {
      p.new_w = trg_w;
      p.new_h = scaled(p.new_w, src_h, src_w);
      if (p.new_h > trg_h) {
        p.new_h = trg_h;
        p.new_w = scaled(p.new_h, src_w, src_h);
      }
    }
    p.resize = true;
  } else if (src_h > trg_h) {  // src_w <= trg_w
    p.new_h = trg_h;
    p.new_w = scaled(p.new_h, src_w, src_h);
    p.resize = true;
  } else if (src_w > trg_w) {  // src_h <= trg_h
    p.new_w = trg_w;
    p.new_h = scaled(p.new_w, src_h, src_w);
    p.resize = true;
  } else {
    p.new_h = src_h;
    p.new_w = src_w;
  }
  // get_box / PadTransform: int((trg - src) / 2) with non-negative operands = floor division.
  p.box.x0 = (trg_w - p.new_w) / 2;
  p.box.x1 = p.new_w + p.box.x0;
  p.box.y0 = (trg_h - p.new_h) / 2;
  p.box.y1 = p.new_h + p.box.y0;
  p.pad_left = p.box.x0;
  p.pad_top = p.box.y0;
  p.padded = !(p.pad_left == 0 && p.pad_top == 0);  // PadTransform returns the image unpadded
  p.out_h = p.padded ? trg_h : p.new_h;
  p.out_w = p.padded ? trg_w : p.new_w;
  return p;
}

Preprocessed preprocess_single_person(const Image& img, int target_w, int target_h, bool with_input) {
  if (img.width <= 0 || img.height <= 0)
    throw std::invalid_argument("preprocess_single_person: empty image " +
                                size_str(img.width, img.height));
  const CenterPlan plan = single_person_plan(img.height, img.width, target_w, target_h);
  if (plan.new_h < 1 || plan.new_w < 1)
    throw ImageError("image " + size_str(img.width, img.height) +
                     " is too elongated: fitting it into " + size_str(target_w, target_h) +
                     " gives " + size_str(plan.new_w, plan.new_h));
  const Image fitted = plan.resize ? resize_image_pil(img, plan.new_w, plan.new_h) : img;
  Image centred;
  if (plan.padded) {
    centred = Image::blank(plan.out_w, plan.out_h, 128, 128, 128);
    for (int y = 0; y < plan.new_h; ++y)
      std::memcpy(centred.row(y + plan.pad_top) + (size_t)plan.pad_left * 3, fitted.row(y),
                  (size_t)plan.new_w * 3);
  }
  Preprocessed p;
  // The uint8 tensor minus the float32 mean: the value is the byte itself.
  const Image& ready = plan.padded ? centred : fitted;
  fill_tensors(ready.rgb.data(), ready.width, ready.height, p, [](uint8_t u) { return (float)u; }, with_input);
  p.crop_box = plan.box;
  return p;
}

}  // namespace m2fp
