// app/commands.h: the sub-commands of `m2fp`.
#pragma once

namespace m2fp::app {

int cmd_parse(int argc, char** argv);    // m2fp parse --model FILE --out DIR [options] IMAGE...
int cmd_info(int argc, char** argv);     // m2fp info --model FILE
int cmd_inspect(int argc, char** argv);  // m2fp inspect --model FILE [--height H --width W]
int cmd_serve(int argc, char** argv);    // m2fp serve --model FILE [--port 5000] [options]
int cmd_catalog(int argc, char** argv);  // m2fp catalog import FILE.csv | list | info [--catalog FILE.db]
int usage(bool error);

}  // namespace m2fp::app
