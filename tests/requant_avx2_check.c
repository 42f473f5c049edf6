/* rq256_apply (requant_avx2.h) with per-lane multipliers and shifts (rq_lanes.h) vs
 * the scalar mnq_requantize_channel, on millions of accumulators: random, extreme,
 * and ties of the rounding shift. Prints "ok" or the first mismatch; exit 1 on one. */
#include <stdio.h>
#include <stdlib.h>

#include "x86/requant_avx2.h"
#include "x86/rq_lanes.h"

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint32_t next(void) {
  state ^= state << 13, state ^= state >> 7, state ^= state << 17;
  return (uint32_t)(state >> 16);
}

int main(void) {
  int32_t mult[8], shift[8], lanes[32] __attribute__((aligned(32)));
  long checked = 0;
  for (int round = 0; round < 20000; round++) {
    for (int j = 0; j < 8; j++) {
      mult[j] = (int32_t)((1u << 30) + (next() & 0x3FFFFFFF)); /* [2^30, 2^31) */
      if (next() % 16 == 0) mult[j] = (int32_t)(next() & 0x7FFFFFFF); /* any, 0 included */
      shift[j] = (int32_t)(next() % 40) - 31;                    /* -31 .. 8 */
    }
    mnq_layer_desc d = {0};
    d.channel_multipliers = mult, d.channel_shifts = shift;
    d.out_zp = (int32_t)(next() % 256);
    d.act_min = (int32_t)(next() % 128), d.act_max = 128 + (int32_t)(next() % 128);
    mnq_rq_lanes_fill(lanes, mult, shift, 8, 8);
    const rq256 base = rq256_init(&d), q = rq256_channels(&base, lanes);
    for (int t = 0; t < 64; t++) {
      int32_t acc[8];
      for (int j = 0; j < 8; j++) {
        const int kind = next() % 4;
        const int right = shift[j] > 0 ? 0 : -shift[j];
        acc[j] = kind == 0 ? (int32_t)next() : kind == 1 ? (int32_t)(next() % 200001) - 100000
               : kind == 2 ? (int32_t)(((int64_t)(int32_t)(next() % 4001 - 2000) << (right < 20 ? right : 20)) +
                               (right ? ((int64_t)1 << (right - 1)) : 0)) /* near ties */
                           : (next() & 1 ? INT32_MIN : INT32_MAX) - (int32_t)(next() % 3) * (next() & 1 ? -1 : 1);
      }
      int32_t got[8];
      _mm256_storeu_si256((__m256i *)got, rq256_apply(_mm256_loadu_si256((const __m256i *)acc), &q));
      for (int j = 0; j < 8; j++, checked++) {
        const int32_t want = mnq_requantize_channel(acc[j], &d, j);
        if (got[j] != want) {
          printf("mismatch: acc %d multiplier %d shift %d zp %d -> %d, scalar %d\n", acc[j], mult[j], shift[j],
                 d.out_zp, got[j], want);
          return 1;
        }
      }
    }
  }
  printf("ok %ld\n", checked);
  return 0;
}
