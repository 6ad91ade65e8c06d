// app/server/request.cpp: bodies, fields, uploads and recommendation options from HTTP requests.
#include "app/server/request.h"

#include <algorithm>
#include <cstdlib>

#include "app/server/http.h"
#include "service/numbers.h"
#include "service/sha256.h"

namespace m2fp::app {

const Body::Part* Body::part(const std::string& name) const {
  for (const Part& p : parts)
    if (p.name == name) return &p;
  return nullptr;
}

bool Body::has_image() const { return multipart ? part("image") != nullptr : !raw.empty(); }

Body read_body(const httplib::Request& req, const httplib::ContentReader& reader, size_t max_upload_bytes) {
  Body b;
  b.multipart = req.is_multipart_form_data();
  const size_t limit = max_upload_bytes;
  auto keep = [&b, limit](std::string& dst, const char* data, size_t n) {
    b.total += n;
    if (b.total > limit) b.overflow = true;  // keep reading (and dropping) to the end of the body
    else dst.append(data, n);
    return true;
  };
  const std::string te = req.get_header_value("Transfer-Encoding");
  if (!req.has_header("Content-Length") && te.find("chunked") == std::string::npos)
    return b;  // no framing: no body (RFC 9112 6.3), and nothing to read
  bool ok;
  if (b.multipart) {
    ok = reader(
        [&b](const httplib::MultipartFormData& f) {
          b.parts.push_back({f.name, f.filename, f.content_type, {}});
          return true;
        },
        [&b, &keep](const char* data, size_t n) { return b.parts.empty() ? true : keep(b.parts.back().content, data, n); });
  } else {
    ok = reader([&b, &keep](const char* data, size_t n) { return keep(b.raw, data, n); });
  }
  const std::string cl = req.get_header_value("Content-Length");
  if (b.overflow || (!cl.empty() && std::strtoull(cl.c_str(), nullptr, 10) > limit))
    throw HttpError(413, "upload larger than the limit of " + human_bytes(limit) +
                             (cl.empty() ? std::string() : " (Content-Length " + cl + ")"));
  if (!ok)
    throw HttpError(400, b.multipart ? "malformed multipart/form-data body"
                                     : "the request body could not be read (truncated or malformed)");
  return b;
}

std::string field(const httplib::Request& req, const Body& b, const std::string& name) {
  if (req.has_param(name)) return req.get_param_value(name);
  if (const Body::Part* p = b.part(name)) return p->content;
  return "";
}

Upload read_upload(const httplib::Request& req, Body& b, int64_t max_pixels) {
  std::string bytes;
  if (b.multipart) {
    Body::Part* image = nullptr;
    size_t images = 0;
    for (Body::Part& p : b.parts)
      if (p.name == "image") {
        image = &p;
        ++images;
      }
    if (!image) {
      std::string names;
      for (const Body::Part& p : b.parts) names += (names.empty() ? "" : ", ") + p.name;
      throw HttpError(400, "the multipart body has no field 'image'" +
                               (names.empty() ? std::string(" (no fields at all)") : " (fields: " + names + ")"));
    }
    if (images > 1)
      throw HttpError(400, std::to_string(images) + " photos (fields 'image') in one request: " + req.path +
                               " takes one photo; send several to POST /batch");
    bytes = std::move(image->content);
  } else {
    const std::string ct = req.get_header_value("Content-Type");
    if (ct.rfind("application/x-www-form-urlencoded", 0) == 0)
      throw HttpError(415,
                      "a form-urlencoded body cannot carry a photo: send it as multipart field 'image' or as the "
                      "raw body with Content-Type image/jpeg, image/png or application/octet-stream");
    bytes = std::move(b.raw);
  }
  return check_upload(std::move(bytes), max_pixels);
}

std::vector<std::string> read_batch_photos(const httplib::Request& req, Body& b) {
  std::vector<std::string> photos;
  if (b.multipart) {
    for (Body::Part& p : b.parts)
      if (p.name == "image") photos.push_back(std::move(p.content));
    if (photos.empty()) {
      std::string names;
      for (const Body::Part& p : b.parts) names += (names.empty() ? "" : ", ") + p.name;
      throw HttpError(400, "the multipart body has no field 'image': a batch is one field 'image' per photo" +
                               (names.empty() ? std::string(" (no fields at all)") : " (fields: " + names + ")"));
    }
    return photos;
  }
  const std::string ct = req.get_header_value("Content-Type");
  if (ct.rfind("application/x-www-form-urlencoded", 0) == 0)
    throw HttpError(415, "a form-urlencoded body cannot carry photos: send each as a multipart field 'image'");
  if (b.raw.empty())
    throw HttpError(400, "empty batch: send each photo as a multipart field 'image' (curl -F image=@a.jpg -F "
                         "image=@b.jpg)");
  photos.push_back(std::move(b.raw));
  return photos;
}

Upload check_upload(std::string bytes, int64_t max_pixels) {
  if (bytes.empty())
    throw HttpError(400, "empty upload: send the photo as multipart field 'image' or as the raw request body");
  Upload up;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  up.format = sniff_image_format(data, bytes.size());
  if (up.format == ImageFormat::Unknown)
    throw HttpError(415, "not an image: PNG, JPEG or BMP expected (the first bytes match no image signature)");
  if (up.format != ImageFormat::Png && up.format != ImageFormat::Jpeg && up.format != ImageFormat::Bmp)
    throw HttpError(415, std::string(image_format_name(up.format)) + " images are not supported: send PNG, JPEG or BMP");
  // A header claiming more than --max-pixels is refused here, before the photo takes a place in the
  // queue (found by tests/load: such uploads waited behind real photos and got 429). The worker's
  // decode_image makes this check again, with every other one; this is only the early answer.
  ImageHeader head;
  const int64_t hw = read_image_header(data, bytes.size(), &head) ? head.width : 0;
  const int64_t hh = head.height;
  if ((uint64_t)hw * (uint64_t)hh > (uint64_t)max_pixels)
    throw HttpError(400, "bad image: its header says " + std::to_string(hw) + "x" + std::to_string(hh) + " = " +
                             std::to_string((uint64_t)hw * (uint64_t)hh) + " pixels, more than the limit of " +
                             std::to_string(max_pixels) + " (--max-pixels)");
  up.sha = service::sha256_hex(bytes.data(), bytes.size());
  up.bytes = std::make_shared<const std::string>(std::move(bytes));
  return up;
}

namespace {
// An integer field in [lo, hi]; `dflt` when absent; 400 naming the range otherwise.
int int_field(const httplib::Request& req, const Body& b, const std::string& name, int lo, int hi, int dflt,
              const std::string& why = "") {
  const std::string v = field(req, b, name);
  if (v.empty()) return dflt;
  const std::optional<long> n = service::parse_integer(v);
  if (!n || *n < lo || *n > hi)
    throw HttpError(400, name + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]" +
                             why + ", got '" + v.substr(0, 64) + "'");
  return (int)*n;
}
}  // namespace

