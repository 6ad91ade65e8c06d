// service/report.cpp: JSON for what a parse produced.
#include "service/report.h"

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/buffer_pool.h"
#include "engine/io.h"
#include "service/render.h"
#include "kernels/kernels.h"
#include "outfit/outfit_json.h"

namespace m2fp::service {

const char* const kSyntheticWarning =
    "SYNTHETIC WEIGHTS: this model has random weights (tools/make_synthetic_checkpoint.py), not the "
    "trained ModelScope checkpoint; its parsings are not meaningful.";

nlohmann::json bbox_json(const BBox& b) { return {b.x0, b.y0, b.x1, b.y1}; }

nlohmann::json model_json(const M2FP& model, const std::string& model_path) {
  const ModelConfig& c = model.config();
  nlohmann::json j;
  j["file"] = model_path;
  j["summary"] = c.summary();
  j["synthetic"] = c.synthetic;
  if (c.synthetic) j["warning"] = kSyntheticWarning;
  j["source"] = c.source;
  j["mode"] = c.single_human ? "single-person" : "multi-person";
  j["classes"] = c.classes;
  j["precision"] = dnn::precision_name(model.precision());
  j["isa"] = kern::isa_name(kern::active_isa());
  return j;
}

namespace {
// "label_fractions" (share of the photo per class present) and "labels_present" (their names).
void add_label_shares(nlohmann::json& j, const Parsing& p) {
  nlohmann::json fr = nlohmann::json::object();
  nlohmann::json present = nlohmann::json::array();
  for (size_t c = 0; c < p.label_fractions.size(); ++c) {
    const std::string name = c < p.class_names.size() ? p.class_names[c] : std::to_string(c);
    if (p.label_fractions[c] > 0) {
      fr[name] = p.label_fractions[c];
      present.push_back(name);
    }
  }
  j["label_fractions"] = fr;
  j["labels_present"] = present;
}
}  // namespace

namespace {
// nlohmann's serializer writing into 64 KiB pieces handed to `out`.
class ChunkedOutput : public nlohmann::detail::output_adapter_protocol<char> {
 public:
  explicit ChunkedOutput(const std::function<void(const void*, size_t)>& out) : out_(out), buf_(new char[kChunk]) {}
  void write_character(char c) override {
    if (n_ == kChunk) flush();
    buf_[n_++] = c;
  }
  void write_characters(const char* s, std::size_t n) override {
    if (n_ + n > kChunk) flush();
    if (n >= kChunk) {
      out_(s, n);
      return;
    }
    std::memcpy(buf_.get() + n_, s, n);
    n_ += n;
  }
  // The characters of s[0, n) with a backslash before each '"' and '\\' (JSON's escapes of a
  // printable ASCII string), written straight into the buffer a piece at a time (at most twice the
  // piece), without a branch per character: the 12 MP result.json's RLE strings have a backslash
  // every few characters, and writing the runs between them one call each was most of its dump.
  void write_escaped(const char* s, std::size_t n) {
    while (n > 0) {
      const std::size_t m = std::min(n, kChunk / 2);
      if (n_ + 2 * m > kChunk) flush();
      char* out = buf_.get() + n_;
      for (std::size_t i = 0; i < m; ++i) {
        const char c = s[i];
        *out = '\\';
        out += (c == '"') | (c == '\\');
        *out++ = c;
      }
      n_ = (std::size_t)(out - buf_.get());
      s += m;
      n -= m;
    }
  }
  void flush() {
    if (n_) out_(buf_.get(), n_);
    n_ = 0;
  }

