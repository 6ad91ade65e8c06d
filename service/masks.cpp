// service/masks.cpp: see masks.h; the label set tables and union masks are documented in docs/LABELS.md.
#include "service/masks.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "engine/io.h"
#include "service/render.h"

namespace m2fp::service {

namespace {

// Transposes a 64x64 bit matrix in place: bit c of a[r] moves to bit r of a[c] (Hacker's Delight's
// recursive block swap, on 64-bit words, least significant bit first).
inline void transpose64(uint64_t a[64]) {
  uint64_t m = 0x00000000FFFFFFFFull;
  for (int j = 32; j != 0; j >>= 1, m ^= m << j) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

// COCO runs as they are appended: alternating zeros and ones, starting with zeros.
struct RunWriter {
  std::vector<uint32_t>& runs;  // cleared by the caller
  uint32_t run = 0;
  bool cur = false;
  void zeros(uint32_t n) {
    if (n == 0) return;
    if (cur) {
      runs.push_back(run);
      run = 0;
      cur = false;
    }
    run += n;
  }
  // n pixels whose values are the bits of words[], least significant first: the runs between
  // transitions are found 64 pixels at a time (the word's transitions at once, one count of trailing
  // zeros each), not pixel by pixel.
  void bits(const uint64_t* words, int n) {
    for (; n > 0; ++words, n -= 64) {
      const int m = std::min(n, 64);
      const uint64_t valid = m == 64 ? ~uint64_t{0} : (uint64_t{1} << m) - 1;
      const uint64_t w = *words & valid;
      // Bit i: pixel i differs from the one before it (pixel -1: the current value).
      uint64_t t = (w ^ (w << 1 | (cur ? 1 : 0))) & valid;
      int pos = 0;  // where the run now open started in this word
      for (; t; t &= t - 1) {
        const int i = __builtin_ctzll(t);
        runs.push_back(run + (uint32_t)(i - pos));
        run = 0;
        pos = i;
      }
      run += (uint32_t)(m - pos);
      cur = (w >> (m - 1)) & 1;
    }
  }
};

}  // namespace

namespace {

// The runs from the mask's vertical transitions: row y of the box against row y - 1 (zeros above
// the first row and below the last), 64 columns at a time; each changed bit (x, y) is where a run
// of column x starts. Gathered per column (counted, then placed), they are the places of the
// column-major order where the value changes: the runs are the distances between them. Two
// transitions at one place (the bottom of a column ending in a set pixel at the photo's last row,
// the top of the next starting with one at row 0) cancel; one at the very end is no change. Gives up (false) once the transitions
// pass `max_transitions`.
// What runs_by_transitions works in, kept by each thread from mask to mask: fresh buffers would be
// faulted in again for each of a photo's hundred masks (page faults are most of their cost).
struct ChangedWord {
  uint32_t y, k;
  uint64_t bits;
};
struct TransitionScratch {
  std::vector<uint64_t> prev, cur;
  std::vector<ChangedWord> changed;
  std::vector<uint32_t> start, rows, at;
};

bool runs_by_transitions(const Instance& in, int width, int height, size_t max_transitions,
                         std::vector<uint32_t>* runs) {
  thread_local TransitionScratch scratch;
  const BBox& b = in.bbox;
  const int bw = b.x1 - b.x0, bh = b.y1 - b.y0, stride = (bw + 7) / 8, nw = (stride + 7) / 8;
  const int tail = bw - 64 * (nw - 1);  // columns in the last word, 1..64
  const uint64_t last_mask = tail == 64 ? ~uint64_t{0} : (uint64_t{1} << tail) - 1;
  std::vector<uint64_t>& prev = scratch.prev;
  std::vector<uint64_t>& cur = scratch.cur;
  prev.assign((size_t)nw, 0);
  cur.assign((size_t)nw, 0);
  auto load_row = [&](int y, uint64_t* w) {  // bit i of word k: column 64 k + i; zeros outside the box
    if (y >= bh) {
      std::fill(w, w + nw, uint64_t{0});
      return;
    }
    const uint8_t* row = in.mask_bits.data() + (size_t)y * stride;
    for (int k = 0; k < nw; ++k) {
      const int nbytes = std::min(8, stride - 8 * k);
      uint64_t v = 0;
      if (nbytes == 8) std::memcpy(&v, row + 8 * k, 8);
      else std::memcpy(&v, row + 8 * k, (size_t)nbytes);
      w[k] = v;
    }
    w[nw - 1] &= last_mask;
  };
  // The rows' changed words (row, word, changed bits), row by row; false past max_transitions.
  std::vector<ChangedWord>& changed = scratch.changed;
  changed.clear();
  size_t transitions = 0;
  for (int y = 0; y <= bh; ++y) {
    load_row(y, cur.data());
    for (int k = 0; k < nw; ++k) {
      const uint64_t d = cur[(size_t)k] ^ prev[(size_t)k];
      if (!d) continue;
      transitions += (size_t)__builtin_popcountll(d);
      if (transitions > max_transitions) return false;
      changed.push_back({(uint32_t)y, (uint32_t)k, d});
    }
    std::swap(prev, cur);
  }
  std::vector<uint32_t>& start = scratch.start;  // per column: its first transition in `rows`
  start.assign((size_t)bw + 1, 0);
  for (const ChangedWord& c : changed)
    for (uint64_t d = c.bits; d; d &= d - 1) ++start[64 * (size_t)c.k + (size_t)__builtin_ctzll(d) + 1];
  for (int x = 0; x < bw; ++x) start[(size_t)x + 1] += start[(size_t)x];
  std::vector<uint32_t>& rows = scratch.rows;
  std::vector<uint32_t>& at = scratch.at;
  rows.resize(transitions);
  at.assign(start.begin(), start.end() - 1);
  for (const ChangedWord& c : changed)
    for (uint64_t d = c.bits; d; d &= d - 1) rows[at[64 * (size_t)c.k + (size_t)__builtin_ctzll(d)]++] = c.y;

  runs->clear();
  runs->reserve(transitions + 1);
  uint64_t last = 0;  // the place of the last change (0: the start)
  const uint64_t total = (uint64_t)width * (uint64_t)height;
  for (int x = 0; x < bw; ++x) {
    const uint64_t column = (uint64_t)(b.x0 + x) * (uint64_t)height + (uint64_t)b.y0;
    for (uint32_t i = start[(size_t)x]; i < start[(size_t)x + 1]; ++i) {
      const uint64_t place = column + rows[i];
      if (place == total) break;  // the bottom of the photo's last column: nothing follows
      if (place == last && !runs->empty() && last != 0) {  // cancels the change just noted
        last -= runs->back();
        runs->pop_back();
        continue;
      }
      runs->push_back((uint32_t)(place - last));
      last = place;
    }
  }
  runs->push_back((uint32_t)(total - last));
  return true;
}

}  // namespace

// The runs and the transposed columns are fresh vectors per mask on purpose: kept by each thread from
// mask to mask, they made more page faults, not fewer (bench_outputs, 12 MP, 2 threads: ~900 against
// ~280 per parsing_json), most likely because glibc raises its mmap threshold when a large block it
// mapped is freed, after which the next masks' large runs and strings come from heap pages already there.
std::vector<uint32_t> instance_runs(const Instance& in, int width, int height, RunsBy how) {
  // Column-major runs, alternating zeros and ones, starting with zeros.
  std::vector<uint32_t> runs;
  RunWriter w{runs};
  const BBox& b = in.bbox;
  const bool empty = in.mask_bits.empty() || b.x1 <= b.x0 || b.y1 <= b.y0;
  if (empty) {
    w.zeros((uint32_t)width * (uint32_t)height);
    w.runs.push_back(w.run);
    return runs;
  }
  if (how != RunsBy::Transpose) {
    // Transitions cost ~64 times a pixel of the transpose below: past one per 64 pixels, transpose.
    const size_t pixels = (size_t)(b.x1 - b.x0) * (size_t)(b.y1 - b.y0);
    const size_t limit = how == RunsBy::Transitions ? SIZE_MAX : pixels / 64 + 64;
    if (runs_by_transitions(in, width, height, limit, &runs)) return runs;
    runs.clear();
  }
  // 64 pixel columns of the box (8 bytes of its bit rows) are read at a time, 64 rows to a block: one
  // 64x64 bit transpose turns a block into 64 column words (64 rows each), whose runs RunWriter::bits
  // finds a word at a time.
  const int stride = (b.x1 - b.x0 + 7) / 8, bh = b.y1 - b.y0;
  const int nwords = (bh + 63) / 64;
  // A tile of 512 pixel columns (64 bytes of each bit row) at a time, all its blocks transposed before
  // its columns are read: the tile's rows and columns stay in the cache (a 12 MP mask's bit rows are
  // 1.5 MB; read 8 bytes a row for each group of 64 columns, they came from memory 63 times over).
  constexpr int kTileBytes = 64;
  std::vector<uint64_t> cols((size_t)8 * kTileBytes * nwords);  // [512 columns][nwords]: bit i % 64 of word i / 64 = row i
  uint64_t block[64];
  w.zeros((uint32_t)b.x0 * (uint32_t)height);
  for (int tx = 0; tx < stride; tx += kTileBytes) {
    const int tbytes = std::min(kTileBytes, stride - tx);
    for (int wi = 0; wi < nwords; ++wi) {
      const int r0 = wi * 64, nrows = std::min(64, bh - r0);
      for (int gx = tx; gx < tx + tbytes; gx += 8) {
        const int nbytes = std::min(8, stride - gx);
        const uint8_t* src = in.mask_bits.data() + (size_t)r0 * stride + gx;
        uint64_t* dst = cols.data() + (size_t)(gx - tx) * 8 * nwords + wi;  // column 8 * (gx - tx)
        // Byte j of block[r] = pixel columns 8 * (gx + j) .. + 7 of row r0 + r. Whole words by an
        // 8-byte copy of constant size (one load): a copy of a variable size builds the word from
        // overlapping stores, and reading it back then stalls on every row.
        uint64_t any = 0;
        if (nbytes == 8) {
          for (int r = 0; r < nrows; ++r) {
            std::memcpy(&block[r], src + (size_t)r * stride, 8);
            any |= block[r];
          }
        } else {
          for (int r = 0; r < nrows; ++r) {
            uint64_t x = 0;
            std::memcpy(&x, src + (size_t)r * stride, (size_t)nbytes);
            block[r] = x;
            any |= x;
          }
        }
        if (!any) {
          for (int c = 0; c < 64; ++c) dst[(size_t)c * nwords] = 0;
          continue;
        }
        for (int r = nrows; r < 64; ++r) block[r] = 0;  // rows past the box stay 0
        transpose64(block);  // block[c] bit r = column c, row r0 + r
        for (int c = 0; c < 64; ++c) dst[(size_t)c * nwords] = block[c];
      }
    }
    for (int c = 0; c < 8 * tbytes && b.x0 + 8 * tx + c < b.x1; ++c) {
      w.zeros((uint32_t)b.y0);
      w.bits(cols.data() + (size_t)c * nwords, bh);
      w.zeros((uint32_t)(height - b.y1));
    }
  }
  w.zeros((uint32_t)(width - b.x1) * (uint32_t)height);
  w.runs.push_back(w.run);
  return runs;
}

std::string rle_counts_string(const std::vector<uint32_t>& runs) {
  // COCO's rleToString: each count (less the count two before it, from the third on) in 5-bit
  // groups, least significant first, 0x20 = more follows, 0x10 = sign of the last group, + 48.
  // A count takes the groups its bits need with the sign bit (1..7 of them: at most 34 bits); the
  // characters are counted first, so that the string is made at its size (a large mask's is
  // hundreds of kB: grown, or made at the most it could take, it would touch fresh pages twice).
  auto delta = [&](size_t i) -> long long {
    const long long x = runs[i];
    return i > 2 ? x - (long long)runs[i - 2] : x;
  };
  auto groups = [](long long x) {
    const unsigned long long m = (unsigned long long)(x < 0 ? ~x : x);
    return ((m ? 64 - __builtin_clzll(m) + 1 : 1) + 4) / 5;
  };
  size_t n = 0;
  for (size_t i = 0; i < runs.size(); ++i) n += (size_t)groups(delta(i));
  // Each count's characters made at once in one 64-bit word (no branch per group) and stored 8 bytes
  // at a time: the string has 8 bytes more while it is written, cut off at the end.
  std::string s(n + 8, '\0');
  char* out = s.data();
  for (size_t i = 0; i < runs.size(); ++i) {
    const long long x = delta(i);
    const int g = groups(x);
    uint64_t v = 0;
    for (int k = 0; k < 7; ++k) v |= (uint64_t)((x >> (5 * k)) & 0x1f) << (8 * k);
    v |= 0x2020202020202020ull & ((uint64_t{1} << (8 * (g - 1))) - 1);  // 0x20 = more, all but the last
    v += 0x3030303030303030ull & ((uint64_t{1} << (8 * g)) - 1);        // then + 48 (no carry: <= 0x3f + 48)
    std::memcpy(out, &v, 8);
    out += g;
  }
  s.resize(n);
  return s;
}

nlohmann::json instance_rle(const Instance& in, int width, int height) {
  return {{"size", {height, width}}, {"counts", rle_counts_string(instance_runs(in, width, height, RunsBy::Choose))}};
}

std::vector<uint8_t> instance_mask(const Instance& in, int width, int height) {
  std::vector<uint8_t> m((size_t)width * height, 0);
  const BBox& b = in.bbox;
  if (in.mask_bits.empty()) return m;
  const int stride = (b.x1 - b.x0 + 7) / 8;
  for (int y = b.y0; y < b.y1; ++y)
    for (int x = b.x0; x < b.x1; ++x)
      if ((in.mask_bits[(size_t)(y - b.y0) * stride + (x - b.x0) / 8] >> ((x - b.x0) % 8)) & 1)
        m[(size_t)y * width + x] = 255;
  return m;
}

MaskFormat parse_mask_format(const std::string& s) {
  if (s.empty() || s == "png") return MaskFormat::Png;
  if (s == "rle") return MaskFormat::Rle;
  if (s == "none") return MaskFormat::None;
  throw std::invalid_argument("mask_format must be png, rle or none, got '" + s + "'");
}

LabelSet parse_label_set(const std::string& s) {
  if (s.empty() || s == "cihp") return LabelSet::Cihp;
  if (s == "lip") return LabelSet::Lip;
  if (s == "atr") return LabelSet::Atr;
  throw std::invalid_argument("label set must be cihp, lip or atr, got '" + s + "'");
}

const char* label_set_name(LabelSet s) {
  return s == LabelSet::Lip ? "lip" : s == LabelSet::Atr ? "atr" : "cihp";
}

namespace {
// docs/LABELS.md has these tables with the reasons.
const char* const kLip[20] = {"Background", "Hat", "Hair", "Glove", "Sunglasses", "Upper-clothes", "Dress",
                              "Coat", "Socks", "Pants", "Jumpsuits", "Scarf", "Skirt", "Face", "Left-arm",
                              "Right-arm", "Left-leg", "Right-leg", "Left-shoe", "Right-shoe"};
const char* const kAtr[18] = {"Background", "Hat", "Hair", "Sunglasses", "Upper-clothes", "Skirt", "Pants",
                              "Dress", "Belt", "Left-shoe", "Right-shoe", "Face", "Left-leg", "Right-leg",
                              "Left-arm", "Right-arm", "Bag", "Scarf"};
// CIHP id -> LIP id: the same ids, Torso-skin (10) has no LIP class (LIP's 10 is Jumpsuits).
const int kCihpToLip[20] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 11, 12, 13, 14, 15, 16, 17, 18, 19};
// CIHP id -> ATR id: Coat merges into Upper-clothes; Glove, Socks and Torso-skin have none.
const int kCihpToAtr[20] = {0, 1, 2, 0, 3, 4, 7, 4, 0, 6, 0, 17, 5, 11, 14, 15, 12, 13, 9, 10};
// LIP id -> ATR id: as CIHP's, but LIP's 10 is Jumpsuits, a one-piece garment: ATR's Dress.
const int kLipToAtr[20] = {0, 1, 2, 0, 3, 4, 7, 4, 0, 6, 7, 17, 5, 11, 14, 15, 12, 13, 9, 10};

bool is_lip_model(const std::vector<std::string>& c) { return c.size() == 20 && c[10] == "Jumpsuits"; }
}  // namespace

const std::vector<std::string>& cihp_classes() {
  static const std::vector<std::string> c = {"Background", "Hat", "Hair", "Glove", "Sunglasses", "UpperClothes",
                                             "Dress", "Coat", "Socks", "Pants", "Torso-skin", "Scarf", "Skirt",
                                             "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg", "Left-shoe",
                                             "Right-shoe", "Human"};
  return c;
}

std::vector<std::string> label_set_classes(LabelSet s, const std::vector<std::string>& model_classes) {
  if (s == LabelSet::Lip) return {std::begin(kLip), std::end(kLip)};
  if (s == LabelSet::Atr) return {std::begin(kAtr), std::end(kAtr)};
  return model_classes;
}

int map_label(LabelSet s, int id) {
  if (s == LabelSet::Cihp) return id;
  if (id < 0 || id >= 20) return 0;
  return s == LabelSet::Lip ? kCihpToLip[id] : kCihpToAtr[id];
}

int map_label(LabelSet s, int id, const std::vector<std::string>& model_classes) {
  if (!is_lip_model(model_classes)) return map_label(s, id);
  if (s != LabelSet::Atr) return id;
  return id < 0 || id >= 20 ? 0 : kLipToAtr[id];
}

std::vector<uint8_t> map_labels(const std::vector<uint8_t>& labels, LabelSet s,
                                const std::vector<std::string>& model_classes) {
  if (s == LabelSet::Cihp || (s == LabelSet::Lip && is_lip_model(model_classes))) return labels;
  uint8_t t[256];
  for (int i = 0; i < 256; ++i) t[i] = (uint8_t)map_label(s, i, model_classes);
  std::vector<uint8_t> out(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) out[i] = t[labels[i]];
  return out;
}

std::vector<uint8_t> map_labels(const std::vector<uint8_t>& labels, LabelSet s) {
  return map_labels(labels, s, cihp_classes());
}

Parsing in_label_set(const Parsing& p, LabelSet s) {
  Parsing q = p;
  if (s == LabelSet::Cihp) return q;
  q.labels = map_labels(p.labels, s, p.class_names);
  q.class_names = label_set_classes(s, p.class_names);
  q.label_fractions.assign(q.class_names.size(), 0.0);
  for (uint8_t l : q.labels)
    if (l < q.label_fractions.size()) q.label_fractions[l] += 1;
  for (double& f : q.label_fractions) f /= (double)std::max<size_t>(1, q.labels.size());
  return q;
}

namespace {
nlohmann::json mask_value(const std::vector<uint8_t>& m, int w, int h) {
  return base64_encode(encode_png(m.data(), w, h, 1));
}
nlohmann::json rle_of_bytes(const std::vector<uint8_t>& m, int w, int h) {
  std::vector<uint32_t> runs;
  uint32_t run = 0;
  bool cur = false;
  for (int x = 0; x < w; ++x)
    for (int y = 0; y < h; ++y) {
      const bool v = m[(size_t)y * w + x] != 0;
      if (v != cur) runs.push_back(run), run = 0, cur = v;
      ++run;
    }
  runs.push_back(run);
  return {{"size", {h, w}}, {"counts", rle_counts_string(runs)}};
}
}  // namespace

nlohmann::json modelscope_answer(const Parsing& p, MaskFormat fmt, LabelSet set) {
  nlohmann::json masks = nlohmann::json::array(), labels = nlohmann::json::array(),
                 scores = nlohmann::json::array();
  const std::vector<std::string> names = label_set_classes(set, p.class_names);
  if (p.single_human) {
    const std::vector<uint8_t> lab = map_labels(p.labels, set, p.class_names);
    int64_t count[256] = {0};
    for (uint8_t l : lab) ++count[l];
    for (int c = 0; c < 256; ++c) {
      if (!count[c]) continue;
      labels.push_back(c < (int)names.size() ? names[c] : std::to_string(c));
      // With a label set other than CIHP, classes merge: their score is not upstream's; keep the
      // CIHP score when the class maps from exactly one CIHP class with that id, else null.
      if (set == LabelSet::Cihp && (size_t)c < p.semantic_scores.size()) scores.push_back(p.semantic_scores[c]);
      else scores.push_back(nullptr);
      if (fmt == MaskFormat::None) continue;
      std::vector<uint8_t> m(lab.size());
      for (size_t i = 0; i < lab.size(); ++i) m[i] = lab[i] == c ? 255 : 0;
      masks.push_back(fmt == MaskFormat::Png ? mask_value(m, p.width, p.height) : rle_of_bytes(m, p.width, p.height));
    }
  } else {
    for (const Instance& in : p.instances) {
      if (!(in.score > 0.f)) continue;
      std::string label = in.label;
      if (in.kind == Instance::Kind::Part && set != LabelSet::Cihp) {
        const int id = map_label(set, in.category_id, p.class_names);
        if (id == 0) continue;
        label = names[(size_t)id];
      }
      labels.push_back(label);
      scores.push_back(in.score);
      if (fmt == MaskFormat::Png) masks.push_back(mask_value(instance_mask(in, p.width, p.height), p.width, p.height));
      else if (fmt == MaskFormat::Rle) masks.push_back(instance_rle(in, p.width, p.height));
    }
  }
  nlohmann::json j;
  if (fmt != MaskFormat::None) j["masks"] = std::move(masks);
  j["labels"] = std::move(labels);
  j["scores"] = std::move(scores);
  return j;
}

std::vector<uint8_t> persons_png(const Parsing& p) {
  const size_t n = (size_t)p.width * p.height;
  if (p.persons.size() <= 255) {
    if (p.person_map.size() == n) return encode_png(p.person_map.data(), p.width, p.height, 1);
    std::vector<uint8_t> m = p.person_map;
    m.resize(n, 0);
    return encode_png(m.data(), p.width, p.height, 1);
  }
  // More than 255 persons: the engine's map holds the first 255; the others take the pixels of
  // their masks that nobody claimed, in order.
  std::vector<uint16_t> m(n, 0);
  for (size_t i = 0; i < n && i < p.person_map.size(); ++i) m[i] = p.person_map[i];
  for (size_t k = 255; k < p.persons.size(); ++k) {
    const Instance& in = p.instances[(size_t)p.persons[k].instance];
    for (int y = in.bbox.y0; y < in.bbox.y1; ++y)
      for (int x = in.bbox.x0; x < in.bbox.x1; ++x)
        if (!m[(size_t)y * p.width + x] && in.mask_at(x, y)) m[(size_t)y * p.width + x] = (uint16_t)(k + 1);
  }
  return encode_png_gray16(m.data(), p.width, p.height);
}

std::vector<uint8_t> labels_png(const Parsing& p, LabelSet set) {
  const std::vector<Rgb> pal = parsing_palette(256);
  std::vector<std::array<uint8_t, 3>> palette(pal.begin(), pal.end());
  if (set == LabelSet::Cihp)  // the model's own ids: no copy of the label map
    return encode_png_palette(p.labels.data(), p.width, p.height, palette);
  const std::vector<uint8_t> lab = map_labels(p.labels, set, p.class_names);
  return encode_png_palette(lab.data(), p.width, p.height, palette);
}

std::vector<std::string> union_mask_names() {
  return {"upper_body", "lower_body", "dresses", "agnostic", "clothes", "hair", "face", "skin"};
}

namespace {
int class_id(const std::vector<std::string>& classes, const std::string& name) {
  for (size_t c = 0; c < classes.size(); ++c)
    if (classes[c] == name) return (int)c;
  throw std::invalid_argument("unknown class name '" + name + "' in a union mask");
}
}  // namespace

std::vector<int> union_mask_classes(const std::string& name, const std::vector<std::string>& classes) {
  std::vector<std::string> ns;
  if (name == "upper_body") ns = {"UpperClothes", "Coat"};
  else if (name == "lower_body") ns = {"Pants", "Skirt"};
  else if (name == "dresses") ns = {"Dress", "UpperClothes", "Coat", "Pants", "Skirt"};
  else if (name == "agnostic") ns = {"UpperClothes", "Coat", "Dress", "Torso-skin", "Left-arm", "Right-arm", "Scarf", "Glove"};
  else if (name == "clothes") ns = {"Hat", "Glove", "Sunglasses", "UpperClothes", "Dress", "Coat", "Socks", "Pants", "Scarf", "Skirt", "Left-shoe", "Right-shoe"};
  else if (name == "hair") ns = {"Hair"};
  else if (name == "face") ns = {"Face"};
  else if (name == "skin") ns = {"Torso-skin", "Face", "Left-arm", "Right-arm", "Left-leg", "Right-leg"};
  else if (name.rfind("label:", 0) == 0) {
    std::string rest = name.substr(6);
    size_t a = 0;
    while (a <= rest.size()) {
      const size_t b = std::min(rest.find('+', a), rest.size());
      if (b == a) throw std::invalid_argument("empty class name in '" + name + "'");
      ns.push_back(rest.substr(a, b - a));
      a = b + 1;
    }
  } else {
    throw std::invalid_argument("unknown mask '" + name +
                                "' (upper_body, lower_body, dresses, agnostic, clothes, hair, face, skin, label:Name+Name)");
  }
  std::vector<int> ids;
  for (const std::string& n : ns) ids.push_back(class_id(classes, n));
  return ids;
}

std::vector<std::string> parse_union_names(const std::string& csv, const std::vector<std::string>& classes) {
  std::vector<std::string> names;
  size_t a = 0;
  while (a < csv.size()) {
    const size_t b = std::min(csv.find(',', a), csv.size());
    if (b > a) {
      const std::string n = csv.substr(a, b - a);
      union_mask_classes(n, classes);  // throws for an unknown name
      names.push_back(n);
    }
    a = b + 1;
  }
  return names;
}

std::vector<uint8_t> union_mask(const Parsing& p, const std::string& name, int dilate) {
  if (dilate < 0) throw std::invalid_argument("mask dilation must be >= 0");
  bool in[256] = {false};
  for (int c : union_mask_classes(name, p.class_names)) in[c] = true;
  const int w = p.width, h = p.height;
  std::vector<uint8_t> m((size_t)w * h);
  for (size_t i = 0; i < m.size(); ++i) m[i] = in[p.labels[i]] ? 255 : 0;
  if (dilate == 0) return m;
  // square dilation, separable: rows then columns
  std::vector<uint8_t> t(m.size(), 0);
  for (int y = 0; y < h; ++y) {
    int last = -1000000000;  // last set x seen
    for (int x = 0; x < w + dilate; ++x) {
      if (x < w && m[(size_t)y * w + x]) last = x;
      const int ox = x - dilate;
      if (ox >= 0 && ox < w) {
        // any set pixel in [ox - dilate, ox + dilate]: the last set up to x = ox + dilate
        if (last >= ox - dilate) t[(size_t)y * w + ox] = 255;
      }
    }
  }
  std::vector<uint8_t> o(m.size(), 0);
  for (int x = 0; x < w; ++x) {
    int last = -1000000000;
    for (int y = 0; y < h + dilate; ++y) {
      if (y < h && t[(size_t)y * w + x]) last = y;
      const int oy = y - dilate;
      if (oy >= 0 && oy < h && last >= oy - dilate) o[(size_t)oy * w + x] = 255;
    }
  }
  return o;
}

}  // namespace m2fp::service
