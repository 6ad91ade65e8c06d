// app/server/request.h: request decoding: the body (multipart or raw, within the upload limit), form
// fields, the photo upload (format and claimed size checked before it takes a place in the queue)
// and the recommendation options.
#pragma once

#include <httplib.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/image.h"
#include "outfit/recommend.h"
#include "service/analysis.h"

namespace m2fp::app {

// A request body as read through cpp-httplib's ContentReader: multipart parts or the raw bytes.
// Bytes beyond the upload limit are read and dropped, so the connection stays in step.
struct Body {
  struct Part {
    std::string name, filename, content_type, content;
  };
  bool multipart = false;
  std::vector<Part> parts;
  std::string raw;
  size_t total = 0;
  bool overflow = false;

  const Part* part(const std::string& name) const;
  bool has_image() const;  // a multipart field "image", or a raw body
};

struct Upload {
  std::shared_ptr<const std::string> bytes;
  std::string sha;  // SHA-256, lower-case hex
  ImageFormat format = ImageFormat::Unknown;
};

// The whole body, read with the upload limit (413) whatever its framing (Content-Length or chunked).
Body read_body(const httplib::Request& req, const httplib::ContentReader& reader, size_t max_upload_bytes);
// A form field: from the query string, else from a multipart part of that name; "" when absent.
std::string field(const httplib::Request& req, const Body& b, const std::string& name);
// The photo (multipart field "image" or the raw body): PNG, JPEG or BMP (415 otherwise), at most
// max_pixels by its header (400). Moves the bytes out of `b`.
Upload read_upload(const httplib::Request& req, Body& b, int64_t max_pixels);
// style, occasion, season, k, max_price; 400 for values the rules do not know.
RecommendOptions read_reco(const httplib::Request& req, const Body& b, const Rules& rules);
// refine (dark, small, "dark,small", all, none) and smooth_edges (1/0, true/false, yes/no, on/off);
// 400 for other values. Both default to off: the model's own answer.
service::AnalysisOptions read_analysis_options(const httplib::Request& req, const Body& b);
// A SHA-256 as 64 lower-case hex digits.
bool is_hex64(const std::string& s);

}  // namespace m2fp::app
