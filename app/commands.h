// app/commands.h: the sub-commands of `m2fp`; each describes its options in a CommandSpec (app/args.h),
// which `m2fp <command> --help` prints.
#pragma once

#include "app/args.h"

namespace m2fp::app {

int cmd_parse(int argc, char** argv);    // m2fp parse --model FILE --out DIR [options] IMAGE|DIR...
int cmd_info(int argc, char** argv);     // m2fp info --model FILE
int cmd_inspect(int argc, char** argv);  // m2fp inspect --model FILE [--height H --width W]
int cmd_serve(int argc, char** argv);    // m2fp serve --model FILE [--port 5000] [options]
int cmd_catalog(int argc, char** argv);  // m2fp catalog import FILE.csv | list | info [--catalog FILE.db]
int usage(bool error);
int print_help(const CommandSpec& spec);  // help_text(spec) on stdout; returns 0

}  // namespace m2fp::app
