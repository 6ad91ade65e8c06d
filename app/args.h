// app/args.h: the command-line parser of `m2fp` and bench_e2e: --key value, --key=value, --flag,
// positionals; typed getters whose errors name the option.
#pragma once

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace m2fp::app {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  // `valued`: options that take a value; `flags`: options that do not. Anything else is an error.
  Args(int argc, char** argv, int first, const std::set<std::string>& valued,
       const std::set<std::string>& flags) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--") {
        for (++i; i < argc; ++i) pos_.push_back(argv[i]);
        break;
      }
      if (a.size() > 2 && a[0] == '-' && a[1] == '-') {
        std::string key = a.substr(2), val;
        const size_t eq = key.find('=');
        const bool has_eq = eq != std::string::npos;
        if (has_eq) {
          val = key.substr(eq + 1);
          key = key.substr(0, eq);
        }
        if (flags.count(key)) {
          if (has_eq) throw UsageError("option --" + key + " takes no value");
          opts_[key] = "1";
        } else if (valued.count(key)) {
          if (!has_eq) {
            if (i + 1 >= argc) throw UsageError("option --" + key + " needs a value");
            val = argv[++i];
          }
          opts_[key] = val;
        } else {
          throw UsageError("unknown option --" + key);
        }
      } else {
        pos_.push_back(a);
      }
    }
  }
  bool has(const std::string& k) const { return opts_.count(k) > 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = opts_.find(k);
    return it == opts_.end() ? def : it->second;
  }
  std::string require(const std::string& k) const {
    if (!has(k)) throw UsageError("missing required option --" + k);
    return get(k);
  }
  int get_int(const std::string& k, int def, int lo, int hi) const {
    if (!has(k)) return def;
    const std::string v = get(k);
    size_t used = 0;
    long n = 0;
    try {
      n = std::stol(v, &used);
    } catch (...) {
      used = 0;
    }
    if (used != v.size() || v.empty()) throw UsageError("--" + k + " expects an integer, got '" + v + "'");
    if (n < lo || n > hi)
      throw UsageError("--" + k + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v);
    return (int)n;
  }
  double get_nonnegative(const std::string& k, double def) const {
    if (!has(k)) return def;
    const std::string v = get(k);
    size_t used = 0;
    double d = -1;
    try {
      d = std::stod(v, &used);
    } catch (...) {
      used = 0;
    }
    if (v.empty() || used != v.size() || !(d >= 0) || !std::isfinite(d))
      throw UsageError("--" + k + " expects a non-negative number, got '" + v + "'");
    return d;
  }
  // The value converted by `parse` (e.g. service::parse_precision), whose std::invalid_argument
  // message follows the option's name: "--precision must be fp32 or bf16, got 'fp8'".
  template <class Parse>
  auto get_parsed(const std::string& k, const std::string& def, Parse parse) const -> decltype(parse(def)) {
    const std::string v = get(k, def);
    try {
      return parse(v);
    } catch (const std::invalid_argument& e) {
      throw UsageError("--" + k + " " + e.what());
    }
  }
  const std::vector<std::string>& positional() const { return pos_; }

 private:
  std::map<std::string, std::string> opts_;
  std::vector<std::string> pos_;
};

}  // namespace m2fp::app
