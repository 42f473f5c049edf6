/* AVX-512 VNNI peak-probe loop (see peak_probe.h). */
#include "peak_probe.h"

#define DP(acc) "vpdpbusd %%zmm1, %%zmm0, %%zmm" #acc "\n\t"

void mnq_peak_loop_vpdpbusd_zmm__avx512vnni(long iters) {
  __asm__ volatile("1:\n\t" DP(16) DP(17) DP(18) DP(19) DP(20) DP(21) DP(22) DP(23) DP(24) DP(25) DP(26) DP(27)
                       DP(28) DP(29) DP(30) DP(31) "dec %0\n\tjnz 1b\n\tvzeroupper"
                   : "+r"(iters)
                   :
                   : "cc", "xmm0", "xmm1", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23",
                     "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
}
