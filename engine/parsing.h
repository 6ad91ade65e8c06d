// engine/parsing.h: what a parse produces, independent of how it was computed.
//
// The label map is the semantic map's argmax at the original image size; instances are the
// upstream part and human instances (multi-person mode); persons are the human instances with the
// part instances assigned to them by mask overlap.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace m2fp {

// The bytes of an instance's mask: its own, or a view into one block that every instance of a parse
// shares (engine/postprocess.cpp writes all of a large photo's masks into one mapping: ~100 masks of
// 1.5 MB each as separate vectors cost ~33k first touches of fresh 4 KiB pages per 12-megapixel
// parse, ~10-20 us each on a virtual machine, where one mapping in 2 MB pages costs ~70). Copies
// share the bytes (a Parsing's masks are read-only once made; assign() gives an instance bytes of its
// own to write, as tests building masks by hand do).
class MaskBits {
 public:
  MaskBits() = default;
  // n bytes at p, kept alive by `owner` (which may own other instances' bytes too)
  MaskBits(std::shared_ptr<const void> owner, uint8_t* p, size_t n) : owner_(std::move(owner)), p_(n ? p : nullptr), n_(n) {}
  // n bytes of value v of its own
  void assign(size_t n, uint8_t v) {
    std::shared_ptr<uint8_t[]> b(n ? new uint8_t[n] : nullptr);
    if (n) std::memset(b.get(), v, n);
    p_ = b.get();
    n_ = n;
    owner_ = std::move(b);
  }
  uint8_t* data() { return p_; }
  const uint8_t* data() const { return p_; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  uint8_t& operator[](size_t i) { return p_[i]; }
  const uint8_t& operator[](size_t i) const { return p_[i]; }
  const uint8_t* begin() const { return p_; }
  const uint8_t* end() const { return p_ + n_; }
  friend bool operator==(const MaskBits& a, const MaskBits& b) {
    return a.n_ == b.n_ && (a.n_ == 0 || std::memcmp(a.p_, b.p_, a.n_) == 0);
  }
  friend bool operator!=(const MaskBits& a, const MaskBits& b) { return !(a == b); }

 private:
  std::shared_ptr<const void> owner_;
  uint8_t* p_ = nullptr;
  size_t n_ = 0;
};

struct BBox {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // half-open pixel box [x0, x1) x [y0, y1)
};

struct Instance {
  enum class Kind { Part, Human };
  Kind kind = Kind::Part;
  int category_id = 0;
  std::string label;
  float score = 0.f;
  int64_t area = 0;    // pixels of mask > 0 at original size
  BBox bbox;
  int query = -1;      // decoder query the mask comes from
  int person = -1;     // parts: index into Parsing::persons, -1 if unassigned
  // The mask (> 0 at original size) inside bbox, computed in the same pass as the label map:
  // (bbox.y1 - bbox.y0) rows of (bbox.x1 - bbox.x0 + 7) / 8 bytes, pixel x - bbox.x0 at bit
  // (x - bbox.x0) % 8 (least significant first) of byte (x - bbox.x0) / 8. Empty for an empty mask
  // and in single-person mode (no instances). Its set bits number `area`.
  MaskBits mask_bits;
  bool mask_at(int x, int y) const {
    if (x < bbox.x0 || x >= bbox.x1 || y < bbox.y0 || y >= bbox.y1 || mask_bits.empty()) return false;
    const int stride = (bbox.x1 - bbox.x0 + 7) / 8, dx = x - bbox.x0;
    return (mask_bits[(size_t)(y - bbox.y0) * stride + dx / 8] >> (dx % 8)) & 1;
  }
};

struct Person {
  int instance = -1;          // index into Parsing::instances (the Human instance)
  float score = 0.f;
  BBox bbox;
  int64_t area = 0;
  std::vector<int> parts;     // indices into Parsing::instances
};

struct Parsing {
  int width = 0, height = 0;              // original image size
  bool single_human = false;
  std::vector<std::string> class_names;   // class index -> name (CIHP: 20 parts + Human)
  std::vector<uint8_t> labels;            // [height * width] class index per pixel (0 = background)
  std::vector<uint8_t> person_map;        // [height * width] 0 = none, k = persons[k - 1]
  std::vector<Instance> instances;
  std::vector<Person> persons;
  std::vector<double> label_fractions;    // per class: share of pixels with that label
  // The semantic map's per-class scores, kept only when asked (PostprocessOptions::keep_scores, for
  // the service's refinements): [score_classes, height, width], each score clamped to [0, 1] and
  // stored as round(score * 255). Empty by default (no cost when not asked).
  int score_classes = 0;
  std::vector<uint8_t> scores;
  uint8_t score_at(int c, int64_t i) const { return scores[(size_t)c * width * height + i]; }
  // Single-person mode: per class, the sum of sigmoid(semantic[c]) over the pixels labelled c,
  // divided by (their count + 1) (ModelScope's pipeline score); empty in multi-person mode.
  std::vector<double> semantic_scores;
};

}  // namespace m2fp
