// engine/postprocess.cpp: upstream M2FP post-processing in bands of output rows.
#include "engine/postprocess.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "engine/buffer_pool.h"
#include "kernels/bilinear_taps.h"
#include "kernels/kernels.h"

namespace m2fp {
namespace {

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// At least n floats of scratch from the buffer pool (engine/buffer_pool.h), content undefined: large
// scratch then reuses pages already mapped by an earlier parse instead of having the kernel fault in
// and zero fresh ones (std::vector would also zero-fill them).
float* pooled(Tensor& t, int64_t n) {
  if (t.numel() < n) t = Tensor::empty({n});
  return t.data();
}

// Parsing::scores' quantisation of one band of one class's scores.
void quantise_scores(const float* s, int64_t n, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = (uint8_t)std::lround(std::clamp(s[i], 0.f, 1.f) * 255.f);
}

// Mask logits of one query at the original resolution, a band of rows at a time:
//   quarter [h4, w4] -> padded [Hp, Wp] -> crop box -> original [H0, W0]
// each step F.interpolate(bilinear, align_corners=False), as upstream. Only the padded-size rows
// and columns inside the crop box that the band reads are computed (kern::resize_bilinear_window:
// each value as the whole plane's resize gives it), straight into a dense crop buffer that the
// second resize reads.
class MaskUpsampler {
 public:
  MaskUpsampler(int64_t h4, int64_t w4, const PostprocessGeometry& g)
      : h4_(h4), w4_(w4), Hp_(g.Hp), Wp_(g.Wp), cy0_(g.crop_box.y0), cx0_(g.crop_box.x0),
        ch_(g.crop_box.y1 - g.crop_box.y0), cw_(g.crop_box.x1 - g.crop_box.x0), H0_(g.H0), W0_(g.W0),
        sy_(kern::torch_linear_scale(ch_, H0_)), k_(kern::active()) {}

  struct Scratch {
    Tensor crop;  // [rows, cw]: the crop rows a band reads
  };

  // out [y1 - y0, W0] = rows [y0, y1) of the upsampled mask of `plane` [h4, w4].
  void rows(const float* plane, int64_t y0, int64_t y1, float* out, Scratch& s) const {
    const int64_t r0 = kern::torch_linear_tap(ch_, H0_, sy_, y0).i0;
    const int64_t r1 = kern::torch_linear_tap(ch_, H0_, sy_, y1 - 1).i1 + 1;
    float* crop = pooled(s.crop, (r1 - r0) * cw_);
    k_.resize_bilinear_window(plane, w4_, 0, h4_, w4_, crop, cw_, Hp_, Wp_, cy0_ + r0, cy0_ + r1, cx0_, cx0_ + cw_);
    k_.resize_bilinear_window(crop, cw_, r0, ch_, cw_, out, W0_, H0_, W0_, y0, y1, 0, W0_);
  }

  int64_t H0() const { return H0_; }
  int64_t W0() const { return W0_; }

 private:
  int64_t h4_, w4_, Hp_, Wp_, cy0_, cx0_, ch_, cw_, H0_, W0_;
  float sy_;
  const kern::KernelTable& k_;
};

// The same upsampling for the streaming path (large photos): the crop rows a band of output rows
// reads, each resized to the output width (the horizontal step of the bilinear resize; its vertical
// step with equal heights is the identity, bit for bit), so that kern::mask_row_fused computes each
// output row's vertical step on the fly and consumes it without storing full-resolution masks.
class MaskRowSource {
 public:
  MaskRowSource(int64_t h4, int64_t w4, const PostprocessGeometry& g)
      : h4_(h4), w4_(w4), Hp_(g.Hp), Wp_(g.Wp), cy0_(g.crop_box.y0), cx0_(g.crop_box.x0),
        ch_(g.crop_box.y1 - g.crop_box.y0), cw_(g.crop_box.x1 - g.crop_box.x0), H0_(g.H0), W0_(g.W0),
        sy_(kern::torch_linear_scale(ch_, H0_)), k_(kern::active()) {}

  kern::LinearTap tap(int64_t y) const { return kern::torch_linear_tap(ch_, H0_, sy_, y); }
  // crop rows [*r0, *r1) that output rows [y0, y1) read
  void rows_for(int64_t y0, int64_t y1, int64_t* r0, int64_t* r1) const {
    *r0 = tap(y0).i0;
    *r1 = tap(y1 - 1).i1 + 1;
  }
  // h [r1 - r0, W0]: crop rows [r0, r1) of `plane` [h4, w4], each resized to W0 columns
  // (kern::resize_bilinear_window: only the crop box's part of the padded rows, into `crop`)
  void hrows(const float* plane, int64_t r0, int64_t r1, float* h, Tensor& scratch) const {
    const int64_t n = r1 - r0;
    float* crop = pooled(scratch, n * cw_);  // [n, cw]
    k_.resize_bilinear_window(plane, w4_, 0, h4_, w4_, crop, cw_, Hp_, Wp_, cy0_ + r0, cy0_ + r1, cx0_, cx0_ + cw_);
    k_.resize_bilinear_window(crop, cw_, 0, n, cw_, h, W0_, n, W0_, 0, n, 0, W0_);
  }
  int64_t H0() const { return H0_; }
  int64_t W0() const { return W0_; }
  int64_t max_rows(int64_t band) const { return (int64_t)std::ceil((double)band * ch_ / H0_) + 3; }  // pass A's bound

