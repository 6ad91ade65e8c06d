// app/server/request.h: request decoding: the body (multipart or raw, within the upload limit), form
// fields, the photo upload (format and claimed size checked before it takes a place in the queue)
// and the recommendation options.
#pragma once

#include <httplib.h>
#include <nlohmann/json.hpp>

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

// The most a request may ask of the per-request parse options: the server's own resize (a request
// may ask for a smaller, faster network input, never a larger one than the operator sized for).
struct ParseLimits {
  int short_edge = 640, max_size = 1333;
};
constexpr int kMinResize = 32;      // the smallest short_edge / max_size a request may ask
constexpr int kMaxMaskDilate = 256;  // mask_dilate's range is 0..this

// The whole body, read with the upload limit (413) whatever its framing (Content-Length or chunked).
Body read_body(const httplib::Request& req, const httplib::ContentReader& reader, size_t max_upload_bytes);
// A form field: from the query string, else from a multipart part of that name; "" when absent.
std::string field(const httplib::Request& req, const Body& b, const std::string& name);
// The photo (multipart field "image" or the raw body): PNG, JPEG or BMP (415 otherwise), at most
// max_pixels by its header (400). Moves the bytes out of `b`. More than one field "image": 400
// naming POST /batch.
Upload read_upload(const httplib::Request& req, Body& b, int64_t max_pixels);
// Every photo of a batch, in order: each multipart field "image" (or the raw body as one photo),
// moved out of `b`; 400 when there is none. Not yet checked (check_upload).
std::vector<std::string> read_batch_photos(const httplib::Request& req, Body& b);
// One photo's early checks (empty 400, not an image 415, over max_pixels 400), and its SHA-256.
Upload check_upload(std::string bytes, int64_t max_pixels);
// style, occasion, season, k, max_price; 400 for values the rules do not know.
RecommendOptions read_reco(const httplib::Request& req, const Body& b, const Rules& rules);
// refine (dark, small, "dark,small", all, none), smooth_edges (1/0, true/false, yes/no, on/off),
// short_edge and max_size (integers in [kMinResize, the limit]); 400 naming the allowed values for
// others. refine and smooth_edges default to off (the model's own answer); short_edge and max_size
// are always set in the result, to the limit (the server's resize) when not asked.
service::AnalysisOptions read_analysis_options(const httplib::Request& req, const Body& b, const ParseLimits& lim);
// mask_format (png, rle, none), label_set (cihp, lip, atr), masks_union (names checked against
// `classes`), mask_dilate (0..kMaxMaskDilate); 400 naming the allowed values for others.
service::PredictForm read_predict_form(const httplib::Request& req, const Body& b,
                                       const std::vector<std::string>& classes);
// The options in effect, as answers echo them: {"short_edge", "max_size", "smooth_edges", "refine",
// and with a form: "mask_format", "label_set", "masks_union", "mask_dilate"}.
nlohmann::json options_json(const service::AnalysisOptions& ao, const service::PredictForm* form = nullptr);
// A SHA-256 as 64 lower-case hex digits.
bool is_hex64(const std::string& s);

}  // namespace m2fp::app
