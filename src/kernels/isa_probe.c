/* Compiled once per kernel group at build time with that group's flags
 * (isa_levels.txt): a compiler that rejects them, or lacks the intrinsics
 * header, cannot build the group, which is then left out. */
#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

int mnq_isa_probe;
