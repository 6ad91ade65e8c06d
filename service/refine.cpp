// service/refine.cpp: the dark-garment and small-item refinements (service/refine.h).
#include "service/refine.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <deque>
#include <stdexcept>

#include "service/session.h"

namespace m2fp::service {
namespace {

std::string normalise(const std::string& s) {
  std::string o;
  for (char ch : s)
    if (std::isalnum((unsigned char)ch)) o += (char)std::tolower((unsigned char)ch);
  return o;
}

int class_index(const Parsing& p, const std::string& name) {
  const std::string key = normalise(name);
  for (size_t c = 0; c < p.class_names.size(); ++c)
    if (normalise(p.class_names[c]) == key) return (int)c;
  return -1;
}

std::string class_name(const Parsing& p, int c) {
  return c >= 0 && c < (int)p.class_names.size() ? p.class_names[c] : std::to_string(c);
}

// Who each pixel belongs to: the person map (1-based, 0 none) of a multi-person parsing; for a
// single-person parsing, 1 inside the box of the non-background labels, 0 outside.
std::vector<uint8_t> owners(const Parsing& p) {
  const size_t n = (size_t)p.width * p.height;
  if (!p.single_human && p.person_map.size() == n) return p.person_map;
  std::vector<uint8_t> own(n, 0);
  int x0 = p.width, y0 = p.height, x1 = -1, y1 = -1;
  for (int y = 0; y < p.height; ++y)
    for (int x = 0; x < p.width; ++x)
      if (p.labels[(size_t)y * p.width + x] != 0)
        x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) own[(size_t)y * p.width + x] = 1;
  return own;
}

int person_index(const Parsing& p, int owner) { return p.single_human ? -1 : owner - 1; }

void count(RefineChange& ch, const Parsing& p, int c, int owner) {
  ++ch.pixels;
  ++ch.per_class[class_name(p, c)];
  ++ch.per_person[person_index(p, owner)];
}

RefineChange refine_dark(Parsing& p, const Image& photo, const std::vector<uint8_t>& own, const RefineTable::Dark& t) {
  RefineChange ch;
  ch.name = "dark";
  const int W = p.width, H = p.height;
  std::vector<bool> garment(p.class_names.size(), false);
  for (const std::string& g : t.garments) {
    const int c = class_index(p, g);
    if (c > 0 && c < p.score_classes) garment[c] = true;
  }
  const int vmax = (int)std::ceil(t.value_max * 255.0);  // dark: max(R, G, B) < vmax
  const int margin = (int)std::lround(t.margin * 255.0), min_s = (int)std::lround(t.min_score * 255.0);
  std::deque<int64_t> q;
  for (int64_t i = 0; i < (int64_t)W * H; ++i)
    if (own[i] != 0 && p.labels[i] < garment.size() && garment[p.labels[i]]) q.push_back(i);
  while (!q.empty()) {
    const int64_t i = q.front();
    q.pop_front();
    const int c = p.labels[i], x = (int)(i % W), y = (int)(i / W);
    const int64_t nb[4] = {x > 0 ? i - 1 : -1, x + 1 < W ? i + 1 : -1, y > 0 ? i - W : -1, y + 1 < H ? i + W : -1};
    for (int64_t j : nb) {
      if (j < 0 || p.labels[j] != 0 || own[j] != own[i]) continue;
      const uint8_t* px = photo.rgb.data() + j * 3;
      if (std::max({px[0], px[1], px[2]}) >= vmax) continue;
      const int sc = p.score_at(c, j), sw = p.score_at(0, j);
      if (sc < min_s || sc < sw - margin) continue;
      p.labels[j] = (uint8_t)c;
      count(ch, p, c, own[j]);
      q.push_back(j);
    }
  }
  return ch;
}

struct Box {
  int x0 = INT32_MAX, y0 = INT32_MAX, x1 = -1, y1 = -1;  // half-open once grown
  bool empty() const { return x1 < 0; }
  void add(int x, int y) { x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x + 1), y1 = std::max(y1, y + 1); }
  void add(const Box& b) {
    if (!b.empty()) add(b.x0, b.y0), add(b.x1 - 1, b.y1 - 1);
  }
};

