// app/main.cpp: the `m2fp` command: sub-command dispatch, --version and error reporting.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

// Generated at configure time (cmake/m2fp_build_info.h.in), from the build folder.
#include <m2fp_build_info.h>

#include "app/args.h"
#include "app/commands.h"
#include "engine/dnn.h"
#include "kernels/kernels.h"

namespace m2fp::app {

int usage(bool error) {
  std::fprintf(error ? stderr : stdout,
               "usage: m2fp <command> [options]\n"
               "\n"
               "commands:\n"
               "  parse     parse photos (files or folders) into result.json, labels.png, persons.png, parsing.png,\n"
               "            labels_color.png and masks, one folder per photo (docs/OUTPUTS.md)\n"
               "  serve     the outfit service: web page at /, POST /predict, /recommend, /jobs; GET /health,\n"
               "            /metrics (docs/SERVICE.md)\n"
               "  catalog   import FILE.csv | list | info: the product catalogue recommendations come from\n"
               "  info      a model file's configuration and parameter counts\n"
               "  inspect   the layer table: output shapes and multiply-adds per stage for a photo size\n"
               "  version   the version, commit, oneDNN version and the instruction set used (also --version)\n"
               "\n"
               "`m2fp <command> --help` lists the command's options with their meanings, defaults and units.\n"
               "\n"
               "environment: M2FP_ISA=scalar|avx2|avx512 forces a kernel path; OMP_NUM_THREADS as --threads;\n"
               "  M2FP_CATALOG: the catalogue without --catalog (default data/catalog.db in the current folder,\n"
               "  created from outfit/data/seed_catalog.csv on first use); M2FP_OUTFIT_DATA: the outfit tables\n");
  return error ? 2 : 0;
}

int print_help(const CommandSpec& spec) {
  std::fputs(help_text(spec).c_str(), stdout);
  return 0;
}

// m2fp --version: what was built from what, and what it runs on this CPU.
int version() {
  const char* isa = kern::isa_name(kern::active_isa());
  std::printf("m2fp %s (commit %s, %s build)\n", M2FP_BUILD_VERSION, M2FP_BUILD_COMMIT, M2FP_BUILD_TYPE);
  std::printf("oneDNN %s (convolutions and matmuls; runs %s on this CPU)\n", dnn::onednn_version().c_str(),
              dnn::onednn_isa());
  std::printf("kernels: %s on this CPU (%s; M2FP_ISA=scalar|avx2|avx512 forces a path)\n", isa,
              std::getenv("M2FP_ISA") ? "forced by M2FP_ISA" : "the best one it supports");
  std::printf("bf16: %s\n", dnn::bf16_available() ? "available (--precision bf16)" : "not available on this CPU");
  return 0;
}

}  // namespace m2fp::app

int main(int argc, char** argv) {
  using namespace m2fp::app;
  if (argc < 2) return usage(true);
  const std::string cmd = argv[1];
  try {
    if (cmd == "-h" || cmd == "--help" || cmd == "help") return usage(false);
    if (cmd == "--version" || cmd == "-V" || cmd == "version") {
      if (argc > 2) throw UsageError(std::string("unexpected argument '") + argv[2] + "'");
      return version();
    }
    if (cmd == "parse") return cmd_parse(argc, argv);
    if (cmd == "info") return cmd_info(argc, argv);
    if (cmd == "inspect") return cmd_inspect(argc, argv);
    if (cmd == "serve") return cmd_serve(argc, argv);
    if (cmd == "catalog") return cmd_catalog(argc, argv);
    std::fprintf(stderr, "m2fp: unknown command '%s'\n", cmd.c_str());
    return usage(true);
  } catch (const UsageError& e) {
    const bool known = cmd == "parse" || cmd == "info" || cmd == "inspect" || cmd == "serve" || cmd == "catalog";
    std::fprintf(stderr, "m2fp %s: %s (see m2fp %s--help)\n", cmd.c_str(), e.what(),
                 known ? (cmd + " ").c_str() : "");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "m2fp %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
