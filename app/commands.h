// app/commands.h: the sub-commands of `m2fp`.
#pragma once

namespace m2fp::app {

int cmd_parse(int argc, char** argv);    // m2fp parse --model FILE --out DIR [options] IMAGE...
int cmd_info(int argc, char** argv);     // m2fp info --model FILE
int cmd_inspect(int argc, char** argv);  // m2fp inspect --model FILE [--height H --width W]
int usage(bool error);

// Applies --threads (OpenMP pool shared with oneDNN); 0 = all cores.
void set_threads(int n);

}  // namespace m2fp::app
