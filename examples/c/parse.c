/* examples/c/parse.c: parse one photo with the C API and print what is in it.
 *   parse MODEL.safetensors PHOTO */
#include <m2fp.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s MODEL PHOTO\n", argv[0]); return 2; }
  char *err = NULL;
  m2fp_model *model = m2fp_load(argv[1], "threads=2", &err);
  m2fp_result *r = model ? m2fp_parse_file(model, argv[2], &err) : NULL;
  if (!r) { fprintf(stderr, "m2fp: %s\n", err); m2fp_string_free(err); m2fp_model_free(model); return 1; }
  int w = m2fp_result_width(r), h = m2fp_result_height(r), counts[256] = {0}, persons = 0;
  for (long i = 0; i < (long)w * h; ++i) {
    counts[m2fp_result_labels(r)[i]]++;
    if (m2fp_result_persons(r)[i] > persons) persons = m2fp_result_persons(r)[i];
  }
  printf("m2fp %s: %dx%d, %d persons\n", m2fp_version(), w, h, persons);
  for (int c = 0; c < 256; ++c) if (counts[c]) printf("  class %d: %d pixels\n", c, counts[c]);
  m2fp_result_free(r);
  m2fp_model_free(model);
  return 0;
}