 private:
  int64_t h4_, w4_, Hp_, Wp_, cy0_, cx0_, ch_, cw_, H0_, W0_;
  float sy_;
  const kern::KernelTable& k_;
};

struct MaskStats {
  int64_t pos = 0;       // pixels with mask > 0
  double sig_sum = 0;    // sum of sigmoid(mask) over those pixels
  BBox bbox{INT32_MAX, INT32_MAX, -1, -1};
};

void grow(BBox& b, int x, int y) {
  b.x0 = std::min(b.x0, x);
  b.y0 = std::min(b.y0, y);
  b.x1 = std::max(b.x1, x + 1);
  b.y1 = std::max(b.y1, y + 1);
}

BBox finished(const BBox& b) { return b.x1 < 0 ? BBox{} : b; }

// Pixels per label value: counts[l] += #(lab[i] == l), counts [256].
void count_labels(const uint8_t* lab, int64_t n, int64_t* counts) {
  int64_t c[4][256] = {};  // four tables: consecutive equal labels do not wait on one counter
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++c[0][lab[i]];
    ++c[1][lab[i + 1]];
    ++c[2][lab[i + 2]];
    ++c[3][lab[i + 3]];
  }
  for (; i < n; ++i) ++c[0][lab[i]];
  for (int l = 0; l < 256; ++l) counts[l] += c[0][l] + c[1][l] + c[2][l] + c[3][l];
}

// The share of the n_px pixels per label below n_classes, from counts [256] (whole numbers in
// double: the same as adding 1 per pixel).
std::vector<double> label_fractions(const int64_t* counts, int64_t n_px, int n_classes) {
  std::vector<double> f(n_classes, 0.0);
  for (int l = 0; l < n_classes && l < 256; ++l) f[l] = (double)counts[l];
  for (double& v : f) v /= std::max<int64_t>(1, n_px);
  return f;
}

// Bands sized so that `planes` band buffers stay within ~16 MB per thread.
int64_t band_rows_for(int64_t planes, int64_t W0, int requested) {
  const int64_t budget = 4 << 20;  // floats
  return std::max<int64_t>(1, std::min<int64_t>(requested, budget / std::max<int64_t>(1, planes * W0)));
}

// Common to both modes: the fraction of pixels per label (from `counts` [256] when the caller
// counted them on the way, else counted here), then the semantic map and the labels to the tensor
// sink when asked.
void finish_parsing(const ModelConfig& cfg, const PostprocessOptions& opt, const TensorSink* sink,
                    const Tensor& semantic, Parsing& res, const int64_t* counts = nullptr) {
  int64_t own[256] = {};
  if (!counts) {
    count_labels(res.labels.data(), (int64_t)res.labels.size(), own);
    counts = own;
  }
  res.label_fractions = label_fractions(counts, (int64_t)res.labels.size(), (int)cfg.classes.size());
  if (opt.emit_semantic && sink && *sink) {
    (*sink)("semantic", semantic);
    const int64_t H0 = res.height, W0 = res.width;
    Tensor l = Tensor::empty({H0, W0});
    for (int64_t i = 0; i < H0 * W0; ++i) l.data()[i] = res.labels[i];
    (*sink)("labels", l);
  }
}

// ---- multi-person (parsing_on) ----------------------------------------------------------------

// A (query, class) pair and its final score (class probability x mask score).
struct Pair {
  int q, c;
  float score;
};

// Class scores: softmax over the K+1 classes of each query, "no object" (the last) dropped; the
// top 100 (query, class) pairs by score, ties by pair index i = q*K + c.
struct ClassScores {
  Tensor prob;  // [Q, K+1]
  int64_t K = 0, K1 = 0;
  std::vector<int64_t> top;  // pair indices, best first
  float score(int64_t i) const { return prob.data()[(i / K) * K1 + i % K]; }
};

ClassScores class_scores(const Tensor& pred_logits) {
  const int64_t Q = pred_logits.shape[0];
  ClassScores s;
  s.K1 = pred_logits.shape[1];
  s.K = s.K1 - 1;
  s.prob = pred_logits.clone();
  kern::softmax_rows(s.prob.data(), Q, s.K1);
  s.top.resize((size_t)(Q * s.K));
  std::iota(s.top.begin(), s.top.end(), 0);
  const int64_t topk = std::min<int64_t>(100, Q * s.K);
  std::partial_sort(s.top.begin(), s.top.begin() + topk, s.top.end(), [&](int64_t a, int64_t b) {
    const float sa = s.score(a), sb = s.score(b);
    return sa != sb ? sa > sb : a < b;
  });
  s.top.resize(topk);
  return s;
}

// The thresholds of the three roles a top pair (class c, score s) can have (roles()). Pass A's
// selections apply them to class probabilities: a pair's final score is its class probability times
// a mask score of at most 1 (a float product, never above the probability), so a probability that
// fails a threshold rules that role out whatever the mask.
struct RoleRules {
  int human;  // class index of "Human" (CIHP: 20)
  int n_sem;  // semantic map channels (classes < num_parsing)
  float thr;  // parsing_ins_score_thr: pasted into the semantic map from this score on
  explicit RoleRules(const ModelConfig& cfg)
      : human(cfg.num_parsing), n_sem(cfg.num_parsing), thr(cfg.parsing_ins_score_thr) {}
  bool human_instance(int c, float s) const { return c == human && s > 0.1f; }
  bool part_instance(int c, float s) const { return c != human && c != 0 && s >= 0.1f; }
  bool pasted(int c, float s) const { return c != human && c < n_sem && s >= thr; }
  bool instance(int c, float s) const { return human_instance(c, s) || part_instance(c, s); }
};

// The queries of the top pairs that can take a role (RoleRules on the class probability), ascending,
// each once; pass A skips the others (their statistics stay empty: score 0, no role, as they would
// have been).
std::vector<int> selected_queries(const RoleRules& rules, const ClassScores& s) {
  std::vector<int> uq;
  for (int64_t i : s.top) {
    const int c = (int)(i % s.K);
    if (rules.instance(c, s.score(i)) || rules.pasted(c, s.score(i))) uq.push_back((int)(i / s.K));
  }
  std::sort(uq.begin(), uq.end());
  uq.erase(std::unique(uq.begin(), uq.end()), uq.end());
  return uq;
}

// When the full-resolution masks pass B reads fit in opt.keep_mask_bytes (by default photos up to
// ~0.3 Mpx), pass A keeps them and pass B reads them instead of upsampling every mask a second
// time; larger photos upsample again band by band (bounded memory). Same results either way.
// Pass B reads the mask values of pasted pairs and humans only, and a pair's final score is its
// class probability times a mask score of at most 1 (a float product, never above the
// probability): only the queries of a top pair whose probability reaches the paste threshold or
// exceeds the human one (roles()) can need them; the others' values are not kept.
struct KeptMasks {
  bool keep = false;
  Tensor full;             // [planes, H0, W0] when keep
  std::vector<int> plane;  // query -> its plane in `full`, -1 if its values are not kept
};

// The bit words pass A makes (with the statistics, in the same kern::mask_row_fused call) of each
// query that can become a part or human instance: a top pair (q, c) whose class probability
// passes RoleRules::instance (human: > 0.1; a part, c != 0: >= 0.1). They are the instances' masks
// (Instance::mask_bits, made from them in place, to_box_layout) and give the part/human overlaps
// (overlaps()), so pass B never recomputes a mask row only for its bits. All wanted queries' words
// live in one block, which the instances' masks then share: separate vectors took ~33k first touches
// of 4 KiB pages per 12-megapixel parse (engine/parsing.h, MaskBits). The block comes from the buffer
// pool, on pages an earlier parse left resident (a fresh mapping had the kernel zero ~136 MB per
// 12 MP parse first: ~half of pass A's own time), and goes back to it when the masks are dropped.
struct WordBlock {
  void* p = nullptr;
  size_t bytes = 0;
  explicit WordBlock(size_t n) : p(pool::allocate(n)), bytes(n) {}
  WordBlock(const WordBlock&) = delete;
  WordBlock& operator=(const WordBlock&) = delete;
  ~WordBlock() { pool::release(p, bytes); }
  uint8_t* data() const { return static_cast<uint8_t*>(p); }
};

struct QueryBits {
  int64_t nwords = 0;                      // (W0 + 63) / 64
  std::vector<char> wanted;                // [Q]
  std::vector<int64_t> at;                 // [Q]: byte offset of a wanted query's words in `block`
  std::shared_ptr<WordBlock> block;        // H0 rows of nwords words per wanted query
  // bit x % 64 of word x / 64 of row y = (mask(y, x) > 0); every word written by pass A
  uint64_t* row(int q, int64_t y) { return reinterpret_cast<uint64_t*>(block->data() + at[q]) + y * nwords; }
  const uint64_t* row(int q, int64_t y) const {
    return reinterpret_cast<const uint64_t*>(block->data() + at[q]) + y * nwords;
  }
};

QueryBits query_bits(const RoleRules& rules, const ClassScores& s, int64_t Q, int64_t H0, int64_t W0) {
  QueryBits b;
  b.nwords = (W0 + 63) / 64;
  b.wanted.assign(Q, 0);
  b.at.assign(Q, -1);
  for (int64_t i : s.top)
    if (rules.instance((int)(i % s.K), s.score(i))) b.wanted[i / s.K] = 1;
  const int64_t per_query = H0 * b.nwords * 8;
  int64_t n = 0;
  for (int64_t q = 0; q < Q; ++q)
    if (b.wanted[q]) b.at[q] = n, n += per_query;
  b.block = std::make_shared<WordBlock>((size_t)std::max<int64_t>(n, 1));
  return b;
}

KeptMasks kept_masks(const RoleRules& rules, const ClassScores& s, const std::vector<int>& uq, int64_t Q,
                     int64_t H0, int64_t W0, const PostprocessOptions& opt) {
  KeptMasks kept;
  kept.plane.assign(Q, -1);
  for (int64_t i : s.top) {
    const int c = (int)(i % s.K);
    if (rules.human_instance(c, s.score(i)) || rules.pasted(c, s.score(i))) kept.plane[i / s.K] = 0;
  }
  int64_t planes = 0;
  for (int q : uq)
    if (kept.plane[q] == 0) kept.plane[q] = (int)planes++;
  kept.keep = opt.keep_mask_bytes > 0 && (double)planes * H0 * W0 * sizeof(float) <= opt.keep_mask_bytes;
  if (kept.keep) kept.full = Tensor::empty({std::max<int64_t>(1, planes), H0, W0});
  return kept;
}

// Pass A: per selected query, the foreground statistics of its full-resolution mask (stats[q];
// the other queries' stay empty) and its bit words when wanted (qb), keeping the mask in `kept`.
std::vector<MaskStats> mask_stats(const Tensor& pred_masks, const std::vector<int>& uq,
                                  const MaskUpsampler& up, KeptMasks& kept, QueryBits& qb) {
  const int64_t Q = pred_masks.shape[0], h4 = pred_masks.shape[1], w4 = pred_masks.shape[2];
  const int64_t H0 = up.H0(), W0 = up.W0();
  std::vector<MaskStats> stats(Q);
  const kern::KernelTable& k = kern::active();
  const int64_t bandA = band_rows_for(1, W0, 64);
#pragma omp parallel
  {
    MaskUpsampler::Scratch s;
    Tensor rows_t;  // the band of a query whose values are not kept
    float* rows = pooled(rows_t, bandA * W0);
#pragma omp for schedule(dynamic, 1)
    for (size_t u = 0; u < uq.size(); ++u) {
      const int q = uq[u];
      MaskStats st;
      for (int64_t y0 = 0; y0 < H0; y0 += bandA) {
        const int64_t y1 = std::min(H0, y0 + bandA);
        const int plane = kept.plane[q];
        float* band = plane >= 0 ? kept.full.data() + ((int64_t)plane * H0 + y0) * W0 : rows;
        up.rows(pred_masks.data() + (int64_t)q * h4 * w4, y0, y1, band, s);
        for (int64_t y = y0; y < y1; ++y) {
          int64_t first, last;
          kern::MaskRowSinks o;  // statistics as mask_row_stats gives them, and the row's bit words
          o.count = &st.pos;
          o.sig_sum = &st.sig_sum;
          o.first = &first;
          o.last = &last;
          if (qb.wanted[q]) o.bits = qb.row(q, y);
          const float* x = band + (y - y0) * W0;
          k.mask_row_fused(x, x, 1.f, 0.f, W0, &o);  // fma(x, 1, x * 0) = x: the row itself
          if (first >= 0) {
            grow(st.bbox, (int)first, (int)y);
            grow(st.bbox, (int)last, (int)y);
          }
        }
      }
      stats[q] = st;
    }
  }
  return stats;
}

// Pass A without kept masks: the same statistics, each output row computed on the fly from the
// band's resized crop rows (kern::mask_row_fused) and never stored. Consecutive bands share the one
// or two crop rows at their edge (12 MP: 81 of the 721 rows that its 47 bands of 64 read), which
// the next band moves to the front of h instead of making them again (a row's values do not depend
// on the rows made with it: kern::resize_bilinear_window).
std::vector<MaskStats> mask_stats_streamed(const Tensor& pred_masks, const std::vector<int>& uq,
                                           const MaskRowSource& src, QueryBits& qb) {
  const int64_t Q = pred_masks.shape[0], h4 = pred_masks.shape[1], w4 = pred_masks.shape[2];
  const int64_t H0 = src.H0(), W0 = src.W0();
  std::vector<MaskStats> stats(Q);
  const kern::KernelTable& k = kern::active();
  const int64_t band = 64;
#pragma omp parallel
  {
    Tensor scratch, h_t;  // from the buffer pool: written before read
    float* h = pooled(h_t, src.max_rows(band) * W0);
#pragma omp for schedule(dynamic, 1)
    for (size_t u = 0; u < uq.size(); ++u) {
      const int q = uq[u];
      const float* plane = pred_masks.data() + (int64_t)q * h4 * w4;
      MaskStats st;
      int64_t held0 = 0, held1 = 0;  // the crop rows h holds, [held0, held1)
      for (int64_t y0 = 0; y0 < H0; y0 += band) {
        const int64_t y1 = std::min(H0, y0 + band);
        int64_t r0, r1;
        src.rows_for(y0, y1, &r0, &r1);
        const int64_t from = std::clamp(held1, r0, r1);  // rows [r0, from) are held (r0 >= held0: bands ascend)
        if (from > r0) std::memmove(h, h + (r0 - held0) * W0, (size_t)((from - r0) * W0) * sizeof(float));
        if (from < r1) src.hrows(plane, from, r1, h + (from - r0) * W0, scratch);
        held0 = r0, held1 = r1;
        for (int64_t y = y0; y < y1; ++y) {
          const kern::LinearTap t = src.tap(y);
          int64_t first, last;
          kern::MaskRowSinks o;
          o.count = &st.pos;
          o.sig_sum = &st.sig_sum;
          o.first = &first;
          o.last = &last;
          if (qb.wanted[q]) o.bits = qb.row(q, y);
          k.mask_row_fused(h + (t.i0 - r0) * W0, h + (t.i1 - r0) * W0, t.l0, t.l1, W0, &o);
          if (first >= 0) {
            grow(st.bbox, (int)first, (int)y);
            grow(st.bbox, (int)last, (int)y);
          }
        }
      }
      stats[q] = st;
    }
  }
  return stats;
}

// The three roles a top pair can have, by its final score: a part instance, a human instance,
// pasted into the semantic map of its class.
struct Roles {
  std::vector<Pair> parts, humans;        // descending score
  std::vector<std::vector<Pair>> pasted;  // [n_sem], each ascending score (upstream's paste order)
};

Roles roles(const RoleRules& rules, const ClassScores& s, const std::vector<MaskStats>& stats) {
  Roles r;
  r.pasted.resize(rules.n_sem);
  for (int64_t i : s.top) {
    const int q = (int)(i / s.K), c = (int)(i % s.K);
    const MaskStats& st = stats[q];
    const float mask_score = (float)(st.sig_sum / ((double)st.pos + 1e-6));
    const Pair p{q, c, s.score(i) * mask_score};
    if (rules.human_instance(c, p.score)) r.humans.push_back(p);
    if (rules.part_instance(c, p.score)) r.parts.push_back(p);
    if (rules.pasted(c, p.score)) r.pasted[c].push_back(p);
  }
  auto by_score_desc = [](const Pair& a, const Pair& b) {
    return a.score != b.score ? a.score > b.score : a.q < b.q;
  };
  std::sort(r.parts.begin(), r.parts.end(), by_score_desc);
  std::sort(r.humans.begin(), r.humans.end(), by_score_desc);
  for (auto& v : r.pasted)
    std::stable_sort(v.begin(), v.end(), [](const Pair& a, const Pair& b) { return a.score < b.score; });
  return r;
}

// The queries whose full-resolution rows pass B needs (pasted, then humans, each once; the parts'
// bits come from pass A) and their slot in the band buffer (slot[q], -1 when not needed).
std::vector<int> needed_queries(const Roles& r, int64_t Q, std::vector<int>* slot) {
  std::vector<int> need;
  slot->assign(Q, -1);
  auto want = [&](int q) {
    if ((*slot)[q] < 0) {
      (*slot)[q] = (int)need.size();
      need.push_back(q);
    }
  };
  for (auto& v : r.pasted)
    for (auto& p : v) want(p.q);
  for (auto& p : r.humans) want(p.q);
  return need;
}

// Pass B's view of one band of output rows [y0, y1) with the masks kept from pass A: where a
// needed query's rows are and which part of its box is inside.
struct BandView {
  int64_t y0, y1, W0, H0;
  const KeptMasks& kept;
  const std::vector<MaskStats>& stats;