 private:
  static constexpr std::size_t kChunk = 64 << 10;
  const std::function<void(const void*, size_t)>& out_;
  std::unique_ptr<char[]> buf_;
  std::size_t n_ = 0;
};

// Whether s is printable ASCII (0x20..0x7e), which nlohmann's serializer writes as it is but for a
// backslash before each '"' and '\\' (plain_ascii_escaped): that is done here (write_escaped), not
// byte by byte through it (its per-byte UTF-8 check was most of a 12-megapixel result.json's dump:
// ~100 COCO RLE strings of 11 MB, whose characters 48..111 include the backslash). No early exit:
// the loop is vectorised.
bool printable_ascii(const std::string& s) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  unsigned char outside = 0;
  for (std::size_t i = 0; i < s.size(); ++i) outside |= (unsigned char)(p[i] - 0x20) > 0x5e;
  return !outside;
}

// Text in blocks of the buffer pool (engine/buffer_pool.h): from the second use on its pages are mapped
// already (a 12 MP result.json's masks are ~5 MB of it; fresh pages cost more than the writing).
class PooledText {
 public:
  void append(const char* s, size_t n) {
    while (n > 0) {
      if (blocks_.empty() || used_ == kBlock) {
        blocks_.emplace_back(kBlock);
        used_ = 0;
      }
      const size_t m = std::min(n, kBlock - used_);
      std::memcpy(blocks_.back().data() + used_, s, m);
      used_ += m;
      s += m;
      n -= m;
    }
  }
  template <class F>
  void each(F&& f) const {
    for (size_t i = 0; i < blocks_.size(); ++i) f(blocks_[i].data(), i + 1 < blocks_.size() ? kBlock : used_);
  }

 private:
  static constexpr size_t kBlock = size_t(1) << 20;
  std::vector<pool::Array<char>> blocks_;
  size_t used_ = 0;
};

// About the bytes of j's text: its strings' and keys' lengths and a few bytes per value.
size_t approx_text(const nlohmann::json& j) {
  if (j.is_string()) return j.get_ref<const std::string&>().size() + 2;
  size_t n = 8;
  if (j.is_object())
    for (auto it = j.cbegin(); it != j.cend(); ++it) n += it.key().size() + approx_text(it.value());
  else if (j.is_array())
    for (const nlohmann::json& e : j) n += approx_text(e);
  return n;
}

// Where a long array of objects near the top of the document (parsing_json's instances: a 12-megapixel
// photo's ~100 masks, ~11 MB of RLE text) is cut in two about equal halves of text, to be laid out side
// by side on two threads; j.size() (no cut) for any other array, with one thread, or inside a parallel region.
size_t second_half(const nlohmann::json& j, unsigned indent) {
  const size_t n = j.size();
  if (indent > 2 || n < 8 || !j[0].is_object() || omp_get_max_threads() < 2 || omp_in_parallel()) return n;
  std::vector<size_t> w(n);
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += w[i] = approx_text(j[i]);
  if (total < (size_t(1) << 20)) return n;  // small: the threads' start costs more than they save
  size_t i = 0;
  for (size_t acc = 0; i + 1 < n && acc + w[i] <= total / 2; ++i) acc += w[i];
  return std::max<size_t>(i, 1);
}

// j as serializer::dump(j, pretty, ensure_ascii false, indent 2, `indent`) writes it, the layout of
// objects and arrays repeated here and every scalar, and every string that needs escapes, left to it.
void dump_pretty(nlohmann::detail::serializer<nlohmann::json>& s, ChunkedOutput& o, const nlohmann::json& j,
                 unsigned indent) {
  static const std::string spaces(512, ' ');
  auto pad_to = [&](ChunkedOutput& to, unsigned n) {
    for (; n > spaces.size(); n -= (unsigned)spaces.size()) to.write_characters(spaces.data(), spaces.size());
    to.write_characters(spaces.data(), n);
  };
  auto pad = [&](unsigned n) { pad_to(o, n); };
  auto string = [&](const std::string& t) {
    if (!printable_ascii(t)) return s.dump(nlohmann::json(t), true, false, 2, indent);
    o.write_character('"');
    o.write_escaped(t.data(), t.size());
    o.write_character('"');
  };
  if (j.is_object() && !j.empty()) {
    o.write_characters("{\n", 2);
    size_t i = 0;
    for (auto it = j.cbegin(); it != j.cend(); ++it, ++i) {
      pad(indent + 2);
      string(it.key());
      o.write_characters(": ", 2);
      dump_pretty(s, o, it.value(), indent + 2);
      if (i + 1 < j.size()) o.write_characters(",\n", 2);
    }
    o.write_character('\n');
    pad(indent);
    o.write_character('}');
  } else if (j.is_array() && !j.empty()) {
    o.write_characters("[\n", 2);
    const size_t n = j.size(), split = second_half(j, indent);
    // elements [from, to) as the loop lays them out, each but the array's last followed by ",\n"
    auto elements = [&](nlohmann::detail::serializer<nlohmann::json>& es, ChunkedOutput& eo, size_t from, size_t to) {
      for (size_t i = from; i < to; ++i) {
        pad_to(eo, indent + 2);
        dump_pretty(es, eo, j[i], indent + 2);
        if (i + 1 < n) eo.write_characters(",\n", 2);
      }
    };
    if (split == n) {
      elements(s, o, 0, n);
    } else {
      // The elements from `split` on are laid out beside the first ones, by a second thread into text of
      // their own, written after them: the same bytes; an error in the first part is thrown before one in
      // the second, as the loop would.
      PooledText tail;
      std::exception_ptr head_error, tail_error;
#pragma omp parallel sections num_threads(2)
      {
#pragma omp section
        {
          try {
            elements(s, o, 0, split);
          } catch (...) {
            head_error = std::current_exception();
          }
        }
#pragma omp section
        {
          try {
            const std::function<void(const void*, size_t)> append = [&tail](const void* d, size_t m) {
              tail.append(static_cast<const char*>(d), m);
            };
            auto sink = std::make_shared<ChunkedOutput>(append);
            nlohmann::detail::serializer<nlohmann::json> es(sink, ' ', nlohmann::json::error_handler_t::strict);
            elements(es, *sink, split, n);
            sink->flush();
          } catch (...) {
            tail_error = std::current_exception();
          }
        }
      }
      if (head_error) std::rethrow_exception(head_error);
      if (tail_error) std::rethrow_exception(tail_error);
      tail.each([&](const char* p, size_t m) { o.write_characters(p, m); });
    }
    o.write_character('\n');
    pad(indent);
    o.write_character(']');
  } else if (j.is_string()) {
    string(j.get_ref<const std::string&>());
  } else {
    s.dump(j, true, false, 2, indent);
  }
}
}  // namespace

