/* Pointwise (1x1) uint8 conv as a GEMM with plain NEON, one source for aarch64
 * without the dot product and for ARMv7: x widened to int16, weights stored as
 * int16 (w - zw), multiply-accumulate by lane into int32 (each product fits;
 * the sum wraps exactly like the scalar int32 sum). The folded bias adds
 * -zx * sum (w - zw).
 * Tile: 4 pixels x 8 output channels (13 q registers: fits ARMv7's 16).
 * Packed layout: int32 bias[Np], then per block of 8 channels: int16 [Kp][8]. */
#include <arm_neon.h>
#include <stdlib.h>

#include "../internal.h"
#include "neon_kernels.h"
#include "requant_neon.h"

enum { MR = 4, NR = 8, KR = 8 };

static int round_up(int v, int r) { return (v + r - 1) / r * r; }

int mnq_pwconv_u8_prepare__neon(mnq_layer *L) {
  const mnq_layer_desc *d = &L->d;
  const int K = d->in_c, N = d->out_c, Kp = round_up(K, KR), Np = round_up(N, NR);
  uint8_t *p = calloc(1, (size_t)Np * 4 + (size_t)Np * Kp * 2);
  if (!p) return -1;
  int32_t *bias = (int32_t *)p;
  int16_t *wp = (int16_t *)(p + (size_t)Np * 4);
  for (int n = 0; n < N; n++) {
    bias[n] = L->bias_folded[n];
    int16_t *blk = wp + (size_t)(n / NR) * Kp * NR + n % NR;
    for (int k = 0; k < K; k++) blk[k * NR] = (int16_t)(d->weights[(size_t)n * K + k] - d->w_zp);
  }
  L->packed = p;
  L->scratch_bytes = (size_t)MR * Kp; /* zero-padded copies of a pixel tile when K % 8 != 0 */
  return 0;
}

/* k + j: weights of 8 channels times pixel p's x[k + j], for every pixel of the tile */
#define MAC_LANE(j, half)                                                                     \
  do {                                                                                        \
    const int16x8_t wv = vld1q_s16(pw + (k + (j)) * NR);                                      \
    for (int p = 0; p < MR; p++) {                                                            \
      const int16x4_t xh = half ? vget_high_s16(xs[p]) : vget_low_s16(xs[p]);                 \
      acc[p][0] = vmlal_lane_s16(acc[p][0], vget_low_s16(wv), xh, (j) & 3);                   \
      acc[p][1] = vmlal_lane_s16(acc[p][1], vget_high_s16(wv), xh, (j) & 3);                  \
    }                                                                                         \
  } while (0)

void mnq_pwconv_u8__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int K = d->in_c, N = d->out_c, Kp = round_up(K, KR), Np = round_up(N, NR);
  const int32_t *bias = (const int32_t *)L->packed;
  const int16_t *weights = (const int16_t *)((const uint8_t *)L->packed + (size_t)Np * 4);
  const mnq_rq_neon rq = mnq_rq_neon_init(d);
  long m0, m1;
  mnq_partition((long)batch * d->out_h * d->out_w, w, &m0, &m1);
  for (long m = m0; m < m1; m += MR) {
    const int rows = m1 - m < MR ? (int)(m1 - m) : MR;
    const uint8_t *x[MR];
    mnq_neon_tile_rows(in, m, rows, K, Kp, MR, w->scratch, x);
    for (int n0 = 0; n0 < N; n0 += NR) {
      const int16_t *pw = weights + (size_t)n0 * Kp;
      int32x4_t acc[MR][2];
      for (int p = 0; p < MR; p++) {
        acc[p][0] = vld1q_s32(bias + n0);
        acc[p][1] = vld1q_s32(bias + n0 + 4);
      }
      for (int k = 0; k < Kp; k += KR) {
        int16x8_t xs[MR];
        for (int p = 0; p < MR; p++) xs[p] = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(x[p] + k)));
        MAC_LANE(0, 0); MAC_LANE(1, 0); MAC_LANE(2, 0); MAC_LANE(3, 0);
        MAC_LANE(4, 1); MAC_LANE(5, 1); MAC_LANE(6, 1); MAC_LANE(7, 1);
      }
      for (int p = 0; p < rows; p++) {
        const uint8x8_t o = mnq_rq_neon_narrow(mnq_rq_neon_apply(acc[p][0], &rq), mnq_rq_neon_apply(acc[p][1], &rq));
        uint8_t *dst = out + (m + p) * N + n0;
        if (n0 + NR <= N) {
          vst1_u8(dst, o);
        } else {
          uint8_t tmp[NR];
          vst1_u8(tmp, o);
          memcpy(dst, tmp, (size_t)(N - n0));
        }
      }
    }
  }
}
