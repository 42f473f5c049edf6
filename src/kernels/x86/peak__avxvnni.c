/* AVX-VNNI peak-probe loop (see peak_probe.h). */
#include "peak_probe.h"

#define DP(acc) "%{vex%} vpdpbusd %%ymm1, %%ymm0, %%ymm" #acc "\n\t"

void mnq_peak_loop_vpdpbusd_ymm__avxvnni(long iters) {
  __asm__ volatile("1:\n\t" DP(4) DP(5) DP(6) DP(7) DP(8) DP(9) DP(10) DP(11) DP(12) DP(13) DP(14)
                       DP(15) "dec %0\n\tjnz 1b\n\tvzeroupper"
                   : "+r"(iters)
                   :
                   : "cc", "xmm0", "xmm1", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
                     "xmm12", "xmm13", "xmm14", "xmm15");
}
