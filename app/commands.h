// app/commands.h: the sub-commands of `m2fp`.
#pragma once

#include <string>

namespace m2fp::app {

int cmd_parse(int argc, char** argv);    // m2fp parse --model FILE --out DIR [options] IMAGE...
int cmd_info(int argc, char** argv);     // m2fp info --model FILE
int cmd_inspect(int argc, char** argv);  // m2fp inspect --model FILE [--height H --width W]
int cmd_serve(int argc, char** argv);    // m2fp serve --model FILE [--port 5000] [options]
int cmd_catalog(int argc, char** argv);  // m2fp catalog import FILE.csv | list | info [--catalog FILE.db]
int usage(bool error);

// Applies --threads (OpenMP pool shared with oneDNN); 0 = all cores.
void set_threads(int n);

// Where the product catalogue lives unless --catalog says otherwise: $M2FP_CATALOG if set, else
// data/catalog.db under the current folder (created, from outfit/data/seed_catalog.csv, on first use).
std::string default_catalog_path();

}  // namespace m2fp::app