  // query q's rows y0.. of this band, W0 floats each
  const float* rows_of(int q) const {
    if (kept.plane[q] < 0) throw std::logic_error("postprocess: the values of a mask pass B reads were not kept");
    return kept.full.data() + ((int64_t)kept.plane[q] * H0 + y0) * W0;
  }
  // rows [ya, yb) of the band and columns [xa, xb) of query q's box; false if none
  bool box_in_band(int q, int64_t* ya, int64_t* yb, int64_t* xa, int64_t* xb) const {
    const BBox& bb = stats[q].bbox;
    *ya = std::max<int64_t>(y0, bb.y0);
    *yb = std::min<int64_t>(y1, bb.y1);
    *xa = bb.x0;
    *xb = bb.x1;
    return bb.x1 >= 0 && *ya < *yb;
  }
};

// One class's band of the semantic map once every instance is pasted: the average where pasted
// (cp / times), stored into `semantic` and `scores` (when given) from row offset `row0` (c * H0 + y0),
// and taken into the band's labels: the argmax over the classes in order (the first maximum, as
// torch.argmax), running in bv / lab: class 0 starts them, a later class takes the pixels where it
// is greater. A class nothing was pasted into is all zeros, never above the running maximum
// (>= 0): callers skip it (after class 0).
void finish_class_band(int c, float* cp, const float* times, int64_t npx, int64_t row0, int64_t W0,
                       Tensor* semantic, uint8_t* scores, float* bv, uint8_t* lab) {
  if (!semantic && !scores && c > 0) {  // one pass: the average is only compared
    kern::active().class_argmax(cp, times, npx, (uint8_t)c, bv, lab);
    return;
  }
  for (int64_t i = 0; i < npx; ++i) cp[i] /= times[i] == 0.f ? 1.f : times[i];
  if (semantic) std::memcpy(semantic->data() + row0 * W0, cp, npx * sizeof(float));
  if (scores) quantise_scores(cp, npx, scores + row0 * W0);
  if (c == 0) {
    std::copy(cp, cp + npx, bv);
    std::fill(lab, lab + npx, 0);
    return;
  }
  for (int64_t i = 0; i < npx; ++i) {
    const bool gt = cp[i] > bv[i];
    bv[i] = gt ? cp[i] : bv[i];
    lab[i] = gt ? (uint8_t)c : lab[i];
  }
}

// Semantic map of one band (rows [y0, y1)): per class, paste its instances in ascending score
// (paste_pair(pair, cp, times) adds one instance's rows of this band) and average where pasted,
// written to `semantic` / `scores` when given, and the labels as the argmax over the classes.
// Scratch of the band's size each: cp (one class's plane), times, bv (the running maximum).
template <class PastePair>
void semantic_band(const Roles& r, int64_t y0, int64_t y1, int64_t W0, int64_t H0, const PastePair& paste_pair,
                   float* cp, float* times, float* bv, Tensor* semantic, uint8_t* lab, uint8_t* scores) {
  const int n_sem = (int)r.pasted.size();
  const int64_t npx = (y1 - y0) * W0;
  for (int c = 0; c < n_sem; ++c) {
    if (r.pasted[c].empty()) {  // zeros: the labels' start for class 0, nothing for the others
      if (semantic) std::memset(semantic->data() + (c * H0 + y0) * W0, 0, npx * sizeof(float));
      if (c == 0) {
        std::fill(bv, bv + npx, 0.f);
        std::fill(lab, lab + npx, 0);
      }
      continue;
    }
    std::fill(cp, cp + npx, 0.f);
    std::fill(times, times + npx, 0.f);
    for (const Pair& p : r.pasted[c]) paste_pair(p, cp, times);
    finish_class_band(c, cp, times, npx, c * H0 + y0, W0, semantic, scores, bv, lab);
  }
}

// Person map of one band: the kept human with the largest mask logit among those covering the
// pixel (1-based, 0 = none; at most 255), with best_logit as scratch.
// A kept row through kern::mask_row_fused: with l0 = 1 and l1 = 0 its value is fma(x, 1, x * 0) =
// x exactly (x + (+-0)), so the sinks see the kept row itself.
void kept_row(const kern::KernelTable& k, const float* x, int64_t n, const kern::MaskRowSinks& o) {
  k.mask_row_fused(x, x, 1.f, 0.f, n, &o);
}

void person_band(const BandView& v, const std::vector<Pair>& humans, const kern::KernelTable& k,
                 float* best_logit, uint8_t* pm) {
  const int64_t y0 = v.y0, W0 = v.W0, npx = (v.y1 - y0) * W0, nH = (int64_t)humans.size();
  std::fill(best_logit, best_logit + npx, 0.f);
  for (int64_t h = 0; h < nH && h < 255; ++h) {
    int64_t ya, yb, xa, xb;
    if (!v.box_in_band(humans[h].q, &ya, &yb, &xa, &xb)) continue;
    const float* r = v.rows_of(humans[h].q);
    for (int64_t y = ya; y < yb; ++y) {
      const int64_t o = (y - y0) * W0 + xa;
      kern::MaskRowSinks s;
      s.best = best_logit + o;
      s.who = pm + o;
      s.id = (uint8_t)(h + 1);
      kept_row(k, r + o, xb - xa, s);
    }
  }
}

// Instances (parts, then humans, each by descending score) and persons; each part goes to the
// human it overlaps most (overlap: [parts, humans] pixel counts).
void instances_and_persons(const ModelConfig& cfg, const Roles& r,
                           const std::vector<MaskStats>& stats, const std::vector<int64_t>& overlap,
                           std::vector<MaskBits>& bits, Parsing& res) {
  const int64_t nP = (int64_t)r.parts.size(), nH = (int64_t)r.humans.size();
  const auto label_of = [&](int c) { return c < (int)cfg.classes.size() ? cfg.classes[c] : std::to_string(c); };
  auto instance_of = [&](const Pair& p, Instance::Kind kind) {
    Instance in;
    in.kind = kind;
    in.category_id = p.c;
    in.label = label_of(p.c);
    in.score = p.score;
    in.area = stats[p.q].pos;
    in.bbox = finished(stats[p.q].bbox);
    in.query = p.q;
    return in;
  };
  for (const Pair& p : r.parts) {
    res.instances.push_back(instance_of(p, Instance::Kind::Part));
    res.instances.back().mask_bits = std::move(bits[res.instances.size() - 1]);
  }
  for (const Pair& p : r.humans) {
    Instance in = instance_of(p, Instance::Kind::Human);
    in.mask_bits = std::move(bits[res.instances.size()]);
    Person person;
    person.instance = (int)res.instances.size();
    person.score = in.score;
    person.bbox = in.bbox;
    person.area = in.area;
    res.instances.push_back(std::move(in));
    res.persons.push_back(person);
  }
  for (int64_t p = 0; p < nP; ++p) {
    int64_t best = 0;
    int who = -1;
    for (int64_t h = 0; h < nH; ++h) {
      const int64_t n = overlap[p * nH + h];
      if (n > best) best = n, who = (int)h;
    }
    res.instances[p].person = who;
    if (who >= 0) res.persons[who].parts.push_back((int)p);
  }
}

// Part/human overlaps (pixels where both masks are > 0), [parts, humans], by popcount of the bit
// words pass A made (kern::and_popcount), over blocks of rows on the threads (integer sums: any
// order gives the same).
std::vector<int64_t> overlaps(const Roles& r, const std::vector<MaskStats>& stats, const QueryBits& qb, int64_t H0) {
  const int64_t nP = (int64_t)r.parts.size(), nH = (int64_t)r.humans.size();
  std::vector<int64_t> total((size_t)(nP * nH), 0);
  if (nP == 0 || nH == 0) return total;
  const int64_t block = 64, n_blocks = (H0 + block - 1) / block;
  const kern::KernelTable& k = kern::active();
  // Threads only where the words are many (a small photo's take ~1 ms, less than a parallel
  // region's barriers cost on a loaded machine).
  const bool many = H0 * qb.nwords * 64 >= (int64_t{1} << 20);
#pragma omp parallel if (many)
  {
    std::vector<int64_t> local(total.size(), 0);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < n_blocks; ++b) {
      const int64_t by0 = b * block, by1 = std::min(H0, by0 + block);
      for (int64_t p = 0; p < nP; ++p) {
        const BBox& pb = stats[r.parts[p].q].bbox;
        if (pb.x1 < 0) continue;
        for (int64_t h = 0; h < nH; ++h) {
          const BBox& hb = stats[r.humans[h].q].bbox;
          if (hb.x1 < 0) continue;
          const int64_t ya = std::max<int64_t>({by0, pb.y0, hb.y0}), yb = std::min<int64_t>({by1, pb.y1, hb.y1});
          const int64_t wa = std::max(pb.x0, hb.x0) / 64, wb = (std::min(pb.x1, hb.x1) + 63) / 64;
          if (ya >= yb || wa >= wb) continue;
          k.and_popcount(qb.row(r.parts[p].q, ya) + wa, qb.row(r.humans[h].q, ya) + wa, qb.nwords, yb - ya, wb - wa,
                         &local[p * nH + h]);
        }
      }
    }
#pragma omp critical(m2fp_overlaps)
    for (size_t i = 0; i < total.size(); ++i) total[i] += local[i];
  }
  return total;
}

