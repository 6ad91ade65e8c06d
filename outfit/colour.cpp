// outfit/colour.cpp: sRGB <-> CIELAB, colour naming, dominant colours by k-means in CIELAB.
#include "outfit/colour.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <stdexcept>

namespace m2fp {

namespace {

constexpr double kPi = 3.14159265358979323846;
// D65 reference white (2° observer), normalised to Y = 1.
constexpr double kXn = 0.95047, kYn = 1.0, kZn = 1.08883;
// CIE constants: epsilon = (6/29)^3, kappa = (29/3)^3.
constexpr double kEps = 216.0 / 24389.0;
constexpr double kKappa = 24389.0 / 27.0;

double lab_f(double t) { return t > kEps ? std::cbrt(t) : (kKappa * t + 16.0) / 116.0; }
double lab_f_inv(double f) {
  const double f3 = f * f * f;
  return f3 > kEps ? f3 : (116.0 * f - 16.0) / kKappa;
}

// sRGB byte -> linear, tabulated once (256 entries).
const std::array<double, 256>& linear_table() {
  static const std::array<double, 256> table = [] {
    std::array<double, 256> t{};
    for (int i = 0; i < 256; ++i) t[i] = srgb_to_linear(i / 255.0);
    return t;
  }();
  return table;
}

Lab linear_to_lab(double R, double G, double B) {
  // linear sRGB -> XYZ (IEC 61966-2-1 / Bradford-free D65 matrix)
  const double X = 0.4124564 * R + 0.3575761 * G + 0.1804375 * B;
  const double Y = 0.2126729 * R + 0.7151522 * G + 0.0721750 * B;
  const double Z = 0.0193339 * R + 0.1191920 * G + 0.9503041 * B;
  const double fx = lab_f(X / kXn), fy = lab_f(Y / kYn), fz = lab_f(Z / kZn);
  return {116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)};
}

uint8_t to_byte(double c01) {
  const double v = std::round(std::clamp(c01, 0.0, 1.0) * 255.0);
  return static_cast<uint8_t>(v);
}

// SplitMix64: a tiny generator whose sequence is fixed by its seed on every platform (unlike the
// standard distributions, whose algorithms are implementation-defined).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

inline double dist2(const LabF& p, const Lab& c) {
  const double dL = p.L - c.L, da = p.a - c.a, db = p.b - c.b;
  return dL * dL + da * da + db * db;
}

// The nearest of k centres (ties to the lower centre).
inline int nearest(const LabF& p, const Lab* centres, int k) {
  int best = 0;
  double best_d = std::numeric_limits<double>::max();
  for (int c = 0; c < k; ++c) {
    const double d = dist2(p, centres[c]);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}
int nearest(const LabF& p, const std::vector<Lab>& centres) {
  return nearest(p, centres.data(), static_cast<int>(centres.size()));
}

// The points of a block as their nearest centres (nearest()'s choice, ties to the lower centre) and
// their sums per cluster, for K centres: what `c = nearest(p[i]); sum[c] += p[i]; ++count[c]` gives
// in point order, bit for bit. Each cluster's sums stay in registers and take every point of the block
// in order, as the point itself or + 0.0 where it is another cluster's (which changes no sum: a sum that
// starts at +0.0 is never -0.0), instead of a load and store of sum[c] per point.
constexpr size_t kBlock = 256;
template <int K>
void nearest_block(const LabF* p, size_t n, const Lab* centres, uint8_t* cl) {
  for (size_t i = 0; i < n; ++i) cl[i] = static_cast<uint8_t>(nearest(p[i], centres, K));  // K known: unrolled
}
template <int K>
void sum_block(const LabF* p, const uint8_t* cl, size_t n, Lab* sum, int64_t* count) {
  double L[K], A[K], B[K];
  int64_t N[K];
  for (int c = 0; c < K; ++c) L[c] = sum[c].L, A[c] = sum[c].a, B[c] = sum[c].b, N[c] = count[c];
  for (size_t i = 0; i < n; ++i) {
    const double pl = p[i].L, pa = p[i].a, pb = p[i].b;
    const int ci = cl[i];
    for (int c = 0; c < K; ++c) {
      const bool mine = ci == c;
      L[c] += mine ? pl : 0.0;
      A[c] += mine ? pa : 0.0;
      B[c] += mine ? pb : 0.0;
      N[c] += mine;
    }
  }
  for (int c = 0; c < K; ++c) sum[c] = {L[c], A[c], B[c]}, count[c] = N[c];
}
template <int K>
void assign_block(const LabF* p, size_t n, const Lab* centres, uint8_t* cl, Lab* sum, int64_t* count) {
  nearest_block<K>(p, n, centres, cl);
  sum_block<K>(p, cl, n, sum, count);
}
// assign_block for centres.size() (1..8) centres.
void assign_block(const LabF* p, size_t n, const std::vector<Lab>& centres, uint8_t* cl, Lab* sum, int64_t* count) {
  using Fn = void (*)(const LabF*, size_t, const Lab*, uint8_t*, Lab*, int64_t*);
  static constexpr Fn kFor[8] = {assign_block<1>, assign_block<2>, assign_block<3>, assign_block<4>,
                                 assign_block<5>, assign_block<6>, assign_block<7>, assign_block<8>};
  kFor[centres.size() - 1](p, n, centres.data(), cl, sum, count);
}

}  // namespace

// ---- conversions ------------------------------------------------------------------------------

double srgb_to_linear(double c) {
  return c <= 0.04045 ? c / 12.92 : std::pow((c + 0.055) / 1.055, 2.4);
}

double linear_to_srgb(double c) {
  return c <= 0.0031308 ? 12.92 * c : 1.055 * std::pow(c, 1.0 / 2.4) - 0.055;
}

Lab rgb_to_lab(RGB8 c) {
  const auto& t = linear_table();
  return linear_to_lab(t[c.r], t[c.g], t[c.b]);
}

Lab rgb_to_lab(double r01, double g01, double b01) {
  return linear_to_lab(srgb_to_linear(r01), srgb_to_linear(g01), srgb_to_linear(b01));
}

RGB8 lab_to_rgb(const Lab& lab) {
  const double fy = (lab.L + 16.0) / 116.0;
  const double fx = fy + lab.a / 500.0;
  const double fz = fy - lab.b / 200.0;
  const double X = kXn * lab_f_inv(fx), Y = kYn * lab_f_inv(fy), Z = kZn * lab_f_inv(fz);
  // XYZ -> linear sRGB (inverse of the matrix above)
  const double R = 3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z;
  const double G = -0.9692660 * X + 1.8760108 * Y + 0.0415560 * Z;
  const double B = 0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z;
  auto enc = [](double v) { return to_byte(linear_to_srgb(std::clamp(v, 0.0, 1.0))); };
  return {enc(R), enc(G), enc(B)};
}

LCh lab_to_lch(const Lab& lab) {
  LCh out;
  out.L = lab.L;
  out.C = std::hypot(lab.a, lab.b);
  // Greys have no hue: rounding noise in a*, b* would otherwise give an arbitrary angle.
  double h = out.C < 1e-4 ? 0.0 : std::atan2(lab.b, lab.a) * 180.0 / kPi;
  if (h < 0) h += 360.0;
  if (h >= 360.0) h -= 360.0;
  out.h = h;
  return out;
}

std::string rgb_to_hex(RGB8 c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02X%02X%02X", c.r, c.g, c.b);
  return buf;
}

RGB8 hex_to_rgb(const std::string& hex) {
  std::string s = hex;
  if (!s.empty() && s[0] == '#') s.erase(0, 1);
  auto bad = [&]() {
    return std::invalid_argument("colour '" + hex + "' is not a hex colour of the form #RRGGBB");
  };
  if (s.size() != 6) throw bad();
  uint8_t v[3];
  for (int i = 0; i < 3; ++i) {
    int byte = 0;
    for (int j = 0; j < 2; ++j) {
      const char ch = s[2 * i + j];
      int d;
      if (ch >= '0' && ch <= '9') d = ch - '0';
      else if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
      else if (ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
      else throw bad();
      byte = byte * 16 + d;
    }
    v[i] = static_cast<uint8_t>(byte);
  }
  return {v[0], v[1], v[2]};
}

double delta_e76(const Lab& x, const Lab& y) {
  return std::sqrt((x.L - y.L) * (x.L - y.L) + (x.a - y.a) * (x.a - y.a) + (x.b - y.b) * (x.b - y.b));
}

double delta_e94_textiles(const Lab& x, const Lab& y) {
  constexpr double kL = 2.0, K1 = 0.048, K2 = 0.014;
  const double c1 = std::hypot(x.a, x.b), c2 = std::hypot(y.a, y.b);
  const double dL = x.L - y.L, dC = c1 - c2;
  const double da = x.a - y.a, db = x.b - y.b;
  const double dH2 = std::max(0.0, da * da + db * db - dC * dC);  // ΔH² = Δa² + Δb² - ΔC²
  const double c = std::sqrt(c1 * c2);
  const double sC = 1.0 + K1 * c, sH = 1.0 + K2 * c;
  return std::sqrt((dL / kL) * (dL / kL) + (dC / sC) * (dC / sC) + dH2 / (sH * sH));
}

double hue_distance(double h1, double h2) {
  double d = std::fmod(std::fabs(h1 - h2), 360.0);
  return d > 180.0 ? 360.0 - d : d;
}

// ---- naming -----------------------------------------------------------------------------------

const std::vector<std::string>& colour_vocabulary() {
  static const std::vector<std::string> names = {
      "black", "charcoal", "grey",  "silver",   "white", "cream",  "beige",  "brown",      "olive", "burgundy",
      "red",   "pink",     "orange", "yellow", "green", "teal",   "light blue", "blue", "navy",  "purple"};
  return names;
}

bool is_achromatic_name(const std::string& n) {
  return n == "black" || n == "charcoal" || n == "grey" || n == "silver" || n == "white" || n == "cream" ||
         n == "beige" || n == "brown";
}

namespace {

// Chromatic hue bands in LCh (hue angle of CIELAB, degrees). A band is [h0, h1); the dark name applies
// below dark_L, the light name at or above light_L, the base name in between. Reference hues:
// sRGB red 40°, orange 73°, yellow 103°, green 136°, cyan 196°, blue 306°, magenta 328°.
struct HueBand {
  double h0, h1;
  double dark_L;
  const char* dark;
  const char* base;
  double light_L;
  const char* light;
};
constexpr HueBand kHueBands[] = {
    {0, 20, 35, "burgundy", "red", 65, "pink"},      // crimson-magenta side of red
    {20, 45, 35, "burgundy", "red", 72, "pink"},     // red (#FF0000 at 40°), salmon when light
    {45, 78, 50, "brown", "orange", 101, "orange"},  // orange (#FFA500 at 73°); dark orange is brown
    {78, 110, 60, "olive", "yellow", 101, "yellow"}, // yellow (#FFFF00 at 103°), mustard; dark is olive
    {110, 165, -1, "green", "green", 101, "green"},  // green (#00FF00 at 136°)
    {165, 220, -1, "teal", "teal", 101, "teal"},     // cyan / teal / turquoise (196°)
    {220, 310, 25, "navy", "blue", 68, "light blue"},// blue (#0000FF at 306°), sky blue (235°)
    {310, 350, -1, "purple", "purple", 75, "pink"},  // violet, purple, magenta (328°)
    {350, 360, 35, "burgundy", "red", 65, "pink"},   // pinkish red, hot pink (351°)
};

// Neutral thresholds: chroma below kNeutralC is judged by lightness only.
constexpr double kNeutralC = 10.0;
// Warm, weakly saturated colours (hue 45..115°, chroma below kWarmC) are the browns and beiges.
constexpr double kWarmC = 35.0;

}  // namespace

std::string name_colour(const Lab& lab) {
  const LCh c = lab_to_lch(lab);
  // Very dark: black whatever the (unreliable) hue, unless strongly saturated (deep navy, purple).
  if (c.L < 15.0 && c.C < 20.0) return "black";
  // Neutrals: lightness decides; a warm tint on a very light neutral is cream.
  if (c.C < kNeutralC) {
    if (c.L < 20.0) return "black";
    if (c.L < 40.0) return "charcoal";
    if (c.L < 62.0) return "grey";
    if (c.L < 85.0) return "silver";
    if (c.C >= 5.0 && c.h >= 60.0 && c.h < 115.0) return "cream";
    return "white";
  }
  // Warm low-chroma: cream / beige by lightness, olive or brown when dark.
  if (c.C < kWarmC && c.h >= 45.0 && c.h < 115.0) {
    if (c.L >= 85.0) return "cream";
    if (c.L >= 58.0) return "beige";
    if (c.h >= 95.0) return "olive";
    return "brown";
  }
  // Olive drab: a dull, dark yellow-green.
  if (c.C < 45.0 && c.L < 58.0 && c.h >= 95.0 && c.h < 130.0) return "olive";
  for (const HueBand& band : kHueBands) {
    if (c.h >= band.h0 && c.h < band.h1) {
      if (c.L < band.dark_L) return band.dark;
      if (c.L >= band.light_L) return band.light;
      return band.base;
    }
  }
  return "red";  // h == 360 after rounding cannot happen (lab_to_lch wraps), kept for completeness
}

ColourShare describe_colour(RGB8 rgb) {
  ColourShare s;
  s.lab = rgb_to_lab(rgb);
  const LCh lch = lab_to_lch(s.lab);
  s.name = name_colour(s.lab);
  s.hex = rgb_to_hex(rgb);
  s.chroma = lch.C;
  s.hue = lch.h;
  s.neutral = is_achromatic_name(s.name);
  s.share = 1.0;
  s.pixels = 1;
  return s;
}

// ---- dominant colours -------------------------------------------------------------------------

namespace {

// k-means on the n pixels whose CIELAB values lab_at(i) gives (see dominant_colours); `threaded`:
// the nearest centres of all pixels are found over the OpenMP threads.
template <class LabAt>
std::vector<ColourShare> dominant_colours_of(size_t n, const LabAt& lab_at, const DominantColourOptions& opt,
                                             bool threaded) {
  // Sub-sample on an even stride: [m] indices into lab, m <= max_samples.
  const size_t m = std::min(n, static_cast<size_t>(opt.max_samples));
  std::vector<LabF> sample(m);
  for (size_t i = 0; i < m; ++i) sample[i] = lab_at((i * n) / m);

  // k-means++ seeding: first centre uniform, then each next one with probability ∝ D².
  SplitMix64 rng{opt.seed};
  std::vector<Lab> centres;
  {
    const LabF& first = sample[rng.next() % m];
    centres.push_back({first.L, first.a, first.b});
    std::vector<double> d2(m);
    for (size_t i = 0; i < m; ++i) d2[i] = dist2(sample[i], centres[0]);
    while (static_cast<int>(centres.size()) < opt.max_colours) {
      double total = 0;
      for (double v : d2) total += v;
      if (total <= 1e-9) break;  // fewer distinct colours than k
      double r = rng.uniform() * total;
      size_t pick = m - 1;
      for (size_t i = 0; i < m; ++i) {
        r -= d2[i];
        if (r < 0) {
          pick = i;
          break;
        }
      }
      if (d2[pick] <= 0) break;
      centres.push_back({sample[pick].L, sample[pick].a, sample[pick].b});
      for (size_t i = 0; i < m; ++i) d2[i] = std::min(d2[i], dist2(sample[i], centres.back()));
    }
  }

  // Lloyd iterations on the sample (assign_block: each sample to its nearest centre, the sums in
  // sample order).
  std::vector<uint8_t> assign(m, 0xff), cl(m);
  for (int it = 0; it < opt.max_iterations; ++it) {
    std::vector<Lab> sum(centres.size());
    std::vector<int64_t> cnt(centres.size(), 0);
    for (size_t i0 = 0; i0 < m; i0 += kBlock)
      assign_block(sample.data() + i0, std::min(kBlock, m - i0), centres, cl.data() + i0, sum.data(), cnt.data());
    const bool changed = cl != assign;
    assign.swap(cl);
    for (size_t c = 0; c < centres.size(); ++c)
      if (cnt[c] > 0) centres[c] = {sum[c].L / cnt[c], sum[c].a / cnt[c], sum[c].b / cnt[c]};
    if (!changed) break;
  }

  // Refine on all pixels: assign, recompute centres, then merge near-duplicates and fold tiny clusters
  // (one change per round, re-assigning after each) until nothing changes. Every round that does
  // not break removes a centre, and one centre never changes again, so this ends.
  // With `threaded`, the nearest centres are found over the threads; the sums are taken in pixel
  // order either way (the same rounding).
  std::vector<int64_t> count;
  std::unique_ptr<uint8_t[]> nearest_of(threaded ? new uint8_t[n] : nullptr);  // max_colours <= 8
  for (;;) {
    std::vector<Lab> sum(centres.size());
    count.assign(centres.size(), 0);
    if (threaded) {
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < n; ++i) nearest_of[i] = static_cast<uint8_t>(nearest(lab_at(i), centres));
      for (size_t i = 0; i < n; ++i) {
        const LabF p = lab_at(i);
        const int c = nearest_of[i];
        sum[c].L += p.L, sum[c].a += p.a, sum[c].b += p.b;
        ++count[c];
      }
    } else {
      LabF block[kBlock];
      uint8_t cl[kBlock];
      for (size_t i0 = 0; i0 < n; i0 += kBlock) {
        const size_t nb = std::min(kBlock, n - i0);
        for (size_t i = 0; i < nb; ++i) block[i] = lab_at(i0 + i);
        assign_block(block, nb, centres, cl, sum.data(), count.data());
      }
    }
    std::vector<Lab> kept;
    std::vector<int64_t> kept_count;
    for (size_t c = 0; c < centres.size(); ++c) {
      if (count[c] == 0) continue;  // empty cluster: dropped
      kept.push_back({sum[c].L / count[c], sum[c].a / count[c], sum[c].b / count[c]});
      kept_count.push_back(count[c]);
    }
    const bool dropped_empty = kept.size() != centres.size();
    centres = kept;
    count = kept_count;
    if (dropped_empty) continue;

    // Merge the closest pair if closer than the threshold (ΔE94 textiles), or if both have one name
    // (distance 0: merged first).
    double best = std::numeric_limits<double>::max();
    size_t bi = 0, bj = 0;
    for (size_t i = 0; i < centres.size(); ++i)
      for (size_t j = i + 1; j < centres.size(); ++j) {
        const double d = name_colour(centres[i]) == name_colour(centres[j]) ? 0.0
                                                                             : delta_e94_textiles(centres[i], centres[j]);
        if (d < best) best = d, bi = i, bj = j;
      }
    if (centres.size() > 1 && best < opt.merge_delta_e) {
      const double wi = static_cast<double>(count[bi]), wj = static_cast<double>(count[bj]);
      const Lab& a = centres[bi];
      const Lab& b = centres[bj];
      centres[bi] = {(a.L * wi + b.L * wj) / (wi + wj), (a.a * wi + b.a * wj) / (wi + wj),
                     (a.b * wi + b.b * wj) / (wi + wj)};
      centres.erase(centres.begin() + bj);
      continue;
    }
    // Fold the smallest cluster if below min_share (its pixels go to their nearest other centre).
    const size_t smallest = std::min_element(count.begin(), count.end()) - count.begin();
    if (centres.size() > 1 && static_cast<double>(count[smallest]) < opt.min_share * static_cast<double>(n)) {
      centres.erase(centres.begin() + smallest);
      continue;
    }
    break;
  }

  std::vector<ColourShare> out;
  for (size_t c = 0; c < centres.size(); ++c) {
    ColourShare s;
    s.lab = centres[c];
    const LCh lch = lab_to_lch(s.lab);
    s.name = name_colour(s.lab);
    s.hex = rgb_to_hex(lab_to_rgb(s.lab));
    s.chroma = lch.C;
    s.hue = lch.h;
    s.neutral = is_achromatic_name(s.name);
    s.pixels = count[c];
    s.share = static_cast<double>(count[c]) / static_cast<double>(n);
    out.push_back(s);
  }
  std::sort(out.begin(), out.end(), [](const ColourShare& x, const ColourShare& y) {
    if (x.pixels != y.pixels) return x.pixels > y.pixels;
    return x.lab.L < y.lab.L;
  });
  return out;
}

}  // namespace

void check_dominant_colour_options(const DominantColourOptions& opt) {
  if (opt.max_colours < 1 || opt.max_colours > 8)
    throw std::invalid_argument("dominant_colours: max_colours must be in 1..8, got " +
                                std::to_string(opt.max_colours));
  if (opt.max_samples < 16)
    throw std::invalid_argument("dominant_colours: max_samples must be >= 16, got " +
                                std::to_string(opt.max_samples));
  if (!(opt.min_share >= 0.0 && opt.min_share < 1.0))
    throw std::invalid_argument("dominant_colours: min_share must be in [0, 1)");
  if (!(opt.merge_delta_e >= 0.0))
    throw std::invalid_argument("dominant_colours: merge_delta_e must be >= 0");
}

std::vector<ColourShare> dominant_colours(const std::vector<RGB8>& pixels, const DominantColourOptions& opt) {
  check_dominant_colour_options(opt);
  const size_t n = pixels.size();
  if (n == 0) return {};
  const bool threaded = n >= 65536;
  // All pixels in CIELAB, float to halve the memory: [n] (L, a, b). Split over the threads (each
  // pixel on its own, so the values do not depend on the split). A photo repeats its colours, so
  // each thread keeps the conversions it made in a small direct-mapped cache keyed by the 24-bit
  // colour: a hit gives the very value rgb_to_lab gave for that colour before.
  std::unique_ptr<LabF[]> lab(new LabF[n]);  // every entry written below
#pragma omp parallel if (threaded)
  {
    constexpr int kCacheBits = 14;
    std::unique_ptr<uint32_t[]> key(new uint32_t[1u << kCacheBits]);  // colour + 1 (0: empty)
    std::unique_ptr<LabF[]> val(new LabF[1u << kCacheBits]);
    std::fill(key.get(), key.get() + (1u << kCacheBits), 0u);
#pragma omp for schedule(static)
    for (size_t i = 0; i < n; ++i) {
      const RGB8 c = pixels[i];
      const uint32_t rgb = (uint32_t)c.r << 16 | (uint32_t)c.g << 8 | c.b;
      const uint32_t slot = (rgb * 2654435761u) >> (32 - kCacheBits);
      if (key[slot] != rgb + 1) {
        const Lab l = rgb_to_lab(c);
        val[slot] = {static_cast<float>(l.L), static_cast<float>(l.a), static_cast<float>(l.b)};
        key[slot] = rgb + 1;
      }
      lab[i] = val[slot];
    }
  }

  return dominant_colours_of(n, [&](size_t i) { return lab[i]; }, opt, threaded);
}

std::vector<ColourShare> dominant_colours(const uint32_t* index, size_t n, const LabF* table,
                                          const DominantColourOptions& opt) {
  check_dominant_colour_options(opt);
  if (n == 0) return {};
  return dominant_colours_of(n, [&](size_t i) { return table[index[i]]; }, opt, false);
}

PhotoColours::PhotoColours() : bits_((size_t)1 << 18), rank_((size_t)1 << 18) {
  std::fill(bits_.data(), bits_.data() + bits_.size(), uint64_t{0});
}

void PhotoColours::convert() {
  const size_t nw = bits_.size();
  uint32_t total = 0;
  for (size_t w = 0; w < nw; ++w) {
    rank_[w] = total;
    total += (uint32_t)__builtin_popcountll(bits_[w]);
  }
  table_ = pool::Array<LabF>(total);  // every entry written below
  const auto& t = linear_table();
#pragma omp parallel for schedule(dynamic, 1024) if (total >= 4096)
  for (size_t w = 0; w < nw; ++w) {
    uint32_t k = rank_[w];
    for (uint64_t b = bits_[w]; b; b &= b - 1) {
      const uint32_t rgb = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(b));
      const Lab l = linear_to_lab(t[rgb >> 16], t[(rgb >> 8) & 255], t[rgb & 255]);
      table_[k++] = {static_cast<float>(l.L), static_cast<float>(l.a), static_cast<float>(l.b)};
    }
  }
}

}  // namespace m2fp