void write_json_file(const std::string& path, const nlohmann::json& j) {
  write_file_atomic(path, [&](const std::function<void(const void*, size_t)>& out) {
    auto sink = std::make_shared<ChunkedOutput>(out);
    nlohmann::detail::serializer<nlohmann::json> s(sink, ' ', nlohmann::json::error_handler_t::strict);
    dump_pretty(s, *sink, j, 0);  // as j.dump(2), byte for byte (Report.JsonFileIsTheDumpByteForByte)
    sink->write_character('\n');
    sink->flush();
  });
}

nlohmann::json parsing_json(const Parsing& p) {
  // The masks' RLE first, one instance per thread at a time (a 12-megapixel photo's 100 masks)
  std::vector<nlohmann::json> masks(p.instances.size());
#pragma omp parallel for schedule(dynamic, 1) if (p.instances.size() > 1 && (size_t)p.width * p.height > 65536)
  for (size_t i = 0; i < p.instances.size(); ++i) masks[i] = instance_rle(p.instances[i], p.width, p.height);
  return parsing_json(p, std::move(masks));
}

nlohmann::json parsing_json(const Parsing& p, std::vector<nlohmann::json>&& masks) {
  if (masks.size() != p.instances.size())
    throw std::invalid_argument("parsing_json: " + std::to_string(masks.size()) + " masks for " +
                                std::to_string(p.instances.size()) + " instances");
  nlohmann::json j;
  j["instances"] = nlohmann::json::array();
  for (size_t i = 0; i < p.instances.size(); ++i) {
    const Instance& in = p.instances[i];
    nlohmann::json e;
    e["kind"] = in.kind == Instance::Kind::Human ? "human" : "part";
    e["category_id"] = in.category_id;
    e["label"] = in.label;
    e["score"] = in.score;
    e["area"] = in.area;
    e["bbox"] = bbox_json(in.bbox);
    e["query"] = in.query;
    if (in.kind == Instance::Kind::Part) e["person"] = in.person;
    e["mask"] = std::move(masks[i]);
    j["instances"].push_back(std::move(e));
  }
  j["persons"] = nlohmann::json::array();
  for (size_t k = 0; k < p.persons.size(); ++k) {
    const Person& ps = p.persons[k];
    nlohmann::json e;
    e["id"] = k;
    e["instance"] = ps.instance;
    e["score"] = ps.score;
    e["bbox"] = bbox_json(ps.bbox);
    e["area"] = ps.area;
    e["parts"] = nlohmann::json::array();
    for (int idx : ps.parts) {
      const Instance& in = p.instances[idx];
      e["parts"].push_back({{"instance", idx}, {"label", in.label}, {"category_id", in.category_id},
                            {"score", in.score}, {"area", in.area}});
    }
    j["persons"].push_back(e);
  }
  add_label_shares(j, p);
  return j;
}