// Query q's bit words (QueryBits: H0 rows of nwords words at v), rewritten in place as
// Instance::mask_bits (rows bb.y0..bb.y1 of (bb.x1 - bb.x0 + 7) / 8 bytes, pixel x at bit x - bb.x0);
// returns their size (0 for an empty mask). Row y's bytes go to offset (y - y0) * stride <= y * nwords
// * 8, where its words were (copied out first): rows ascending never overwrite words not yet read.
// The words hold no bit outside the box (it is the extent of mask > 0) nor past W0.
size_t to_box_layout(uint8_t* v, const BBox& bb, int64_t nwords) {
  if (bb.x1 < 0) return 0;
  const int64_t stride = (bb.x1 - bb.x0 + 7) / 8;
  std::vector<uint64_t> words((size_t)nwords);
  for (int64_t y = bb.y0; y < bb.y1; ++y) {
    uint8_t* in = v + (size_t)y * nwords * 8;
    uint8_t* out = v + (size_t)(y - bb.y0) * stride;
    if (bb.x0 % 8 == 0) {  // whole bytes (little-endian words): the row's bytes from x0 / 8 on
      std::memmove(out, in + bb.x0 / 8, (size_t)stride);
      continue;
    }
    std::memcpy(words.data(), in, (size_t)nwords * 8);
    for (int64_t k = 0; k < stride; k += 8) {
      const int64_t o = bb.x0 + 8 * k, w = o >> 6, sh = o & 63;
      uint64_t word = words[w] >> sh;
      if (sh && w + 1 < nwords) word |= words[w + 1] << (64 - sh);
      const int64_t nb = std::min<int64_t>(8, stride - k);
      if (nb == 8) {
        std::memcpy(out + k, &word, 8);  // little-endian: byte i = bits 8i..8i+7
      } else {
        for (int64_t i = 0; i < nb; ++i) out[k + i] = (uint8_t)(word >> (8 * i));
      }
    }
  }
  return (size_t)((bb.y1 - bb.y0) * stride);
}