RefineChange refine_small(Parsing& p, const std::vector<uint8_t>& own, const std::vector<RefineTable::Window>& wins) {
  RefineChange ch;
  ch.name = "small";
  const int W = p.width, H = p.height;
  const int face = class_index(p, "Face"), hair = class_index(p, "Hair");
  const int arms[2] = {class_index(p, "Left-arm"), class_index(p, "Right-arm")};
  const int shoes[2] = {class_index(p, "Left-shoe"), class_index(p, "Right-shoe")};
  int n_owners = 0;
  for (uint8_t o : own) n_owners = std::max<int>(n_owners, o);
  std::vector<int64_t> stack;
  std::vector<int64_t> blob;
  std::vector<uint8_t> seen;
  // every person's boxes per class, in one pass before anything is relabelled (the anchors' classes
  // are never relabelled into anyway)
  std::vector<std::vector<Box>> boxes(n_owners + 1, std::vector<Box>(p.class_names.size()));
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const int64_t i = (int64_t)y * W + x;
      if (own[i] != 0 && p.labels[i] < p.class_names.size()) boxes[own[i]][p.labels[i]].add(x, y);
    }
  for (int k = 1; k <= n_owners; ++k) {
    const std::vector<Box>& box = boxes[k];
    if (face < 0 || box[face].empty()) continue;  // no face: nothing to size the windows from
    const Box fb = box[face];
    const double fw = fb.x1 - fb.x0, fh = fb.y1 - fb.y0;
    const double cx = (fb.x0 + fb.x1) / 2.0, cy = (fb.y0 + fb.y1) / 2.0;
    for (const RefineTable::Window& w : wins) {
      const int c = class_index(p, w.label);
      if (c <= 0 || c >= p.score_classes) continue;
      std::vector<Box> anchors;
      if (w.anchor == "head") {
        Box b = fb;
        if (hair >= 0) b.add(box[hair]);
        anchors.push_back(b);
      } else if (w.anchor == "face") {
        anchors.push_back(fb);
      } else if (w.anchor == "arm_end") {
        for (int a : arms) {
          if (a < 0 || box[a].empty()) continue;
          double best = -1;
          Box end;
          for (int y = box[a].y0; y < box[a].y1; ++y)
            for (int x = box[a].x0; x < box[a].x1; ++x) {
              const int64_t i = (int64_t)y * W + x;
              if (own[i] != k || p.labels[i] != a) continue;
              const double d = (x - cx) * (x - cx) + (y - cy) * (y - cy);
              if (d > best) best = d, end = Box{}, end.add(x, y);
            }
          anchors.push_back(end);
        }
      } else if (w.anchor == "shoe_top") {
        for (int s : shoes)
          if (s >= 0 && !box[s].empty()) {
            Box b = box[s];
            b.y1 = b.y0 + 1;
            anchors.push_back(b);
          }
      }
      const int min_s = (int)std::lround(w.min_score * 255.0);
      const double amin = w.min_area_face * fw * fh, amax = w.max_area_face * fw * fh;
      for (const Box& a : anchors) {
        const int x0 = std::max(0, (int)std::floor(a.x0 - w.left * fw));
        const int x1 = std::min(W, (int)std::ceil(a.x1 + w.right * fw));
        const int y0 = std::max(0, (int)std::floor(a.y0 - w.top * fh));
        const int y1 = std::min(H, (int)std::ceil(a.y1 + w.bottom * fh));
        if (x0 >= x1 || y0 >= y1) continue;
        const int ww = x1 - x0;
        seen.assign((size_t)ww * (y1 - y0), 0);
        auto cand = [&](int x, int y) {
          const int64_t i = (int64_t)y * W + x;
          return p.labels[i] == 0 && (own[i] == 0 || own[i] == k) && p.score_at(c, i) >= min_s;
        };
        for (int y = y0; y < y1; ++y)
          for (int x = x0; x < x1; ++x) {
            if (seen[(size_t)(y - y0) * ww + (x - x0)] || !cand(x, y)) continue;
            // one 4-connected blob of candidates inside the window
            blob.clear();
            stack.assign(1, (int64_t)y * W + x);
            seen[(size_t)(y - y0) * ww + (x - x0)] = 1;
            while (!stack.empty()) {
              const int64_t i = stack.back();
              stack.pop_back();
              blob.push_back(i);
              const int bx = (int)(i % W), by = (int)(i / W);
              const int nx[4] = {bx - 1, bx + 1, bx, bx}, ny[4] = {by, by, by - 1, by + 1};
              for (int d = 0; d < 4; ++d) {
                if (nx[d] < x0 || nx[d] >= x1 || ny[d] < y0 || ny[d] >= y1) continue;
                uint8_t& s = seen[(size_t)(ny[d] - y0) * ww + (nx[d] - x0)];
                if (s || !cand(nx[d], ny[d])) continue;
                s = 1;
                stack.push_back((int64_t)ny[d] * W + nx[d]);
              }
            }
            if ((double)blob.size() < amin || (double)blob.size() > amax) continue;
            for (int64_t i : blob) {
              p.labels[i] = (uint8_t)c;
              count(ch, p, c, k);
            }
          }
      }
    }
  }
  return ch;
}

}  // namespace

