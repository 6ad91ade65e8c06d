// tests/kernels_emu/test_real_dispatch.cpp: the REAL kernel library's dispatch (m2fp_kernels, not
// the emulated test build): AVX-512 is reported exactly when the CPU has AVX-512 F/BW/VL/DQ and the
// OS saves the ZMM/opmask state, which is checked here independently through libgcc's CPU model
// (__builtin_cpu_supports, which also reads XCR0), as is every field of kern::cpu_features(); and
// M2FP_ISA forcing an unsupported or unknown path is refused with a clear error instead of running
// AVX-512 code on a CPU without it.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <stdexcept>
#include <string>

#include "kernels/cpu.h"
#include "kernels/kernels.h"

namespace kern = m2fp::kern;
using kern::Isa;

namespace {

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("fma");
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

// The message of the exception fn throws ("" when it does not throw).
template <class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RealDispatch, ReportsTheCpu) {
  std::printf("  this CPU: avx2+fma %s, avx512 f/bw/vl/dq %s; best path: %s\n",
              cpu_has_avx2() ? "yes" : "no", cpu_has_avx512() ? "yes" : "no",
              kern::isa_name(kern::best_isa()));
  EXPECT_TRUE(kern::isa_supported(Isa::Scalar));
  EXPECT_EQ(kern::isa_supported(Isa::Avx2), cpu_has_avx2());
  EXPECT_EQ(kern::isa_supported(Isa::Avx512), cpu_has_avx512());
  EXPECT_EQ(kern::best_isa(), cpu_has_avx512() ? Isa::Avx512 : cpu_has_avx2() ? Isa::Avx2 : Isa::Scalar);
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) EXPECT_EQ(kern::table_for(isa).isa, isa);
}

// kern::cpu_features() (cpuid + XCR0) against libgcc's CPU model, which also requires the OS to
// save the ymm / zmm state before it reports AVX2 / AVX-512 features.
TEST(RealDispatch, CpuFeaturesMatchLibgcc) {
  const kern::CpuFeatures& f = kern::cpu_features();
  __builtin_cpu_init();
  EXPECT_EQ(f.avx2 && f.os_avx, (bool)__builtin_cpu_supports("avx2"));
  EXPECT_EQ(f.fma && f.os_avx, (bool)__builtin_cpu_supports("fma"));
  EXPECT_EQ(f.avx512f && f.os_avx512, (bool)__builtin_cpu_supports("avx512f"));
  EXPECT_EQ(f.avx512bw && f.os_avx512, (bool)__builtin_cpu_supports("avx512bw"));
  EXPECT_EQ(f.avx512vl && f.os_avx512, (bool)__builtin_cpu_supports("avx512vl"));
  EXPECT_EQ(f.avx512dq && f.os_avx512, (bool)__builtin_cpu_supports("avx512dq"));
  EXPECT_EQ(f.avx512bf16 && f.os_avx512, (bool)__builtin_cpu_supports("avx512bf16"));
  EXPECT_EQ(f.avx512vpopcntdq && f.os_avx512, (bool)__builtin_cpu_supports("avx512vpopcntdq"));
  EXPECT_EQ(&f, &kern::cpu_features());  // read once
}

// One test for the whole M2FP_ISA sequence: active_isa() caches the first successful choice.
TEST(RealDispatch, ForcedIsaIsCheckedAgainstTheCpu) {
  const char* before = getenv("M2FP_ISA");
  const std::string saved = before ? before : "";

  // an unknown name
  setenv("M2FP_ISA", "avx1024", 1);
  std::string e = error_of([] { kern::active_isa(); });
  EXPECT_NE(e.find("M2FP_ISA='avx1024' is not one of scalar, avx2, avx512"), std::string::npos) << e;

  if (!cpu_has_avx512()) {
    // AVX-512 forced on a CPU without it: refused, with the variable and the reason in the message
    setenv("M2FP_ISA", "avx512", 1);
    e = error_of([] { kern::active_isa(); });
    EXPECT_NE(e.find("M2FP_ISA=avx512 is not supported on this CPU"), std::string::npos) << e;
    std::printf("  M2FP_ISA=avx512 -> \"%s\"\n", e.c_str());
    e = error_of([] { kern::set_active_isa(Isa::Avx512); });
    EXPECT_NE(e.find("avx512 is not supported on this CPU"), std::string::npos) << e;
  }

  // a supported path is taken as asked
  const Isa want = cpu_has_avx512() ? Isa::Avx512 : cpu_has_avx2() ? Isa::Avx2 : Isa::Scalar;
  setenv("M2FP_ISA", kern::isa_name(want), 1);
  EXPECT_EQ(kern::active_isa(), want);
  EXPECT_EQ(kern::active().isa, want);
  // once chosen, set_active_isa still refuses an unsupported path and keeps the current one
  if (!cpu_has_avx512()) {
    EXPECT_THROW(kern::set_active_isa(Isa::Avx512), std::runtime_error);
    EXPECT_EQ(kern::active_isa(), want);
  }

  if (before) setenv("M2FP_ISA", saved.c_str(), 1);
  else unsetenv("M2FP_ISA");
}
