/* m2fp.h: the C API of m2fp.cpp (M2FP human parsing on the CPU). docs/API.md is its manual.
 *
 *   char *err = NULL;
 *   m2fp_model *m = m2fp_load("m2fp_cihp.safetensors", "threads=4", &err);
 *   if (!m) { fprintf(stderr, "%s\n", err); m2fp_string_free(err); return 1; }
 *   m2fp_result *r = m2fp_parse_file(m, "photo.jpg", &err);
 *   ... m2fp_result_labels(r)[y * m2fp_result_width(r) + x] ...
 *   m2fp_result_free(r);
 *   m2fp_model_free(m);
 *
 * Errors: a function that fails returns NULL and, when `error` is not NULL, sets *error to a message
 * the caller frees with m2fp_string_free (*error is set to NULL on success). No C++ exception crosses
 * this boundary, and nothing here calls exit or abort on bad input.
 *
 * Threads: one model may be used from several threads at once; the m2fp_parse_* calls then run in
 * parallel (each on its own OpenMP team of `threads` threads), none queues behind another. A result is
 * independent of its model: it may outlive it, and freeing it never touches the model.
 */
#ifndef M2FP_H
#define M2FP_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define M2FP_API
#elif defined(__GNUC__)
#define M2FP_API __attribute__((visibility("default")))
#else
#define M2FP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct m2fp_model m2fp_model;   /* a loaded model with its options */
typedef struct m2fp_result m2fp_result; /* one parsed photo */

/* The library's version, "MAJOR.MINOR.PATCH". */
M2FP_API const char *m2fp_version(void);

/* Loads a model (.safetensors). options: NULL or space-separated key=value:
 *   threads=N          OpenMP threads per parse (default: OpenMP's default, all cores)
 *   precision=fp32|bf16
 *   short_edge=N       multi-person resize, shorter side (default 640)
 *   max_size=N         multi-person resize, longer side cap (default 1333)
 *   isa=scalar|avx2|avx512  the kernels' path (process-wide; default: the best the CPU has)
 *   max_pixels=N       photos above N megapixels are refused before decoding (default 50)
 *   outfits=0|1        the outfit analysis in the result document (default 1)
 *   catalog=PATH       the catalogue for recommendations (default: as `m2fp parse`)
 *   prepare=WxH[,WxH...]|common  prepare the network at load for photos of these sizes (width x
 *                      height; common: 4:3, 3:2, 16:9 landscape and portrait): their first parse
 *                      then creates no oneDNN primitive (default: none)
 *   warm_up=0|1        with prepare: also run one blank parse per prepared size at load, so that
 *                      the first parse runs as fast as later ones (default 0)
 * Returns NULL on failure (unknown option, bad value, missing or invalid model file). */
M2FP_API m2fp_model *m2fp_load(const char *model_path, const char *options, char **error);
M2FP_API void m2fp_model_free(m2fp_model *model);

/* Parses a photo: a file, encoded bytes (PNG/JPEG/BMP), or RGB pixels (3 bytes a pixel, rows
 * row_stride bytes apart, row_stride >= 3 * width). Returns NULL on failure. */
M2FP_API m2fp_result *m2fp_parse_file(m2fp_model *model, const char *image_path, char **error);
M2FP_API m2fp_result *m2fp_parse_memory(m2fp_model *model, const void *bytes, size_t size, char **error);
M2FP_API m2fp_result *m2fp_parse_rgb(m2fp_model *model, const uint8_t *rgb, int width, int height,
                                     size_t row_stride, char **error);

/* The photo's size (EXIF orientation applied). */
M2FP_API int m2fp_result_width(const m2fp_result *r);
M2FP_API int m2fp_result_height(const m2fp_result *r);
/* height * width class ids, row-major, at the photo's size (0 = background). */
M2FP_API const uint8_t *m2fp_result_labels(const m2fp_result *r);
/* height * width person index per pixel: 0 = nobody, k = the k-th entry of the document's "persons". */
M2FP_API const uint16_t *m2fp_result_persons(const m2fp_result *r);
/* The result document, the same as `m2fp parse` writes as result.json (UTF-8 JSON; "image.file" is
 * null for bytes and pixels, "outputs" is empty). Owned by the result. */
M2FP_API const char *m2fp_result_json(const m2fp_result *r);
/* Outputs derived from a result on request (docs/API.md): label sets and named union masks, the same
 * as `m2fp parse --label-set / --masks` and /predict's label_set= / masks_union= give. `request` is
 * space-separated key=value, one of:
 *   labels=SET               the label map in label set SET (cihp | lip | atr): height * width ids
 *   mask=NAME [dilate=N]     a named union mask (docs/LABELS.md: upper_body, lower_body, dresses,
 *                            agnostic, clothes, hair, face, skin, label:A+B...), height * width bytes
 *                            0/255, dilated by a square of radius N pixels (0..1024, default 0)
 *   json=SET                 the result document with label set SET's keys (docs/OUTPUTS.md: the
 *                            label shares in the set's names, set_category_id / set_label, "label_set"),
 *                            UTF-8 JSON, NUL-terminated (not counted in *size)
 * Returns a new buffer the caller frees with m2fp_string_free, its length in bytes in *size (when
 * size is not NULL); NULL on failure (bad request, unknown set or mask name). */
M2FP_API void *m2fp_result_output(const m2fp_result *r, const char *request, size_t *size, char **error);
M2FP_API void m2fp_result_free(m2fp_result *r);

/* Frees a string this library returned through an `error` argument, or a buffer of
 * m2fp_result_output. NULL is ignored. */
M2FP_API void m2fp_string_free(char *s);

#ifdef __cplusplus
}
#endif

#endif /* M2FP_H */
