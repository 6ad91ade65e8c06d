// service/numbers.h: strict text-to-number parsing for the front doors' option readers (CLI flags,
// HTTP form fields, C API option strings), so that each accepts exactly the same texts: the whole
// text is the number, no spaces around it, no '+', no trailing characters, and it fits the type.
// Callers keep their own messages and ranges.
#pragma once

#include <charconv>
#include <cmath>
#include <optional>
#include <string_view>

namespace m2fp::service {

// A decimal integer ("-12", "300"); nullopt for anything else or out of long's range.
inline std::optional<long> parse_integer(std::string_view s) {
  long n = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

// A finite decimal number ("0.5", "12", "1e3"); nullopt for anything else, "inf" and "nan" included.
inline std::optional<double> parse_finite(std::string_view s) {
  double d = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || !std::isfinite(d)) return std::nullopt;
  return d;
}

}  // namespace m2fp::service
