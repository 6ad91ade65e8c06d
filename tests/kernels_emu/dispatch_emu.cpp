// tests/kernels_emu/dispatch_emu.cpp: the real kernels/dispatch.cpp (the per-ISA tables, path
// selection, M2FP_ISA), compiled for the emulated test build with M2FP_EMULATED_AVX512, so
// that it reports the avx512 table, built here on SIMDe (tests/kernels_emu/avx512_on_simde.h), as
// supported wherever AVX2 is. The library the engine links (m2fp_kernels) is built from the same
// file without the macro and still requires real AVX-512 (checked by test_real_dispatch.cpp).
#include "tests/kernels_emu/avx512_on_simde.h"

#define M2FP_EMULATED_AVX512 1
#include "kernels/dispatch.cpp"
