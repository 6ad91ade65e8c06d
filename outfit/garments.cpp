// outfit/garments.cpp: label -> garment table (garments.json) and per-person garment extraction.
#include "outfit/garments.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <omp.h>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine/buffer_pool.h"

namespace m2fp {

const std::vector<std::string>& garment_slots() {
  static const std::vector<std::string> slots = {"top", "bottom", "one_piece", "outerwear", "shoes", "accessory"};
  return slots;
}

namespace {

int slot_rank(const std::string& slot) {
  const auto& s = garment_slots();
  return static_cast<int>(std::find(s.begin(), s.end(), slot) - s.begin());
}

// The end of the run that starts at p[x]: the first e > x with p[e] != p[x], or n. Compared 8 bytes
// at a time (8 labels, 4 16-bit garment ids: the value repeated in each lane of a word, XOR, the
// first lane not zero; x86 is little-endian: the lowest lane is the first pixel): the 12 MP maps
// are a bilinear upscale, their runs long, and the loop of one element a step had 18% and 29% of the
// samples of the two passes over the garment ids (perf annotate, big12.jpg); extract_outfits on one
// thread: 160-173 ms of CPU before, 152-168 ms after.
template <typename T>
int run_end(const T* p, int x, int n) {
  constexpr int kLanes = 8 / sizeof(T);
  const T v = p[x];
  const uint64_t repeated = v * (~uint64_t{0} / std::numeric_limits<T>::max());  // v in every lane
  int e = x + 1;
  for (; e + kLanes <= n; e += kLanes) {
    uint64_t w;
    std::memcpy(&w, p + e, 8);
    if (const uint64_t d = w ^ repeated) return e + __builtin_ctzll(d) / (8 * sizeof(T));
  }
  while (e < n && p[e] == v) ++e;
  return e;
}

std::string read_text_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw OutfitError(std::string("cannot open ") + what + " '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

// ---- the table --------------------------------------------------------------------------------

std::string GarmentTable::normalise(const std::string& name) {
  std::string out;
  for (unsigned char ch : name)
    if (std::isalnum(ch)) out += static_cast<char>(std::tolower(ch));
  return out;
}

GarmentTable GarmentTable::parse(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw OutfitError(source + ": not valid JSON: " + e.what());
  }
  auto fail = [&](const std::string& where, const std::string& what) {
    return OutfitError(source + ": " + where + ": " + what);
  };
  if (!j.is_object() || !j.contains("garments") || !j["garments"].is_array())
    throw fail("top level", "expected an object with a \"garments\" array");
  GarmentTable t;
  std::set<std::string> seen;
  const auto& slots = garment_slots();
  for (size_t i = 0; i < j["garments"].size(); ++i) {
    const auto& g = j["garments"][i];
    const std::string where = "garments[" + std::to_string(i) + "]";
    if (!g.is_object()) throw fail(where, "expected an object");
    for (const char* key : {"category", "slot"})
      if (!g.contains(key) || !g[key].is_string() || g[key].get<std::string>().empty())
        throw fail(where, std::string("missing or empty string \"") + key + "\"");
    if (!g.contains("labels") || !g["labels"].is_array() || g["labels"].empty())
      throw fail(where, "\"labels\" must be a non-empty array of class names");
    GarmentClass gc{g["category"].get<std::string>(), g["slot"].get<std::string>()};
    if (std::find(slots.begin(), slots.end(), gc.slot) == slots.end())
      throw fail(where, "unknown slot \"" + gc.slot + "\" (expected top, bottom, one_piece, outerwear, shoes or accessory)");
    const std::string existing = t.slot_of(gc.category);
    if (!existing.empty() && existing != gc.slot)
      throw fail(where, "category \"" + gc.category + "\" already has slot \"" + existing + "\"");
    std::set<std::string> seen_in_entry;
    for (const auto& label : g["labels"]) {
      if (!label.is_string()) throw fail(where, "labels must be strings");
      const std::string key = normalise(label.get<std::string>());
      if (key.empty()) throw fail(where, "empty label name");
      if (seen_in_entry.count(key)) continue;  // spellings of one class in one entry ("UpperClothes", "Upper-clothes")
      if (!seen.insert(key).second)
        throw fail(where, "label \"" + label.get<std::string>() + "\" is listed twice");
      seen_in_entry.insert(key);
      t.garments_.emplace_back(key, gc);
    }
  }
  if (j.contains("body")) {
    if (!j["body"].is_array()) throw fail("body", "expected an array of class names");
    for (const auto& label : j["body"]) {
      if (!label.is_string()) throw fail("body", "labels must be strings");
      const std::string key = normalise(label.get<std::string>());
      if (!seen.insert(key).second)
        throw fail("body", "label \"" + label.get<std::string>() + "\" is listed twice");
      t.body_.push_back(key);
    }
  }
  return t;
}

GarmentTable GarmentTable::load(const std::string& path) {
  return parse(read_text_file(path, "garment table"), path);
}

const GarmentClass* GarmentTable::lookup(const std::string& class_name) const {
  const std::string key = normalise(class_name);
  for (const auto& [k, g] : garments_)
    if (k == key) return &g;
  return nullptr;
}

bool GarmentTable::known(const std::string& class_name) const {
  const std::string key = normalise(class_name);
  return lookup(class_name) != nullptr || std::find(body_.begin(), body_.end(), key) != body_.end();
}

std::string GarmentTable::slot_of(const std::string& category) const {
  for (const auto& [k, g] : garments_)
    if (g.category == category) return g.slot;
  return "";
}

// ---- PersonOutfit helpers ---------------------------------------------------------------------

bool PersonOutfit::has_slot(const std::string& slot) const {
  return std::any_of(garments.begin(), garments.end(), [&](const Garment& g) { return g.slot == slot; });
}

bool PersonOutfit::has_category(const std::string& category) const {
  return std::any_of(garments.begin(), garments.end(), [&](const Garment& g) { return g.category == category; });
}

const Garment* PersonOutfit::largest_in_slot(const std::string& slot) const {
  const Garment* best = nullptr;
  for (const Garment& g : garments)
    if (g.slot == slot && (!best || g.pixels > best->pixels)) best = &g;
  return best;
}

// ---- extraction -------------------------------------------------------------------------------

std::vector<PersonOutfit> extract_outfits(const Parsing& parsing, const Image& image, const GarmentTable& table,
                                          const GarmentOptions& opt) {
  const int W = parsing.width, H = parsing.height;
  if (W <= 0 || H <= 0)
    throw OutfitError("extract_outfits: parsing has no size (" + std::to_string(W) + "x" + std::to_string(H) + ")");
  const size_t npix = static_cast<size_t>(W) * H;
  if (parsing.labels.size() != npix)
    throw OutfitError("extract_outfits: label map has " + std::to_string(parsing.labels.size()) +
                      " entries, expected " + std::to_string(W) + "x" + std::to_string(H));
  if (image.width != W || image.height != H)
    throw OutfitError("extract_outfits: image is " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                      " but the parsing is " + std::to_string(W) + "x" + std::to_string(H));
  if (image.rgb.size() != npix * 3)
    throw OutfitError("extract_outfits: image buffer has " + std::to_string(image.rgb.size()) + " bytes, expected " +
                      std::to_string(npix * 3));
  if (parsing.class_names.empty()) throw OutfitError("extract_outfits: parsing has no class names");

  const bool single = parsing.single_human || parsing.persons.empty();
  const int num_persons = single ? 1 : static_cast<int>(parsing.persons.size());
  if (!single && parsing.person_map.size() != npix)
    throw OutfitError("extract_outfits: person map has " + std::to_string(parsing.person_map.size()) +
                      " entries, expected " + std::to_string(npix) + " for " + std::to_string(num_persons) +
                      " persons");

  // Class index -> garment category index (-1: not a garment): [num_classes]
  std::vector<std::string> categories;  // category index -> name
  std::vector<std::string> cat_slot;
  std::vector<int> cls_to_cat(parsing.class_names.size(), -1);
  for (size_t c = 0; c < parsing.class_names.size(); ++c) {
    const GarmentClass* g = table.lookup(parsing.class_names[c]);
    if (!g) continue;
    auto it = std::find(categories.begin(), categories.end(), g->category);
    if (it == categories.end()) {
      categories.push_back(g->category);
      cat_slot.push_back(g->slot);
      it = categories.end() - 1;
    }
    cls_to_cat[c] = static_cast<int>(it - categories.begin());
  }
  const int ncat = static_cast<int>(categories.size());

  // Person areas and boxes.
  std::vector<PersonOutfit> outfits(num_persons);
  if (single) {
    PersonOutfit& p = outfits[0];
    p.person = 0;
    p.score = parsing.persons.empty() ? 1.f : parsing.persons[0].score;
    int x0 = W, y0 = H, x1 = 0, y1 = 0;
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        if (parsing.labels[static_cast<size_t>(y) * W + x] != 0) {
          ++p.area;
          x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x + 1), y1 = std::max(y1, y + 1);
        }
    if (p.area > 0) p.bbox = {x0, y0, x1, y1};
  } else {
    for (int k = 0; k < num_persons; ++k) {
      outfits[k].person = k;
      outfits[k].score = parsing.persons[k].score;
      outfits[k].bbox = parsing.persons[k].bbox;
    }
    // The pixels of each person-map value, counted over the threads (each in four tables: a run of one
    // value would otherwise wait on each count before it) and added up; then the first pixel of a
    // value past the persons (in raster order) is the one reported.
    std::vector<int64_t> area(256, 0);
    const uint8_t* pm = parsing.person_map.data();
#pragma omp parallel if (npix >= (1u << 20))
    {
      std::vector<int64_t> c(4 * 256, 0);
#pragma omp for schedule(static) nowait
      for (size_t i = 0; i < npix / 4; ++i) {
        ++c[pm[4 * i]];
        ++c[256 + pm[4 * i + 1]];
        ++c[512 + pm[4 * i + 2]];
        ++c[768 + pm[4 * i + 3]];
      }
#pragma omp critical(m2fp_outfit_areas)
      for (int v = 0; v < 256; ++v) area[(size_t)v] += c[(size_t)v] + c[256 + (size_t)v] + c[512 + (size_t)v] + c[768 + (size_t)v];
    }
    for (size_t i = npix / 4 * 4; i < npix; ++i) ++area[pm[i]];
    for (int v = num_persons + 1; v < 256; ++v)
      if (area[(size_t)v])
        for (size_t i = 0; i < npix; ++i)
          if (pm[i] > num_persons)
            throw OutfitError("extract_outfits: person map value " + std::to_string(pm[i]) + " at pixel (" +
                              std::to_string(i % W) + ", " + std::to_string(i / W) + ") but there are only " +
                              std::to_string(num_persons) + " persons");
    for (int k = 0; k < num_persons && k < 255; ++k) outfits[k].area = area[(size_t)k + 1];
  }