void add_label_set_keys(nlohmann::json& doc, const Parsing& p, LabelSet s) {
  if (s == LabelSet::Cihp) return;
  const std::vector<std::string> names = label_set_classes(s, p.class_names);
  auto set_keys = [&](nlohmann::json& e, bool human) {
    const int id = human ? -1 : map_label(s, e.at("category_id").get<int>(), p.class_names);
    e["set_category_id"] = id;
    e["set_label"] = id > 0 ? nlohmann::json(names[(size_t)id]) : nlohmann::json(nullptr);
  };
  if (doc.contains("instances"))
    for (nlohmann::json& e : doc["instances"]) set_keys(e, e.value("kind", "") == "human");
  if (doc.contains("persons"))
    for (nlohmann::json& person : doc["persons"]) {
      if (person.contains("parts"))
        for (nlohmann::json& part : person["parts"]) set_keys(part, false);
      if (person.contains("garments"))
        for (nlohmann::json& g : person["garments"]) {
          nlohmann::json set_labels = nlohmann::json::array();
          for (const auto& l : g.value("labels", nlohmann::json::array())) {
            const auto it = std::find(p.class_names.begin(), p.class_names.end(), l.get<std::string>());
            const int id = it == p.class_names.end() ? 0 : map_label(s, (int)(it - p.class_names.begin()), p.class_names);
            if (id > 0 && std::find(set_labels.begin(), set_labels.end(), names[(size_t)id]) == set_labels.end())
              set_labels.push_back(names[(size_t)id]);
          }
          g["set_labels"] = std::move(set_labels);
        }
    }
  add_label_shares(doc, in_label_set(p, s));
}

nlohmann::json legend_json(const Parsing& p) {
  const std::vector<Rgb> palette = parsing_palette(256);
  nlohmann::json j = nlohmann::json::array();
  for (size_t c = 1; c < p.label_fractions.size() && c < palette.size(); ++c) {
    if (!(p.label_fractions[c] > 0)) continue;
    char hex[8];
    std::snprintf(hex, sizeof hex, "#%02x%02x%02x", palette[c][0], palette[c][1], palette[c][2]);
    j.push_back({{"id", c},
                 {"label", c < p.class_names.size() ? p.class_names[c] : std::to_string(c)},
                 {"color", hex},
                 {"fraction", p.label_fractions[c]}});
  }
  return j;
}

void add_person_garments(nlohmann::json& parsing, const std::vector<PersonOutfit>& outfits) {
  nlohmann::json& persons = parsing["persons"];
  if (!persons.is_array()) persons = nlohmann::json::array();
  if (persons.empty()) {
    // Single-person mode: the outfit library treats the whole photo as person 0.
    for (const PersonOutfit& o : outfits) {
      nlohmann::json e = to_json(o);
      e["id"] = o.person;
      e["parts"] = nlohmann::json::array();
      persons.push_back(e);
    }
    return;
  }
  for (nlohmann::json& e : persons) e["garments"] = nlohmann::json::array();
  for (const PersonOutfit& o : outfits)
    if (o.person >= 0 && (size_t)o.person < persons.size())
      persons[(size_t)o.person]["garments"] = to_json(o)["garments"];
}

nlohmann::json timings_json(const StageTimings& t) {
  return {{"decode", t.decode_ms},
          {"preprocess", t.preprocess_ms},
          {"backbone", t.backbone_ms},
          {"pixel_decoder", t.pixel_decoder_ms},
          {"transformer_decoder", t.transformer_decoder_ms},
          {"postprocess", t.postprocess_ms},
          {"total", t.total_ms}};
}

}  // namespace m2fp::service
