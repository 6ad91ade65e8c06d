// kernels/avx2/table.cpp: the avx2 path's KernelTable (see kernels/internal.h).
#include "kernels/internal.h"

namespace m2fp::kern {

const KernelTable& avx2_table() {
  static const KernelTable t = M2FP_KERNEL_TABLE(avx2, Isa::Avx2);
  return t;
}

}  // namespace m2fp::kern
