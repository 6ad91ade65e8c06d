/* fuzz/stb_image_impl.c: stb_image's implementation compiled into the fuzz targets, so that its
 * decoders are instrumented (coverage feedback for libFuzzer, ASan and UBSan checks inside them).
 * The engine links Debian's prebuilt libstb; in a fuzz binary these definitions take precedence.
 * The header is the one libstb was built from (Debian's libstb-dev ships both). */
/* JPEG never reaches stb_image (engine/image.cpp decodes it with libjpeg-turbo): its JPEG decoder is
 * left out, so no coverage is spent on code the engine cannot run. */
#define STBI_NO_JPEG
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