  // Owner of a garment pixel outside every person mask: the person whose box contains it, nearest
  // box centre first; -1 if none.
  auto fallback_person = [&](int x, int y) {
    int best = -1;
    double best_d = std::numeric_limits<double>::max();
    for (int k = 0; k < num_persons; ++k) {
      const BBox& b = parsing.persons[k].bbox;
      if (x < b.x0 || x >= b.x1 || y < b.y0 || y >= b.y1) continue;
      const double cx = 0.5 * (b.x0 + b.x1), cy = 0.5 * (b.y0 + b.y1);
      const double d = (x + 0.5 - cx) * (x + 0.5 - cx) + (y + 0.5 - cy) * (y + 0.5 - cy);
      if (d < best_d) best_d = d, best = k;
    }
    return best;
  };
  // Calls f(p, a, b) for spans [a, b) that cover [x0, x1) on row y, each of pixels with one fallback
  // person p, with a few fallback_person calls a span instead of one a pixel (the pixels of a
  // garment outside every person mask come in long runs at 12 MP: that per-pixel search over the
  // boxes was ~60% of the pass over the labels with the synthetic model's 13 persons). Between the
  // x where a box holding row y starts or ends, the boxes in the running are the same, and each one's
  // squared distance less another's is linear in x (the x^2 cancels; the doubles are exact: half-
  // integers below 2^25 squared), so the pixels a person wins (ties to the lower index as in
  // fallback_person) are one interval: where both ends of a stretch have the same person, all of it
  // has; else it is cut in two. cuts: the caller's scratch (one per thread).
  auto fallback_spans = [&](int y, int x0, int x1, std::vector<int>& cuts, auto&& f) {
    cuts.assign({x0, x1});
    for (int k = 0; k < num_persons; ++k) {
      const BBox& b = parsing.persons[k].bbox;
      if (y < b.y0 || y >= b.y1) continue;
      for (int c : {b.x0, b.x1})
        if (c > x0 && c < x1) cuts.push_back(c);
    }
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    // [a, b] (inclusive) whose end pixels fall back to pa and pb.
    auto split = [&](auto&& self, int a, int b, int pa, int pb) -> void {
      if (pa == pb) return f(pa, a, b + 1);
      if (b == a + 1) return f(pa, a, a + 1), f(pb, b, b + 1);
      const int m = a + (b - a) / 2;
      self(self, a, m, pa, fallback_person(m, y));
      self(self, m + 1, b, fallback_person(m + 1, y), pb);
    };
    for (size_t i = 0; i + 1 < cuts.size(); ++i)
      split(split, cuts[i], cuts[i + 1] - 1, fallback_person(cuts[i], y), fallback_person(cuts[i + 1] - 1, y));
  };

