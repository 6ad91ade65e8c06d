// kernels/avx512/table.cpp: the avx512 path's KernelTable (see kernels/internal.h).
#include "kernels/internal.h"

namespace m2fp::kern {

const KernelTable& avx512_table() {
  static const KernelTable t = M2FP_KERNEL_TABLE(avx512, Isa::Avx512);
  return t;
}

}  // namespace m2fp::kern
