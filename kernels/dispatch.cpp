// kernels/dispatch.cpp: the one place that decides which ISA path runs.
//
// Each ISA's KernelTable is built here from kernels/ops.def. The best path the CPU and the OS
// support (kernels/cpu.h) is chosen once, unless M2FP_ISA=scalar|avx2|avx512 forces one. The
// threaded entry points that call the active table are in kernels/threaded.cpp.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "kernels/cpu.h"
#include "kernels/internal.h"

#if defined(M2FP_EMULATED_AVX512) && !defined(SIMDE_VERSION)
#error "M2FP_EMULATED_AVX512 is for the SIMDe-emulated test build only (tests/kernels_emu)"
#endif

namespace m2fp::kern {

// The three paths' tables, one entry per op of kernels/ops.def: in each ISA's namespace the op
// names are that ISA's functions (internal linkage: constexpr).
#define M2FP_KERNEL_OP(name, params) &name,
namespace ref {
constexpr KernelTable kTable{Isa::Scalar,
#include "kernels/ops.def"
};
}  // namespace ref
namespace avx2 {
constexpr KernelTable kTable{Isa::Avx2,
#include "kernels/ops.def"
};
}  // namespace avx2
namespace avx512 {
constexpr KernelTable kTable{Isa::Avx512,
#include "kernels/ops.def"
};
}  // namespace avx512
#undef M2FP_KERNEL_OP

namespace {

std::atomic<int> g_active{-1};

Isa choose() {
  const char* env = std::getenv("M2FP_ISA");
  if (env && *env) {
    Isa isa;
    if (!parse_isa(env, &isa))
      throw std::runtime_error(std::string("M2FP_ISA='") + env +
                               "' is not one of scalar, avx2, avx512");
    if (!isa_supported(isa))
      throw std::runtime_error(std::string("M2FP_ISA=") + env + " is not supported on this CPU");
    return isa;
  }
  return best_isa();
}

}  // namespace

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.avx2 && f.fma && f.os_avx;
    case Isa::Avx512:
#if defined(M2FP_EMULATED_AVX512)
      // Only in the test build tests/kernels_emu, whose avx512 table is compiled against SIMDe
      // (AVX2 underneath): it runs wherever AVX2 does. The real library never defines this.
      return f.avx2 && f.fma && f.os_avx;
#else
      return f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma && f.os_avx512;
#endif
  }
  return false;
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Scalar;
}

Isa active_isa() {
  int v = g_active.load(std::memory_order_acquire);
  if (v < 0) {
    v = (int)choose();
    g_active.store(v, std::memory_order_release);
  }
  return (Isa)v;
}

void set_active_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::runtime_error(std::string("ISA ") + isa_name(isa) + " is not supported on this CPU");
  g_active.store((int)isa, std::memory_order_release);
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

bool parse_isa(const char* s, Isa* out) {
  if (!std::strcmp(s, "scalar")) *out = Isa::Scalar;
  else if (!std::strcmp(s, "avx2")) *out = Isa::Avx2;
  else if (!std::strcmp(s, "avx512")) *out = Isa::Avx512;
  else return false;
  return true;
}

const KernelTable& table_for(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return avx2::kTable;
    case Isa::Avx512: return avx512::kTable;
    default: return ref::kTable;
  }
}

const KernelTable& active() { return table_for(active_isa()); }

}  // namespace m2fp::kern