  // Every label must name a class; the first one that does not (in raster order) is reported.
  uint8_t max_label = 0;
#pragma omp parallel for schedule(static) reduction(max : max_label) if (npix >= (1u << 20))
  for (size_t i = 0; i < npix; ++i) max_label = std::max(max_label, parsing.labels[i]);
  if (max_label >= cls_to_cat.size())
    for (size_t i = 0; i < npix; ++i)
      if (parsing.labels[i] >= cls_to_cat.size())
        throw OutfitError("extract_outfits: label " + std::to_string(parsing.labels[i]) + " at pixel (" +
                          std::to_string(i % W) + ", " + std::to_string(i / W) + ") but there are only " +
                          std::to_string(cls_to_cat.size()) + " class names");

  // The garment (person, category) of each pixel: gid = person * ncat + category + 1, 0 where the
  // pixel is no garment or belongs to nobody: [H, W]. Rows are split over the threads (each pixel on
  // its own); the pixel count and the classes seen per garment are gathered per thread and added up.
  // 16-bit ids when they fit (always, for up to 100 persons), else 32-bit.
  const size_t nkeys = static_cast<size_t>(num_persons) * std::max(ncat, 1);
  const size_t ncls = cls_to_cat.size();
  std::vector<int64_t> key_count(nkeys, 0);
  std::vector<uint8_t> key_classes(nkeys * ncls, 0);  // [nkeys, num_classes]: class seen in the garment
  // The garments' pixels as numbers into the photo's distinct colours (their CIELAB values converted
  // once, not once per pixel): garment k's are numbers[start[k], start[k] + length[k]).
  PhotoColours colours;
  std::vector<uint8_t> interior(nkeys, 0);  // the garment's colours from its interior pixels
  std::vector<size_t> start(nkeys, 0), length(nkeys, 0);
  pool::Array<uint32_t> numbers;
  std::vector<BBox> box(nkeys, BBox{W, H, 0, 0});
  std::vector<uint8_t> keep(nkeys, 0);
  auto gather = [&](auto id_type) {
    using Id = decltype(id_type);
    pool::Array<Id> gid(npix);  // every entry written below; from the buffer pool (24 MB at 12 MP)
#pragma omp parallel if (npix >= (1u << 20))
    {
      std::vector<int64_t> cnt(nkeys, 0);
      std::vector<uint8_t> seen(nkeys * ncls, 0);
      std::vector<int> cuts;
      // Along each row in runs of one label and one person-map value (one garment, counted once a
      // run), but runs of nobody's pixels in spans of one fallback person (each pixel goes to the box
      // nearest to it).
#pragma omp for schedule(static)
      for (int y = 0; y < H; ++y) {
        const uint8_t* lab = parsing.labels.data() + static_cast<size_t>(y) * W;
        const uint8_t* pmr = single ? nullptr : parsing.person_map.data() + static_cast<size_t>(y) * W;
        Id* g = gid.data() + static_cast<size_t>(y) * W;
        for (int x = 0; x < W;) {
          const uint8_t cls = lab[x];
          const uint8_t pm = single ? 0 : pmr[x];
          const int e = single ? run_end(lab, x, W) : std::min(run_end(lab, x, W), run_end(pmr, x, W));
          const int cat = cls_to_cat[cls];
          if (cat < 0) {
            std::fill(g + x, g + e, Id{0});
          } else if (single || pm > 0) {
            const size_t key = static_cast<size_t>(single ? 0 : pm - 1) * ncat + cat;
            std::fill(g + x, g + e, static_cast<Id>(key + 1));
            cnt[key] += e - x;
            seen[key * ncls + cls] = 1;
          } else {
            fallback_spans(y, x, e, cuts, [&](int p, int a, int b) {
              if (p < 0) return std::fill(g + a, g + b, Id{0});
              const size_t key = static_cast<size_t>(p) * ncat + cat;
              std::fill(g + a, g + b, static_cast<Id>(key + 1));
              cnt[key] += b - a;
              seen[key * ncls + cls] = 1;
            });
          }
          x = e;
        }
      }
#pragma omp critical(m2fp_outfit_counts)
      for (size_t k = 0; k < nkeys; ++k) {
        key_count[k] += cnt[k];
        for (size_t c = 0; c < ncls; ++c) key_classes[k * ncls + c] |= seen[k * ncls + c];
      }
    }

    // The pixels each garment's colours come from, in raster order: the interior ones (whose 4
    // neighbours are of the same garment; a neighbour outside the photo counts as the same: a garment
    // cut by the frame is not an edge) when enough of them remain, else all; and its box; only
    // garments that pass the size checks below. The rows are cut into strips, one per thread: a
    // first pass counts per strip and garment (and marks the photo's colours), a second writes each
    // pixel's colour number at its place (the strips' counts before it), so the garments' pixel
    // lists come out in raster order however many threads run.
    auto kept = [&](size_t key) {
      const int64_t count = key_count[key];
      const int64_t area = outfits[key / std::max(ncat, 1)].area;
      if (count == 0 || count < opt.min_pixels) return false;
      return !(area > 0 && static_cast<double>(count) / area < opt.min_share_of_person);
    };
    for (size_t k = 0; k < nkeys; ++k) keep[k] = kept(k) ? 1 : 0;
    const bool threaded = npix >= (1u << 20);
    const int nstrips = threaded ? std::max(1, std::min(omp_get_max_threads(), H)) : 1;
    auto strip_rows = [&](int s, int* y0, int* y1) {
      *y0 = static_cast<int>(static_cast<int64_t>(H) * s / nstrips);
      *y1 = static_cast<int>(static_cast<int64_t>(H) * (s + 1) / nstrips);
    };
    // Calls f(key, x0, x1, y, up, down, rgb) for each run [x0, x1) of one kept garment's pixels on a row
    // y of strip s (a run as long as it goes: the pixels left and right of it are another garment's or
    // outside the photo; up, down: the rows of garment ids above and below, null outside the photo;
    // rgb: the photo's row y).
    auto each_kept_run = [&](int s, auto&& f) {
      int y0, y1;
      strip_rows(s, &y0, &y1);
      for (int y = y0; y < y1; ++y) {
        const Id* g = gid.data() + static_cast<size_t>(y) * W;
        const Id* up = y > 0 ? g - W : nullptr;
        const Id* down = y + 1 < H ? g + W : nullptr;
        const uint8_t* rgb = image.rgb.data() + 3 * static_cast<size_t>(y) * W;
        for (int x = 0; x < W;) {
          const Id id = g[x];
          const int e = run_end(g, x, W);
          if (id != 0 && keep[id - 1]) f(static_cast<size_t>(id - 1), x, e, y, up, down, rgb);
          x = e;
        }
      }
    };
    auto colour_at = [](const uint8_t* rgb, int x) {
      return static_cast<uint32_t>(rgb[3 * x]) << 16 | static_cast<uint32_t>(rgb[3 * x + 1]) << 8 | rgb[3 * x + 2];
    };
    // The interior pixels of a run [x0, x1) of garment id (whose 4 neighbours are of the same garment; a
    // neighbour outside the photo counts as the same: a garment cut by the frame is not an edge): those
    // of [lo, hi) (the run less its ends, unless an end is the photo's) with the same id above and below.
    auto interior_span = [&](int x0, int x1, int* lo, int* hi) {
      *lo = x0 == 0 ? 0 : x0 + 1;
      *hi = x1 == W ? x1 : x1 - 1;
    };
    auto vertical = [](const Id* up, const Id* down, int x, Id id) {
      return (!up || up[x] == id) && (!down || down[x] == id);
    };
    std::vector<int64_t> strip_interior(static_cast<size_t>(nstrips) * nkeys, 0);
    std::vector<int64_t> strip_all(static_cast<size_t>(nstrips) * nkeys, 0);
    std::vector<BBox> strip_box(static_cast<size_t>(nstrips) * nkeys, BBox{W, H, 0, 0});
#pragma omp parallel for schedule(static, 1) num_threads(nstrips) if (nstrips > 1)
    for (int s = 0; s < nstrips; ++s) {
      int64_t* inner = strip_interior.data() + static_cast<size_t>(s) * nkeys;
      int64_t* every = strip_all.data() + static_cast<size_t>(s) * nkeys;
      BBox* bx = strip_box.data() + static_cast<size_t>(s) * nkeys;
      each_kept_run(s, [&](size_t key, int x0, int x1, int y, const Id* up, const Id* down, const uint8_t* rgb) {
        every[key] += x1 - x0;
        BBox& b = bx[key];
        b.x0 = std::min(b.x0, x0), b.y0 = std::min(b.y0, y), b.x1 = std::max(b.x1, x1), b.y1 = std::max(b.y1, y + 1);
        // Every pixel's colour marked (and looked up in the second pass), also where it repeats the
        // pixel before: 47% of the 12 MP photo's pixels repeat their left neighbour, so a test for a
        // repeat went either way at random, and its mispredictions cost more than the loads it saved
        // (extract_outfits 238-259 ms of CPU with it, 199-200 without, bench_outputs --image big12.jpg).
        for (int x = x0; x < x1; ++x) colours.mark(colour_at(rgb, x));
        if (!opt.interior_pixels_only) return;
        int lo, hi;
        interior_span(x0, x1, &lo, &hi);
        const Id id = static_cast<Id>(key + 1);
        int64_t n = 0;
        for (int x = lo; x < hi; ++x) n += vertical(up, down, x, id) ? 1 : 0;
        inner[key] += n;
      });
    }
    colours.convert();
    // Per garment: interior pixels or all, the box, where its numbers start in `numbers`.
    std::vector<size_t> at(static_cast<size_t>(nstrips) * nkeys, 0);  // [strip, key]: first place
    size_t total = 0;
    for (size_t k = 0; k < nkeys; ++k) {
      if (!keep[k]) continue;
      int64_t inner = 0;
      for (int s = 0; s < nstrips; ++s) {
        inner += strip_interior[static_cast<size_t>(s) * nkeys + k];
        const BBox& b = strip_box[static_cast<size_t>(s) * nkeys + k];
        BBox& t = box[k];
        t.x0 = std::min(t.x0, b.x0), t.y0 = std::min(t.y0, b.y0), t.x1 = std::max(t.x1, b.x1), t.y1 = std::max(t.y1, b.y1);
      }
      interior[k] = opt.interior_pixels_only && inner >= 16 && inner * 4 >= key_count[k];
      start[k] = total;
      for (int s = 0; s < nstrips; ++s) {
        const size_t sk = static_cast<size_t>(s) * nkeys + k;
        at[sk] = total;
        total += static_cast<size_t>(interior[k] ? strip_interior[sk] : strip_all[sk]);
      }
      length[k] = total - start[k];
    }
    numbers = pool::Array<uint32_t>(total);  // every entry written below
#pragma omp parallel for schedule(static, 1) num_threads(nstrips) if (nstrips > 1)
    for (int s = 0; s < nstrips; ++s) {
      size_t* place = at.data() + static_cast<size_t>(s) * nkeys;
      uint32_t* out = numbers.data();
      each_kept_run(s, [&](size_t key, int x0, int x1, int, const Id* up, const Id* down, const uint8_t* rgb) {
        size_t k = place[key];
        auto put = [&](int x) { out[k++] = colours.number(colour_at(rgb, x)); };
        if (interior[key]) {
          int lo, hi;
          interior_span(x0, x1, &lo, &hi);
          const Id id = static_cast<Id>(key + 1);
          for (int x = lo; x < hi; ++x)
            if (vertical(up, down, x, id)) put(x);
        } else {
          for (int x = x0; x < x1; ++x) put(x);
        }
        place[key] = k;
      });
    }
  };
  if (nkeys < 65535) gather(uint16_t{});
  else gather(uint32_t{});

