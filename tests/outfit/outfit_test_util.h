// tests/outfit/outfit_test_util.h: shared helpers for the outfit tests (class names, data paths,
// hand-built parsings).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "engine/image.h"
#include "engine/parsing.h"
#include "outfit/colour.h"

namespace m2fp::test {

inline std::string data_dir() { return std::string(M2FP_SOURCE_DIR) + "/outfit/data"; }
inline std::string data_file(const std::string& name) { return data_dir() + "/" + name; }

// CIHP: 20 part classes + Human (SPEC §5).
inline std::vector<std::string> cihp_classes() {
  return {"Background", "Hat",      "Hair",      "Glove",     "Sunglasses", "UpperClothes", "Dress",
          "Coat",       "Socks",    "Pants",     "Torso-skin", "Scarf",     "Skirt",        "Face",
          "Left-arm",   "Right-arm", "Left-leg", "Right-leg", "Left-shoe",  "Right-shoe",   "Human"};
}
// LIP (single person): 20 classes.
inline std::vector<std::string> lip_classes() {
  return {"Background", "Hat",     "Hair",     "Glove",     "Sunglasses", "Upper-clothes", "Dress",
          "Coat",       "Socks",   "Pants",    "Jumpsuits", "Scarf",      "Skirt",         "Face",
          "Left-arm",   "Right-arm", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe"};
}
inline int class_index(const std::vector<std::string>& names, const std::string& n) {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == n) return static_cast<int>(i);
  return -1;
}

// A canvas of labels, persons and pixels to paint rectangles on.
struct Canvas {
  Parsing parsing;
  Image image;
  Canvas(int w, int h, std::vector<std::string> classes, RGB8 background = {200, 200, 200}) {
    parsing.width = w, parsing.height = h;
    parsing.class_names = std::move(classes);
    parsing.labels.assign(static_cast<size_t>(w) * h, 0);
    parsing.person_map.assign(static_cast<size_t>(w) * h, 0);
    image.width = w, image.height = h;
    image.rgb.resize(static_cast<size_t>(w) * h * 3);
    for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i)
      image.rgb[3 * i] = background.r, image.rgb[3 * i + 1] = background.g, image.rgb[3 * i + 2] = background.b;
  }
  // Paints [x0, x1) x [y0, y1) with a class (by name), a person (k >= 1, 0 = none, -1 = keep) and a colour.
  void rect(int x0, int y0, int x1, int y1, const std::string& cls, int person, RGB8 c) {
    const int label = class_index(parsing.class_names, cls);
    if (label < 0) throw std::runtime_error("test canvas: unknown class " + cls);
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) {
        const size_t i = static_cast<size_t>(y) * parsing.width + x;
        parsing.labels[i] = static_cast<uint8_t>(label);
        if (person >= 0) parsing.person_map[i] = static_cast<uint8_t>(person);
        image.rgb[3 * i] = c.r, image.rgb[3 * i + 1] = c.g, image.rgb[3 * i + 2] = c.b;
      }
  }
  // Marks [x0, x1) x [y0, y1) as person k without changing labels or pixels.
  void person(int x0, int y0, int x1, int y1, int k) {
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) parsing.person_map[static_cast<size_t>(y) * parsing.width + x] = static_cast<uint8_t>(k);
  }
  void add_person(BBox box, float score) {
    Person p;
    p.bbox = box;
    p.score = score;
    parsing.persons.push_back(p);
  }
};

}  // namespace m2fp::test