std::string RefineRequest::spelled() const {
  return dark && small ? "dark,small" : dark ? "dark" : small ? "small" : "";
}

RefineRequest parse_refine(const std::string& list) {
  RefineRequest r;
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item == "dark") r.dark = true;
    else if (item == "small") r.small = true;
    else if (item == "all") r.dark = r.small = true;
    else if (!(item.empty() || item == "none"))
      throw OptionError("must be a comma-separated list of dark, small (or all, none), got '" + list + "'");
    start = comma + 1;
  }
  return r;
}

std::vector<RefineChange> refine_parsing(Parsing& p, const Image& photo, const RefineRequest& req,
                                         const RefineTable& table) {
  std::vector<RefineChange> out;
  if (!req.any()) return out;
  const size_t n = (size_t)p.width * p.height;
  if (p.labels.size() != n || p.score_classes <= 0 || p.scores.size() != (size_t)p.score_classes * n)
    throw std::invalid_argument("refine_parsing: the parsing has no per-class scores (parse with keep_scores)");
  if (photo.width != p.width || photo.height != p.height || photo.rgb.size() != n * 3)
    throw std::invalid_argument("refine_parsing: the photo's size does not match the parsing's");
  const std::vector<uint8_t> own = owners(p);
  if (req.dark) out.push_back(refine_dark(p, photo, own, table.dark));
  if (req.small) out.push_back(refine_small(p, own, table.small));
  std::vector<double> f(p.class_names.size(), 0.0);
  for (uint8_t l : p.labels)
    if (l < f.size()) f[l] += 1;
  for (double& v : f) v /= std::max<size_t>(1, n);
  p.label_fractions = f;
  return out;
}

nlohmann::json refinements_json(const RefineRequest& req, const std::vector<RefineChange>& changes) {
  nlohmann::json requested = nlohmann::json::array();
  if (req.dark) requested.push_back("dark");
  if (req.small) requested.push_back("small");
  nlohmann::json ch = nlohmann::json::array();
  for (const RefineChange& c : changes) {
    nlohmann::json per_person = nlohmann::json::array();
    for (const auto& [who, px] : c.per_person) per_person.push_back({{"person", who}, {"pixels", px}});
    ch.push_back({{"name", c.name}, {"pixels", c.pixels}, {"per_class", c.per_class}, {"per_person", per_person}});
  }
  return {{"requested", requested}, {"changes", ch}};
}

}  // namespace m2fp::service
