// app/main.cpp: the `m2fp` command: sub-command dispatch and error reporting.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "app/args.h"
#include "app/commands.h"

namespace m2fp::app {

int usage(bool error) {
  std::fprintf(error ? stderr : stdout,
               "usage: m2fp <command> [options]\n"
               "\n"
               "commands:\n"
               "  parse   --model FILE --out DIR [--dump-tensors] [--short-edge 640] [--max-size 1333]\n"
               "          [--threads N] [--precision fp32|bf16] [--smooth-edges] [--verbose] IMAGE...\n"
               "          parse photos: DIR/<image>/result.json, labels.png, parsing.png, labels_color.png\n"
               "  info    --model FILE                 configuration, parameter counts\n"
               "  inspect --model FILE [--height H --width W]\n"
               "          layer table: output shapes and multiply-adds per stage for a photo size\n"
               "\n"
               "environment: M2FP_ISA=scalar|avx2|avx512 forces a kernel path; OMP_NUM_THREADS as --threads\n");
  return error ? 2 : 0;
}

}  // namespace m2fp::app

int main(int argc, char** argv) {
  using namespace m2fp::app;
  if (argc < 2) return usage(true);
  const std::string cmd = argv[1];
  try {
    if (cmd == "-h" || cmd == "--help" || cmd == "help") return usage(false);
    if (cmd == "parse") return cmd_parse(argc, argv);
    if (cmd == "info") return cmd_info(argc, argv);
    if (cmd == "inspect") return cmd_inspect(argc, argv);
    std::fprintf(stderr, "m2fp: unknown command '%s'\n", cmd.c_str());
    return usage(true);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "m2fp %s: %s (see m2fp --help)\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "m2fp %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
