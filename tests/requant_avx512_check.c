/* mnq_rq512_apply / _scale / _store64 against the scalar mnq_requantize over
 * multipliers (0, tiny, near 2^30 and 2^31), every shift from -31 to 31, zero points
 * and clamp ranges, and accumulators at the int32 edges, near both roundings ties
 * and random. */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include "x86/requant_avx512.h"
/* Built and run by test_requant_exhaustive.py. */
static uint64_t s = 88172645463325252ull;
static uint64_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
static int32_t accs[200000];
int main(void) {
  const int32_t mults[] = {0, 1, 2, 3, 12345, 1 << 30, (1 << 30) + 1, 2147483647, 2147483646, 1992157658, 1553319078, 1083785823, 1500000001, 1431655765, 0x55555555 + 7};
  const int zps[] = {0, 1, 127, 128, 255};
  long checked = 0, bad = 0;
  for (unsigned mi = 0; mi < sizeof mults / sizeof *mults; mi++)
    for (int shift = -31; shift <= 31; shift++) {
      const int32_t M = mults[mi];
      const int r = shift < 0 ? -shift : 0;
      int n = 0;
      const int32_t edges[] = {INT32_MIN, INT32_MIN + 1, INT32_MIN + 2, -1, 0, 1, 2, INT32_MAX, INT32_MAX - 1, 1 << 30, -(1 << 30), (1 << 30) - 1};
      for (unsigned i = 0; i < sizeof edges / 4; i++) accs[n++] = edges[i];
      for (int a = -3000; a <= 3000; a++) accs[n++] = a;
      for (int i = 0; i < 3000; i++) accs[n++] = (int32_t)rnd();
      for (int i = 0; i < 3000; i++) accs[n++] = (int32_t)(rnd() % 2000001) - 1000000;
      if (M > 0)
        for (int i = 0; i < 4000 && n < 199990; i++) { /* near ties of both roundings */
          const double half = ldexp(1.0, 30 + r + (shift > 0 ? -shift : 0)) / M;
          const double k = (double)((int64_t)(rnd() % 4001) - 2000);
          const double c = k * half;
          if (fabs(c) > 2.1e9) continue;
          for (int d = -2; d <= 2; d++) accs[n++] = (int32_t)llround(c) + d;
        }
      while (n % 16) accs[n++] = 7;
      for (int zi = 0; zi < 5; zi++)
        for (int ai = 0; ai < 4; ai++) {
          const int zp = zps[zi];
          mnq_layer_desc d = {0};
          d.multiplier = M; d.shift = shift; d.out_zp = zp;
          const int ranges[4][2] = {{0, 255}, {zp, zp + 47 > 255 ? 255 : zp + 47}, {zp - 3 < 0 ? 0 : zp - 3, zp + 3 > 255 ? 255 : zp + 3}, {zp, zp}};
          d.act_min = ranges[ai][0]; d.act_max = ranges[ai][1];
          const mnq_rq512 q = mnq_rq512_init(&d);
          for (int i = 0; i < n; i += 16) {
            const __m512i y = mnq_rq512_apply(_mm512_loadu_si512(accs + i), &q);
            int32_t out[16];
            _mm512_storeu_si512(out, y);
            uint8_t o8[64] = {0};
            __m512i z = mnq_rq512_scale(_mm512_loadu_si512(accs + i), &q);
            mnq_rq512_store64(o8, ~0ull, z, _mm512_setzero_si512(), z, z, &q);
            for (int j = 0; j < 16; j++) {
              const int want = mnq_requantize(accs[i + j], &d);
              checked++;
              if (out[j] != want || o8[j] != want || o8[32 + j] != want || o8[48 + j] != want) {
                if (bad++ < 10) printf("M=%d shift=%d zp=%d act=[%d,%d] acc=%d: got %d/%d want %d\n", M, shift, zp, d.act_min, d.act_max, accs[i + j], out[j], o8[j], want);
              }
            }
          }
        }
    }
  printf("checked %ld, bad %ld\n", checked, bad);
  return bad != 0;
}
