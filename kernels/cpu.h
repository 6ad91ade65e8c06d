// kernels/cpu.h: what the CPU and the OS offer, read once (cpuid + xgetbv).
//
// A feature is usable only when the CPU reports it (cpuid) AND the OS saves the registers it
// needs across context switches (XCR0, read with xgetbv): os_avx for the ymm state, os_avx512
// for the opmask and zmm state. kernels/dispatch.cpp builds its ISA choice on this; callers above
// the kernels floor may read it too (e.g. whether bf16 matmuls would run natively).
#pragma once

namespace m2fp::kern {

struct CpuFeatures {
  bool avx2 = false, fma = false;                                        // cpuid 1 / 7.0
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;  // cpuid 7.0
  bool avx512bf16 = false;                                               // cpuid 7.1 (AVX512_BF16)
  bool avx512vpopcntdq = false;                                          // cpuid 7.0 (VPOPCNTD/Q)
  bool os_avx = false;     // XCR0: XMM and YMM state
  bool os_avx512 = false;  // XCR0: + opmask, ZMM_Hi256, Hi16_ZMM
};

// The features of the CPU this process runs on; detected on the first call, then cached.
const CpuFeatures& cpu_features();

}  // namespace m2fp::kern