// The instances' bit masks (parts, then humans, as instances_and_persons takes them) from pass A's
// words: each instance query's words made into its mask in place (over the threads); every instance
// of a query views the same bytes of qb's block. Where the masks fill less than 7/8 of the block
// (small boxes, or wanted queries that made no instance) they are moved to its front and the rest
// is given back (pool::shrink), so that a parsing holds about what its masks need.
std::vector<MaskBits> instance_bits(const Roles& r, const std::vector<MaskStats>& stats, QueryBits& qb) {
  const int64_t nP = (int64_t)r.parts.size(), nH = (int64_t)r.humans.size();
  auto query_of = [&](int64_t j) { return j < nP ? r.parts[j].q : r.humans[j - nP].q; };
  std::vector<int> queries;
  for (int64_t j = 0; j < nP + nH; ++j) queries.push_back(query_of(j));
  std::sort(queries.begin(), queries.end());  // ascending q: ascending offsets in the block
  queries.erase(std::unique(queries.begin(), queries.end()), queries.end());
  for (int q : queries)
    if (!qb.wanted[q]) throw std::logic_error("postprocess: an instance's query has no bit words from pass A");
  std::vector<size_t> size(qb.wanted.size(), 0);
  const bool many = !queries.empty() && qb.block->bytes >= (size_t{1} << 20);  // as overlaps()
#pragma omp parallel for schedule(dynamic, 1) if (many)
  for (size_t i = 0; i < queries.size(); ++i) {
    const int q = queries[i];
    size[q] = to_box_layout(qb.block->data() + qb.at[q], stats[q].bbox, qb.nwords);
  }
  size_t total = 0;
  for (int q : queries) total += size[q];
  std::vector<int64_t> at = qb.at;
  if (total > 0 && total < qb.block->bytes / 8 * 7) {
    size_t off = 0;
    for (int q : queries) {  // ascending offsets: each move goes to the same place or lower
      std::memmove(qb.block->data() + off, qb.block->data() + at[q], size[q]);
      at[q] = (int64_t)off;
      off += size[q];
    }
    qb.block->p = pool::shrink(qb.block->p, qb.block->bytes, total);
    qb.block->bytes = total;
  }
  std::vector<MaskBits> bits((size_t)(nP + nH));
  const std::shared_ptr<const void> owner = qb.block;
  for (int64_t j = 0; j < nP + nH; ++j) {
    const int q = query_of(j);
    if (size[q]) bits[j] = MaskBits(owner, qb.block->data() + at[q], size[q]);
  }
  qb.block.reset();  // the masks keep the block
  return bits;
}