RecommendOptions read_reco(const httplib::Request& req, const Body& b, const Rules& rules) {
  RecommendOptions ro;
  ro.style = field(req, b, "style");
  ro.occasion = field(req, b, "occasion");
  ro.season = field(req, b, "season");
  ro.k = int_field(req, b, "k", 0, 50, ro.k);
  const std::string mp = field(req, b, "max_price");
  if (!mp.empty()) {
    const std::optional<double> v = service::parse_finite(mp);
    if (!v || !(*v >= 0)) throw HttpError(400, "max_price must be a number >= 0, got '" + mp + "'");
    ro.max_price = *v;
  }
  try {
    check_recommend_options(ro, rules);
  } catch (const std::invalid_argument& e) {
    throw HttpError(400, e.what());
  }
  return ro;
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

namespace {


const char* mask_format_name(service::MaskFormat f) {
  switch (f) {
    case service::MaskFormat::Rle: return "rle";
    case service::MaskFormat::None: return "none";
    case service::MaskFormat::Png: break;
  }
  return "png";
}

}  // namespace

service::AnalysisOptions read_analysis_options(const httplib::Request& req, const Body& b, const ParseLimits& lim) {
  service::AnalysisOptions ao;
  try {
    ao.refine = service::parse_refine(field(req, b, "refine"));
  } catch (const service::OptionError& e) {
    throw HttpError(400, std::string("refine ") + e.what());
  }
  const std::string s = field(req, b, "smooth_edges");
  if (s == "1" || s == "true" || s == "yes" || s == "on") ao.smooth_edges = true;
  else if (!(s.empty() || s == "0" || s == "false" || s == "no" || s == "off"))
    throw HttpError(400, "smooth_edges must be 1 or 0 (true/false, yes/no, on/off), got '" + s.substr(0, 64) + "'");
  ao.short_edge = int_field(req, b, "short_edge", kMinResize, lim.short_edge, lim.short_edge,
                            " (the server's --short-edge is the most a request may ask)");
  ao.max_size = int_field(req, b, "max_size", kMinResize, lim.max_size, lim.max_size,
                          " (the server's --max-size is the most a request may ask)");
  return ao;
}

service::PredictForm read_predict_form(const httplib::Request& req, const Body& b,
                                       const std::vector<std::string>& classes) {
  service::PredictForm form;
  try {
    form.format = service::parse_mask_format(field(req, b, "mask_format"));
    form.label_set = service::parse_label_set(field(req, b, "label_set"));
    form.masks_union = service::parse_union_names(field(req, b, "masks_union"), classes);
  } catch (const std::invalid_argument& e) {
    throw HttpError(400, e.what());
  }
  form.dilate = int_field(req, b, "mask_dilate", 0, kMaxMaskDilate, 0);
  return form;
}

nlohmann::json options_json(const service::AnalysisOptions& ao, const service::PredictForm* form) {
  nlohmann::json refine = nlohmann::json::array();
  if (ao.refine.dark) refine.push_back("dark");
  if (ao.refine.small) refine.push_back("small");
  nlohmann::json j = {{"short_edge", ao.short_edge}, {"max_size", ao.max_size}, {"smooth_edges", ao.smooth_edges},
                      {"refine", refine}};
  if (form) {
    j["mask_format"] = mask_format_name(form->format);
    j["label_set"] = service::label_set_name(form->label_set);
    j["masks_union"] = form->masks_union;
    j["mask_dilate"] = form->dilate;
  }
  return j;
}

}  // namespace m2fp::app
