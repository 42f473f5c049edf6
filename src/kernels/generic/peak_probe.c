/* Times the peak-probe loops (x86/peak__*.c): one core's int8 MAC/s of each
 * instruction sequence, the roofline `mnq profile` holds layers against. */
#include <stdio.h>
#include <time.h>

#include "../mnq.h"
#ifdef MNQ_X86_KERNELS
#include "../x86/peak_probe.h"
#endif

const char *mnq_peak_name(int which) {
  static const char *names[MNQ_PEAK_COUNT] = {"avx2 vpmaddwd ymm", "avx2 vpmaddubsw ymm", "avx-vnni vpdpbusd ymm",
                                              "avx512-vnni vpdpbusd zmm", "amx tdpbusd"};
  return which >= 0 && which < MNQ_PEAK_COUNT ? names[which] : "unknown";
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

double mnq_peak_macs_per_second(int which, double seconds) {
  if (!mnq_peak_available(which)) return 0;
#ifdef MNQ_X86_KERNELS
  /* only the groups this build compiled exist (mnq_peak_available checks the same) */
  static void (*const loops[MNQ_PEAK_COUNT])(long) = {
#ifdef MNQ_HAVE_AVX2
      [MNQ_PEAK_VPMADDWD_YMM] = mnq_peak_loop_vpmaddwd__avx2,
      [MNQ_PEAK_VPMADDUBSW_YMM] = mnq_peak_loop_vpmaddubsw__avx2,
#endif
#ifdef MNQ_HAVE_AVXVNNI
      [MNQ_PEAK_VPDPBUSD_YMM] = mnq_peak_loop_vpdpbusd_ymm__avxvnni,
#endif
#ifdef MNQ_HAVE_AVX512VNNI
      [MNQ_PEAK_VPDPBUSD_ZMM] = mnq_peak_loop_vpdpbusd_zmm__avx512vnni,
#endif
#ifdef MNQ_HAVE_AMX
      [MNQ_PEAK_TDPBUSD] = mnq_peak_loop_tdpbusd__amx,
#endif
  };
  if (!loops[which]) return 0;
  static const double macs_per_iter[MNQ_PEAK_COUNT] = {
      MNQ_PEAK_MACS_PER_ITER_VPMADDWD, MNQ_PEAK_MACS_PER_ITER_VPMADDUBSW, MNQ_PEAK_MACS_PER_ITER_AVXVNNI,
      MNQ_PEAK_MACS_PER_ITER_AVX512VNNI, MNQ_PEAK_MACS_PER_ITER_AMX};
  /* grow one timed call to about a millisecond (also warms up the wide units' clocks) */
  long iters = 256;
  for (;;) {
    const double t0 = now();
    loops[which](iters);
    if (now() - t0 >= 1e-3 || iters > (1L << 40)) break;
    iters *= 2;
  }
  /* the best of many short calls: on a shared machine the least disturbed one is the peak */
  double best = 0;
  const double start = now();
  do {
    const double t0 = now();
    loops[which](iters);
    const double rate = iters * macs_per_iter[which] / (now() - t0);
    if (rate > best) best = rate;
  } while (now() - start < seconds);
  return best;
#else
  (void)seconds;
  return 0;
#endif
}