// Pass B without kept masks, one band of output rows [y0, y1) at a time: a needed query's crop
// rows are resized to the output width (hq) where it is used, and every use of an output row (paste
// into the semantic map, person map) computes it on the fly with kern::mask_row_fused, in the order
// the kept path uses (so every float sum is the same). A query's row is > 0 only inside its box, and
// every use needs > 0 (paste: sigmoid(m) * score > 0.5 implies m > 0; person: m > best >= 0), so
// rows start at the box's first column rounded down to 64.
//
// hq holds kHqSlots queries' crop rows, the two used last: each use of a query is a run of its rows
// (one pasted pair, one human), and with the synthetic weights each needed query is used once per
// band, so each query's rows are made once per band as when every needed query had its own slot
// ([need, max_rows, W0]: 8 MB a thread at 12 MP, not in the core's L2, so that the rows were written
// to and read back from L3 or memory; two slots are ~290 KB and stay in L2). A query used again
// after two others has its rows made again, the same values.
constexpr int kHqSlots = 2;

struct StreamBand {
  int64_t y0, y1, W0;
  const MaskRowSource& src;
  const std::vector<MaskStats>& stats;
  int64_t r0, r1;                 // crop rows held per query in hq
  float* hq;                      // [kHqSlots, max_rows, W0]
  int64_t max_rows;
  const float* masks;             // pred_masks [Q, plane]
  int64_t plane;                  // h4 * w4
  int held[kHqSlots] = {-1, -1};  // the query whose rows each slot holds (-1: none yet)
  int next = 0;                   // the slot to fill next: the one used least recently
  Tensor& scratch;                // MaskRowSource::hrows's

  bool box(int q, int64_t* ya, int64_t* yb, int64_t* xa, int64_t* xb) const {
    const BBox& bb = stats[q].bbox;
    *ya = std::max<int64_t>(y0, bb.y0);
    *yb = std::min<int64_t>(y1, bb.y1);
    *xa = bb.x0 & ~63;  // word aligned
    *xb = bb.x1;
    return bb.x1 >= 0 && *ya < *yb;
  }
  // Runs row y of query q (columns [xa, xb)) through the fused kernel with `o`.
  void row(const kern::KernelTable& k, int q, int64_t y, int64_t xa, int64_t xb, const kern::MaskRowSinks& o) {
    static_assert(kHqSlots == 2, "the slot used least recently is the other one");
    int s = held[0] == q ? 0 : held[1] == q ? 1 : -1;
    float* h;
    if (s < 0) {
      s = next;
      h = hq + (size_t)s * max_rows * W0;
      src.hrows(masks + (int64_t)q * plane, r0, r1, h, scratch);
      held[s] = q;
    } else {
      h = hq + (size_t)s * max_rows * W0;
    }
    next = 1 - s;
    const kern::LinearTap t = src.tap(y);
    k.mask_row_fused(h + (t.i0 - r0) * W0 + xa, h + (t.i1 - r0) * W0 + xa, t.l0, t.l1, xb - xa, &o);
  }
};

void person_band_streamed(StreamBand& v, const std::vector<Pair>& humans, const kern::KernelTable& k,
                          float* best_logit, uint8_t* pm) {
  const int64_t y0 = v.y0, W0 = v.W0, npx = (v.y1 - y0) * W0, nH = (int64_t)humans.size();
  std::fill(best_logit, best_logit + npx, 0.f);
  for (int64_t h = 0; h < nH && h < 255; ++h) {
    int64_t ya, yb, xa, xb;
    if (!v.box(humans[h].q, &ya, &yb, &xa, &xb)) continue;
    for (int64_t y = ya; y < yb; ++y) {
      kern::MaskRowSinks o;
      o.best = best_logit + (y - y0) * W0 + xa;
      o.who = pm + (y - y0) * W0 + xa;
      o.id = (uint8_t)(h + 1);
      v.row(k, humans[h].q, y, xa, xb, o);
    }
  }
}

