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
               "          [--threads N] [--precision fp32|bf16] [--smooth-edges] [--verbose]\n"
               "          [--refine dark,small] [--catalog FILE.db] [--k 5] [--style S] [--occasion O] [--season S] [--no-outfits]\n"
               "          [--label-set cihp|lip|atr] [--masks NAME[,NAME...]] [--mask-dilate PX] IMAGE...\n"
               "          parse photos: DIR/<image>/result.json (with garments and recommendations per\n"
               "          person), labels.png (palette), persons.png, parsing.png, labels_color.png,\n"
               "          masks/<NAME>.png (docs/OUTPUTS.md, docs/LABELS.md)\n"
               "  serve   --model FILE [--port 5000] [--host 127.0.0.1] [--catalog FILE.db] [--threads N]\n"
               "          [--workers N] [--queue 8] [--timeout 120] [--max-upload-mb 20] [--max-pixels 50]\n"
               "          [--cache-mb 256] [--short-edge 640] [--max-size 1333] [--precision fp32|bf16]\n"
               "          [--http-threads N] [--max-jobs 256] [--web-dir DIR] [--quiet]\n"
               "          [--cors ORIGIN[,ORIGIN...]|'*'] [--header-timeout 10] [--body-timeout 120]\n"
               "          [--keep-alive-timeout 5] [--keep-alive-max 100] [--max-conns-per-client 64]\n"
               "          the outfit service: web page at /, POST /predict, /recommend, /jobs; GET /health,\n"
               "          /metrics (docs/SERVICE.md); --port 0 picks a free port\n"
               "  catalog import FILE.csv | list [--json] | info   [--catalog FILE.db]\n"
               "          the product catalogue recommendations come from (SQLite)\n"
               "  info    --model FILE                 configuration, parameter counts\n"
               "  inspect --model FILE [--height H --width W]\n"
               "          layer table: output shapes and multiply-adds per stage for a photo size\n"
               "\n"
               "environment: M2FP_ISA=scalar|avx2|avx512 forces a kernel path; OMP_NUM_THREADS as --threads;\n"
               "  M2FP_CATALOG: the catalogue without --catalog (default data/catalog.db in the current folder,\n"
               "  created from outfit/data/seed_catalog.csv on first use); M2FP_OUTFIT_DATA: the outfit tables\n");
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
    if (cmd == "serve") return cmd_serve(argc, argv);
    if (cmd == "catalog") return cmd_catalog(argc, argv);
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
