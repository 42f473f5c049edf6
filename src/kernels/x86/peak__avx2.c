/* AVX2 peak-probe loops (see peak_probe.h). Sources are left as found: integer
 * throughput does not depend on values. */
#include "peak_probe.h"

#define MADDWD(t, acc) "vpmaddwd %%ymm1, %%ymm0, %%ymm" #t "\n\tvpaddd %%ymm" #t ", %%ymm" #acc ", %%ymm" #acc "\n\t"

void mnq_peak_loop_vpmaddwd__avx2(long iters) {
  __asm__ volatile(
      "1:\n\t" MADDWD(2, 8) MADDWD(3, 9) MADDWD(4, 10) MADDWD(5, 11) MADDWD(6, 12) MADDWD(7, 13) MADDWD(2, 14)
          MADDWD(3, 15) "dec %0\n\tjnz 1b\n\tvzeroupper"
      : "+r"(iters)
      :
      : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15");
}

#define MADDUBSW(t, acc)                                                                              \
  "vpmaddubsw %%ymm1, %%ymm0, %%ymm" #t "\n\tvpmaddwd %%ymm2, %%ymm" #t ", %%ymm" #t "\n\tvpaddd %%ymm" #t \
  ", %%ymm" #acc ", %%ymm" #acc "\n\t"

void mnq_peak_loop_vpmaddubsw__avx2(long iters) {
  __asm__ volatile(
      "1:\n\t" MADDUBSW(3, 8) MADDUBSW(4, 9) MADDUBSW(5, 10) MADDUBSW(6, 11) MADDUBSW(7, 12) MADDUBSW(3, 13)
          MADDUBSW(4, 14) MADDUBSW(5, 15) "dec %0\n\tjnz 1b\n\tvzeroupper"
      : "+r"(iters)
      :
      : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm12", "xmm13", "xmm14", "xmm15");
}