Parsing postprocess_multi(const ModelConfig& cfg, const ForwardOutputs& out, const PostprocessGeometry& g,
                          const PostprocessOptions& opt, const TensorSink* sink) {
  const int64_t Q = out.pred_logits.shape[0];
  const int64_t h4 = out.pred_masks.shape[1], w4 = out.pred_masks.shape[2];
  const int n_sem = cfg.num_parsing;
  const int64_t H0 = g.H0, W0 = g.W0;

  const ClassScores scores = class_scores(out.pred_logits);
  const RoleRules rules(cfg);
  const std::vector<int> uq = selected_queries(rules, scores);
  MaskUpsampler up(h4, w4, g);
  const MaskRowSource src(h4, w4, g);
  KeptMasks kept = kept_masks(rules, scores, uq, Q, H0, W0, opt);
  QueryBits qb = query_bits(rules, scores, Q, H0, W0);
  const std::vector<MaskStats> stats = kept.keep ? mask_stats(out.pred_masks, uq, up, kept, qb)
                                                 : mask_stats_streamed(out.pred_masks, uq, src, qb);
  const Roles r = roles(rules, scores, stats);
  std::vector<int> slot;
  const std::vector<int> need = needed_queries(r, Q, &slot);

  // The part/human overlaps and the instances' bit masks from pass A's bit words.
  const std::vector<int64_t> overlap = overlaps(r, stats, qb, H0);
  std::vector<MaskBits> bits = instance_bits(r, stats, qb);

  // Pass B: bands of output rows: semantic paste + argmax, person map.
  Parsing res;
  res.width = (int)W0;
  res.height = (int)H0;
  res.class_names = cfg.classes;
  Tensor semantic;
  if (opt.emit_semantic) semantic = Tensor::zeros({n_sem, H0, W0});
  if (opt.keep_scores) res.score_classes = n_sem;
  const int T = omp_get_max_threads();
  const kern::KernelTable& k = kern::active();
  // The outputs (label and person maps, the scores when asked), zero filled, in huge pages where
  // they can be, over the threads.
#pragma omp parallel for schedule(dynamic, 1) if (H0 * W0 >= (int64_t{1} << 20))
  for (int j = 0; j < 3; ++j) {
    if (j == 0) pool::huge_zeroed(res.labels, (size_t)(H0 * W0));
    if (j == 1) pool::huge_zeroed(res.person_map, (size_t)(H0 * W0));
    if (j == 2 && opt.keep_scores) pool::huge_zeroed(res.scores, (size_t)n_sem * H0 * W0);
  }
  int64_t label_counts[256] = {};  // pixels per label, counted band by band
  if (kept.keep) {
    // The kept masks: each band reads them where they are.
    // Bands of at most opt.band_rows rows, fewer for a small photo so that each thread gets about
    // 8 of them (balance; not under 8 rows): 548x342 on 2 threads, 16 bands of 22 rows, not 11 of 32.
    const int64_t bandB = std::min(band_rows_for((int64_t)need.size() + 2 * n_sem, W0, opt.band_rows),
                                   std::max<int64_t>(8, (H0 + 8 * T - 1) / (8 * T)));
    const int64_t n_bands = (H0 + bandB - 1) / bandB;
#pragma omp parallel
    {
      Tensor scratch;  // cp, times and best_logit [bandB * W0]: written before read
      float* cp = pooled(scratch, 3 * bandB * W0);
      float *times = cp + bandB * W0, *best_logit = times + bandB * W0;
      int64_t counts[256] = {};  // this thread's label counts
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < n_bands; ++b) {
        const int64_t y0 = b * bandB, y1 = std::min(H0, y0 + bandB);
        const BandView v{y0, y1, W0, H0, kept, stats};
        auto paste = [&](const Pair& p, float* cpb, float* tb) {
          int64_t ya, yb, xa, xb;
          if (!v.box_in_band(p.q, &ya, &yb, &xa, &xb)) return;
          const float* rows = v.rows_of(p.q);
          for (int64_t y = ya; y < yb; ++y) {
            const int64_t o = (y - y0) * W0 + xa;
            k.paste_row(rows + o, xb - xa, p.score, cpb + o, tb + o);
          }
        };
        semantic_band(r, y0, y1, W0, H0, paste, cp, times, best_logit, opt.emit_semantic ? &semantic : nullptr,
                      res.labels.data() + y0 * W0, opt.keep_scores ? res.scores.data() : nullptr);
        count_labels(res.labels.data() + y0 * W0, (y1 - y0) * W0, counts);
        person_band(v, r.humans, k, best_logit, res.person_map.data() + y0 * W0);
      }
#pragma omp critical(m2fp_label_counts)
      for (int l = 0; l < 256; ++l) label_counts[l] += counts[l];
    }
  } else {
    // Streaming: per band, each needed query's resized crop rows (made where the query is used in
    // the band), its output rows computed where they are used (StreamBand). A query's mask is > 0
    // only inside its box (pass A), so a band resizes only the queries whose box it crosses.
    // Band height: opt.band_rows, lowered until one thread's buffers (the crop rows of kHqSlots
    // queries, the semantic scratch) stay within ~64 MB.
    int64_t bandB = std::max(1, opt.band_rows), max_rows = 0;
    auto rows_needed = [&](int64_t band) {  // the most crop rows any band of this height reads
      int64_t m = 0;
      for (int64_t y0 = 0; y0 < H0; y0 += band) {
        int64_t r0, r1;
        src.rows_for(y0, std::min(H0, y0 + band), &r0, &r1);
        m = std::max(m, r1 - r0);
      }
      return m;
    };
    for (;;) {
      max_rows = rows_needed(bandB);
      const int64_t bytes = kHqSlots * max_rows * W0 * 4 + 3 * bandB * W0 * 4;
      if (bandB == 1 || bytes <= (64 << 20)) break;
      bandB = std::max<int64_t>(1, bandB / 2);
    }
    const int64_t n_bands = (H0 + bandB - 1) / bandB;
#pragma omp parallel
    {
      Tensor scratch;
      // Scratch from the buffer pool (pages mapped by an earlier parse, no zero-fill), each part
      // written before it is read: hq for the queries crossing the band, cp, times and best_logit
      // per use.
      Tensor hq_t, cp_t;
      float* hq = pooled(hq_t, kHqSlots * max_rows * W0);
      float* cp = pooled(cp_t, 3 * bandB * W0);
      float *times = cp + bandB * W0, *best_logit = times + bandB * W0;
      int64_t counts[256] = {};  // this thread's label counts
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < n_bands; ++b) {
        const int64_t y0 = b * bandB, y1 = std::min(H0, y0 + bandB);
        int64_t r0, r1;
        src.rows_for(y0, y1, &r0, &r1);
        StreamBand v{y0, y1, W0, src, stats, r0, r1, hq, max_rows, out.pred_masks.data(), h4 * w4, {-1, -1}, 0, scratch};
        auto paste = [&](const Pair& p, float* cpb, float* tb) {
          int64_t ya, yb, xa, xb;
          if (!v.box(p.q, &ya, &yb, &xa, &xb)) return;
          for (int64_t y = ya; y < yb; ++y) {
            kern::MaskRowSinks o;
            o.cat = cpb + (y - y0) * W0 + xa;
            o.times = tb + (y - y0) * W0 + xa;
            o.score = p.score;
            v.row(k, p.q, y, xa, xb, o);
          }
        };
        semantic_band(r, y0, y1, W0, H0, paste, cp, times, best_logit, opt.emit_semantic ? &semantic : nullptr,
                      res.labels.data() + y0 * W0, opt.keep_scores ? res.scores.data() : nullptr);
        count_labels(res.labels.data() + y0 * W0, (y1 - y0) * W0, counts);
        person_band_streamed(v, r.humans, k, best_logit, res.person_map.data() + y0 * W0);
      }
#pragma omp critical(m2fp_label_counts)
      for (int l = 0; l < 256; ++l) label_counts[l] += counts[l];
    }
  }

  instances_and_persons(cfg, r, stats, overlap, bits, res);
  finish_parsing(cfg, opt, sink, semantic, res, label_counts);
  return res;
}