  // The dominant colours of the garments side by side (each on one thread), the largest first.
  check_dominant_colour_options(opt.colour);
  std::vector<size_t> order;
  for (size_t k = 0; k < nkeys; ++k)
    if (keep[k]) order.push_back(k);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return length[a] > length[b]; });
  std::vector<std::vector<ColourShare>> garment_colours(nkeys);
  size_t kept_pixels = 0;
  for (size_t k : order) kept_pixels += length[k];
  std::exception_ptr error;  // (out of memory) rethrown here: an exception may not leave the region
#pragma omp parallel for schedule(dynamic, 1) if (order.size() > 1 && kept_pixels >= (1u << 16))
  for (size_t i = 0; i < order.size(); ++i) {
    const size_t k = order[i];
    try {
      garment_colours[k] = dominant_colours(numbers.data() + start[k], length[k], colours.table(), opt.colour);
    } catch (...) {
#pragma omp critical(m2fp_outfit_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  numbers.reset();

  for (int p = 0; p < num_persons; ++p) {
    PersonOutfit& outfit = outfits[p];
    for (int cat = 0; cat < ncat; ++cat) {
      const size_t key = static_cast<size_t>(p) * ncat + cat;
      if (!keep[key]) continue;
      const int64_t count = key_count[key];
      const double share = outfit.area > 0 ? static_cast<double>(count) / outfit.area : 0.0;

      Garment g;
      g.category = categories[cat];
      g.slot = cat_slot[cat];
      g.person = p;
      g.pixels = count;
      g.share_of_person = std::min(share, 1.0);
      g.bbox = box[key];
      g.colours = std::move(garment_colours[key]);
      const uint8_t* seen = key_classes.data() + key * ncls;
      for (size_t cls = 0; cls < ncls; ++cls)
        if (seen[cls]) g.labels.push_back(parsing.class_names[cls]);
      outfit.garments.push_back(std::move(g));
    }
    std::sort(outfit.garments.begin(), outfit.garments.end(), [](const Garment& a, const Garment& b) {
      const int ra = slot_rank(a.slot), rb = slot_rank(b.slot);
      if (ra != rb) return ra < rb;
      if (a.pixels != b.pixels) return a.pixels > b.pixels;
      return a.category < b.category;
    });
  }
  return outfits;
}

}  // namespace m2fp
