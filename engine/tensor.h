// engine/tensor.h: the engine's one tensor type.
//
// A Tensor is a float32 buffer (64-byte aligned, shared ownership, from engine/buffer_pool.h) with
// a shape. Feature maps have shape {H, W, C}: Layout::HWC (plain channels-last, what the engine's
// own kernels read and write) or Layout::Opaque (a blocked layout oneDNN chose for a chain of
// convolutions, see engine/dnn.h); token matrices are {rows, C} with Layout::Plain. Dumps
// (--dump-tensors, parity tests) convert feature maps to PyTorch's [C, H, W] so a dumped tensor
// compares directly with the reference.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "engine/buffer_pool.h"

namespace m2fp {

// Plain: row-major as the shape says. HWC: a feature map [H, W, C], channels last.
// Opaque: a feature map [H, W, C] in a layout oneDNN chose (e.g. nChw8c blocks); only engine/dnn
// reads it (`fmt` describes it) and dnn::to_hwc() converts it.
enum class Layout { Plain, HWC, Opaque };

struct Tensor {
  std::vector<int64_t> shape;
  Layout layout = Layout::Plain;
  std::shared_ptr<float> buf;
  std::shared_ptr<const void> fmt;  // Layout::Opaque only: the oneDNN memory descriptor
  size_t bytes = 0;                 // allocated size of buf

  Tensor() = default;
  static Tensor empty(std::vector<int64_t> shape, Layout layout = Layout::Plain) {
    Tensor t;
    t.shape = std::move(shape);
    t.layout = layout;
    t.allocate((size_t)t.numel() * sizeof(float));
    return t;
  }
  // A tensor whose storage size differs from numel() floats (Layout::Opaque).
  static Tensor empty_bytes(std::vector<int64_t> shape, Layout layout, size_t nbytes) {
    Tensor t;
    t.shape = std::move(shape);
    t.layout = layout;
    t.allocate(nbytes);
    return t;
  }
  static Tensor zeros(std::vector<int64_t> shape, Layout layout = Layout::Plain) {
    Tensor t = empty(std::move(shape), layout);
    std::memset(t.data(), 0, (size_t)t.numel() * sizeof(float));
    return t;
  }

  Tensor clone() const {
    Tensor t = empty_bytes(shape, layout, bytes);
    t.fmt = fmt;
    std::memcpy(t.data(), data(), bytes);
    return t;
  }

  float* data() { return buf.get(); }
  const float* data() const { return buf.get(); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return shape.empty() ? 0 : n;
  }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  bool defined() const { return (bool)buf; }
  std::string shape_str() const {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
  }

 private:
  void allocate(size_t nbytes) {
    bytes = nbytes;
    void* p = pool::allocate(nbytes);  // large blocks are reused across forward passes
    try {
      buf = std::shared_ptr<float>(static_cast<float*>(p), [nbytes](float* q) { pool::release(q, nbytes); });
    } catch (...) {
      pool::release(p, nbytes);
      throw;
    }
  }
};

}  // namespace m2fp