// ---- single-person (single_human) -------------------------------------------------------------
Parsing postprocess_single(const ModelConfig& cfg, const ForwardOutputs& out, const PostprocessGeometry& g,
                           const PostprocessOptions& opt, const TensorSink* sink) {
  const int64_t Q = out.pred_logits.shape[0], K1 = out.pred_logits.shape[1], K = K1 - 1;
  const int64_t h4 = out.pred_masks.shape[1], w4 = out.pred_masks.shape[2];
  const int64_t H0 = g.H0, W0 = g.W0;
  const BBox& box = g.crop_box;
  const int64_t ch = box.y1 - box.y0, cw = box.x1 - box.x0;

  // A^T [K, Q]: class probabilities without "no object", transposed for the GEMM.
  Tensor prob = out.pred_logits.clone();
  kern::softmax_rows(prob.data(), Q, K1);
  std::vector<float> at((size_t)K * Q);
  for (int64_t q = 0; q < Q; ++q)
    for (int64_t c = 0; c < K; ++c) at[c * Q + q] = prob.data()[q * K1 + c];

  Parsing res;
  res.width = (int)W0;
  res.height = (int)H0;
  res.single_human = true;
  res.class_names = cfg.classes;
  res.labels.assign((size_t)(H0 * W0), 0);
  Tensor semantic;
  if (opt.emit_semantic) semantic = Tensor::empty({K, H0, W0});
  if (opt.keep_scores) {
    res.score_classes = (int)K;
    res.scores.assign((size_t)K * H0 * W0, 0);
  }
  const bool masks_first = cfg.sem_seg_postprocess_before_inference || cfg.parsing_on;

  std::vector<double> sig_sum((size_t)K, 0.0);
  auto argmax_band = [&](const float* sem /*[K, npx], row stride ld*/, int64_t ld, int64_t y0, int64_t npx) {
    std::vector<double> local((size_t)K, 0.0);
    for (int64_t i = 0; i < npx; ++i) {
      int best = 0;
      float bv = sem[i];
      for (int64_t c = 1; c < K; ++c)
        if (sem[c * ld + i] > bv) bv = sem[c * ld + i], best = (int)c;
      res.labels[y0 * W0 + i] = (uint8_t)best;
      local[(size_t)best] += sigmoid(bv);
    }
#pragma omp critical(m2fp_semantic_scores)
    for (int64_t c = 0; c < K; ++c) sig_sum[(size_t)c] += local[(size_t)c];
    if (opt.emit_semantic)
      for (int64_t c = 0; c < K; ++c)
        std::memcpy(semantic.data() + (c * H0 * W0) + y0 * W0, sem + c * ld, npx * sizeof(float));
    if (opt.keep_scores)
      for (int64_t c = 0; c < K; ++c) quantise_scores(sem + c * ld, npx, res.scores.data() + c * H0 * W0 + y0 * W0);
  };

  if (!masks_first) {
    // semantic inference at the padded size, then crop the box and resize to the original size
    const int64_t Hp = g.Hp, Wp = g.Wp;
    std::vector<float> sig((size_t)Q * Hp * Wp);
    kern::resize_bilinear_planes(out.pred_masks.data(), Q, h4, w4, sig.data(), Hp, Wp);
    for (float& v : sig) v = sigmoid(v);
    std::vector<float> sem((size_t)K * Hp * Wp);
    dnn::matmul_ab(at.data(), sig.data(), sem.data(), K, Hp * Wp, Q);  // [K, Hp*Wp]
    sig = std::vector<float>();
    std::vector<float> crop((size_t)K * ch * cw);
    for (int64_t c = 0; c < K; ++c)
      for (int64_t y = 0; y < ch; ++y)
        std::memcpy(crop.data() + (c * ch + y) * cw, sem.data() + c * Hp * Wp + (box.y0 + y) * Wp + box.x0,
                    cw * sizeof(float));
    const int64_t band = band_rows_for(K, W0, opt.band_rows), n_bands = (H0 + band - 1) / band;
    const kern::KernelTable& k = kern::active();
#pragma omp parallel
    {
      std::vector<float> rows((size_t)K * band * W0);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < n_bands; ++b) {
        const int64_t y0 = b * band, y1 = std::min(H0, y0 + band);
        for (int64_t c = 0; c < K; ++c)
          k.resize_bilinear_plane_rows(crop.data() + c * ch * cw, ch, cw, rows.data() + c * band * W0, H0, W0, y0, y1);
        argmax_band(rows.data(), band * W0, y0, (y1 - y0) * W0);
      }
    }
  } else {
    // masks to the original size first (band by band), then semantic inference there
    MaskUpsampler up(h4, w4, g);
    const int64_t band = band_rows_for(Q + K, W0, opt.band_rows), n_bands = (H0 + band - 1) / band;
#pragma omp parallel
    {
      MaskUpsampler::Scratch s;
      std::vector<float> m((size_t)Q * band * W0), sem((size_t)K * band * W0);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < n_bands; ++b) {
        const int64_t y0 = b * band, y1 = std::min(H0, y0 + band), npx = (y1 - y0) * W0;
        for (int64_t q = 0; q < Q; ++q) {
          float* r = m.data() + q * npx;
          up.rows(out.pred_masks.data() + q * h4 * w4, y0, y1, r, s);
          for (int64_t i = 0; i < npx; ++i) r[i] = sigmoid(r[i]);
        }
        dnn::matmul_ab(at.data(), m.data(), sem.data(), K, npx, Q);
        argmax_band(sem.data(), npx, y0, npx);
      }
    }
  }
  finish_parsing(cfg, opt, sink, semantic, res);
  res.semantic_scores.assign((size_t)K, 0.0);
  for (int64_t c = 0; c < K; ++c) {
    const double count = res.label_fractions.size() > (size_t)c ? res.label_fractions[(size_t)c] * (double)(H0 * W0) : 0.0;
    res.semantic_scores[(size_t)c] = sig_sum[(size_t)c] / (std::round(count) + 1.0);
  }
  return res;
}

}  // namespace

Parsing postprocess(const ModelConfig& cfg, const ForwardOutputs& out, const PostprocessGeometry& g,
                    const PostprocessOptions& opt, const TensorSink* sink) {
  if (out.pred_logits.shape.size() != 2 || out.pred_masks.shape.size() != 3 ||
      out.pred_logits.shape[0] != out.pred_masks.shape[0])
    throw std::invalid_argument("postprocess: pred_logits " + out.pred_logits.shape_str() +
                                " and pred_masks " + out.pred_masks.shape_str() + " do not match");
  const BBox& b = g.crop_box;
  if (g.H0 <= 0 || g.W0 <= 0 || b.x0 < 0 || b.y0 < 0 || b.x1 > g.Wp || b.y1 > g.Hp || b.x1 <= b.x0 || b.y1 <= b.y0)
    throw std::invalid_argument("postprocess: bad geometry");
  if (cfg.single_human) return postprocess_single(cfg, out, g, opt, sink);
  if (!cfg.parsing_on)
    throw std::invalid_argument("postprocess: multi-person models need parsing_on (semantic-only is not supported)");
  return postprocess_multi(cfg, out, g, opt, sink);
}

}  // namespace m2fp
