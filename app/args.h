// app/args.h: the command-line parser of `m2fp` and bench_e2e: --key value, --key=value, --flag,
// positionals; typed getters whose errors name the option.
//
// A command describes itself once, in a CommandSpec: its synopsis and every option with its value's
// placeholder, default and meaning (with the unit). The same table builds the parser (an option
// not in it is an error) and `m2fp <command> --help` (help_text), and a getter called with a
// default other than the one the table shows throws std::logic_error, so the help cannot drift from
// what the command does (tests/cli/test_cli.py runs every command with its defaults).
#pragma once

#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "service/numbers.h"

namespace m2fp::app {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string name;   // without the leading "--"
  std::string value;  // the value's placeholder ("N", "FILE"); empty: a flag, which takes no value
  std::string def;    // the default as the getters receive it ("640"); empty: none (shown as such)
  std::string help;   // what it means, with its unit and range
};

struct CommandSpec {
  std::string synopsis;              // "m2fp parse --model FILE --out DIR [options] IMAGE|DIR..."
  std::string summary;               // what the command does, a few lines
  std::vector<OptionSpec> options;   // --help is added by help_text() and the parser
  std::string notes;                 // after the options (environment, files written); may be empty
};

// `m2fp <command> --help`: the synopsis, the summary, one entry per option ("--short-edge N" then
// its meaning and "default: 640" on the lines below), the notes.
inline std::string help_text(const CommandSpec& c) {
  std::string s = "usage: " + c.synopsis + "\n\n" + c.summary + "\n\noptions:\n";
  auto entry = [&s](const std::string& head, const std::string& help, const std::string& def, bool flag) {
    s += "  " + head + "\n";
    // the meaning, wrapped at 100 columns under a 6-space indent
    std::string line;
    size_t i = 0;
    while (i < help.size()) {
      size_t j = help.find(' ', i);
      if (j == std::string::npos) j = help.size();
      const std::string word = help.substr(i, j - i);
      if (!line.empty() && 6 + line.size() + 1 + word.size() > 100) {
        s += "      " + line + "\n";
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
      i = j + 1;
    }
    if (!line.empty()) s += "      " + line + "\n";
    const bool required = help.size() >= 8 && help.compare(help.size() - 8, 8, "required") == 0;
    if (!flag && !required) s += "      default: " + (def.empty() ? std::string("none") : def) + "\n";
  };
  for (const OptionSpec& o : c.options)
    entry("--" + o.name + (o.value.empty() ? "" : " " + o.value), o.help, o.def, o.value.empty());
  entry("--help", "print this text and exit", "", true);
  if (!c.notes.empty()) s += "\n" + c.notes + "\n";
  return s;
}

class Args {
 public:
  // The options of `spec` (and --help); the getters check their defaults against it.
  Args(int argc, char** argv, int first, const CommandSpec& spec)
      : Args(argc, argv, first, valued_of(spec), flags_of(spec)) {
    for (const OptionSpec& o : spec.options) defaults_[o.name] = o.def;
  }

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
    check_default(k, def);
    auto it = opts_.find(k);
    return it == opts_.end() ? def : it->second;
  }
  std::string require(const std::string& k) const {
    if (!has(k)) throw UsageError("missing required option --" + k);
    return raw(k);
  }
  int get_int(const std::string& k, int def, int lo, int hi) const {
    check_default(k, std::to_string(def));
    if (!has(k)) return def;
    const std::string v = raw(k);
    const std::optional<long> n = service::parse_integer(v);
    if (!n) throw UsageError("--" + k + " expects an integer, got '" + v + "'");
    if (*n < lo || *n > hi)
      throw UsageError("--" + k + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + v);
    return (int)*n;
  }
  // `def_text`: the default as the spec writes it ("0.5"), checked against it.
  double get_nonnegative(const std::string& k, double def, const std::string& def_text = "") const {
    if (!def_text.empty()) check_default(k, def_text);
    if (!has(k)) return def;
    const std::string v = raw(k);
    const std::optional<double> d = service::parse_finite(v);
    if (!d || !(*d >= 0)) throw UsageError("--" + k + " expects a non-negative number, got '" + v + "'");
    return *d;
  }
  // The value converted by `parse` (e.g. service::parse_precision), whose std::invalid_argument
  // message follows the option's name: "--precision must be fp32 or bf16, got 'fp8'".
  template <class Parse>
  auto get_parsed(const std::string& k, const std::string& def, Parse parse) const -> decltype(parse(def)) {
    const std::string v = get(k, def);  // checks the default
    try {
      return parse(v);
    } catch (const std::invalid_argument& e) {
      throw UsageError("--" + k + " " + e.what());
    }
  }
  const std::vector<std::string>& positional() const { return pos_; }

 private:
  static std::set<std::string> valued_of(const CommandSpec& spec) {
    std::set<std::string> v;
    for (const OptionSpec& o : spec.options)
      if (!o.value.empty()) v.insert(o.name);
    return v;
  }
  static std::set<std::string> flags_of(const CommandSpec& spec) {
    std::set<std::string> f = {"help"};
    for (const OptionSpec& o : spec.options)
      if (o.value.empty()) f.insert(o.name);
    return f;
  }
  std::string raw(const std::string& k) const {
    auto it = opts_.find(k);
    return it == opts_.end() ? std::string() : it->second;
  }
  // Built from a CommandSpec: the code's default must be the one --help shows.
  void check_default(const std::string& k, const std::string& def) const {
    auto it = defaults_.find(k);
    if (it != defaults_.end() && it->second != def)
      throw std::logic_error("--" + k + ": the code's default '" + def + "' differs from the one --help shows ('" +
                             it->second + "')");
  }

  std::map<std::string, std::string> defaults_;  // from a CommandSpec; empty otherwise
  std::map<std::string, std::string> opts_;
  std::vector<std::string> pos_;
};

}  // namespace m2fp::app
