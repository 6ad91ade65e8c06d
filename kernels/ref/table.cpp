// kernels/ref/table.cpp: the scalar path's KernelTable (see kernels/internal.h).
#include "kernels/internal.h"

namespace m2fp::kern {

const KernelTable& scalar_table() {
  static const KernelTable t = M2FP_KERNEL_TABLE(ref, Isa::Scalar);
  return t;
}

}  // namespace m2fp::kern
