// app/main.cpp: the `m2fp` command: sub-command dispatch.
#include <cstdio>
#include <cstring>
#include <string>

namespace m2fp::app {
int usage(FILE* out);
}

int m2fp::app::usage(FILE* out) {
  std::fprintf(out,
               "usage: m2fp <command> [options]\n"
               "commands:\n"
               "  parse    --model FILE --out DIR [options] IMAGE...   parse photos\n"
               "  info     --model FILE                               configuration and parameter counts\n");
  return out == stdout ? 0 : 2;
}

int main(int argc, char** argv) {
  if (argc < 2) return m2fp::app::usage(stderr);
  const std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") return m2fp::app::usage(stdout);
  std::fprintf(stderr, "m2fp: unknown command '%s'\n", cmd.c_str());
  return m2fp::app::usage(stderr);
}
