/* Pointwise (1x1) uint8 conv as a GEMM, aarch64 with the dot-product extension:
 * UDOT sums four u8 x u8 products per int32 lane. Raw weights are used, so
 *   sum x (w - zw) = sum x w - zw * sum x,
 * with sum x computed once per pixel; the folded bias adds -zx * sum (w - zw).
 * Tile: 4 pixels x 16 output channels, K consumed 16 bytes per step.
 * Packed layout: int32 bias[Np], then per block of 16 channels and per group of
 * 4 k: 16 channels x 4 bytes (the operand order UDOT-by-lane wants). Padding
 * channels and k positions hold zero weights. */
#include <arm_neon.h>
#include <stdlib.h>

#include "../internal.h"
#include "neon_kernels.h"
#include "requant_neon.h"

enum { MR = 4, NR = 16, KR = 16 };

static int round_up(int v, int r) { return (v + r - 1) / r * r; }

int mnq_pwconv_u8_prepare__neondot(mnq_layer *L) {
  const mnq_layer_desc *d = &L->d;
  const int K = d->in_c, N = d->out_c, Kp = round_up(K, KR), Np = round_up(N, NR);
  uint8_t *p = calloc(1, (size_t)Np * 4 + (size_t)Np * Kp);
  if (!p) return -1;
  int32_t *bias = (int32_t *)p;
  uint8_t *wp = p + (size_t)Np * 4;
  for (int n = 0; n < N; n++) {
    bias[n] = L->bias_folded[n];
    uint8_t *blk = wp + (size_t)(n / NR) * Kp * NR + (n % NR) * 4;
    for (int k = 0; k < K; k++) blk[(k / 4) * NR * 4 + k % 4] = d->weights[(size_t)n * K + k];
  }
  L->packed = p;
  L->scratch_bytes = (size_t)MR * Kp; /* zero-padded copies of a pixel tile when K % 16 != 0 */
  return 0;
}

#define DOT_GROUP(g)                                                  \
  do {                                                                \
    const uint8_t *wg = pw + (k / 4 + (g)) * NR * 4;                  \
    const uint8x16_t w0 = vld1q_u8(wg), w1 = vld1q_u8(wg + 16);       \
    const uint8x16_t w2 = vld1q_u8(wg + 32), w3 = vld1q_u8(wg + 48);  \
    for (int p = 0; p < MR; p++) {                                    \
      acc[p][0] = vdotq_laneq_u32(acc[p][0], w0, xv[p], g);           \
      acc[p][1] = vdotq_laneq_u32(acc[p][1], w1, xv[p], g);           \
      acc[p][2] = vdotq_laneq_u32(acc[p][2], w2, xv[p], g);           \
      acc[p][3] = vdotq_laneq_u32(acc[p][3], w3, xv[p], g);           \
    }                                                                 \
  } while (0)

void mnq_pwconv_u8__neondot(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int K = d->in_c, N = d->out_c, Kp = round_up(K, KR), Np = round_up(N, NR);
  const int32_t *bias = (const int32_t *)L->packed;
  const uint8_t *weights = (const uint8_t *)L->packed + (size_t)Np * 4;
  const mnq_rq_neon rq = mnq_rq_neon_init(d);
  const uint8x16_t ones = vdupq_n_u8(1);
  long m0, m1;
  mnq_partition((long)batch * d->out_h * d->out_w, w, &m0, &m1);
  for (long m = m0; m < m1; m += MR) {
    const int rows = m1 - m < MR ? (int)(m1 - m) : MR;
    const uint8_t *x[MR];
    mnq_neon_tile_rows(in, m, rows, K, Kp, MR, w->scratch, x);
    int32x4_t zw_sum[MR]; /* zw * sum x, per pixel */
    for (int p = 0; p < MR; p++) {
      uint32x4_t s = vdupq_n_u32(0);
      for (int k = 0; k < Kp; k += KR) s = vdotq_u32(s, vld1q_u8(x[p] + k), ones);
      zw_sum[p] = vdupq_n_s32(d->w_zp * (int32_t)vaddvq_u32(s));
    }
    for (int n0 = 0; n0 < N; n0 += NR) {
      const uint8_t *pw = weights + (size_t)n0 * Kp;
      uint32x4_t acc[MR][4];
      for (int p = 0; p < MR; p++)
        for (int v = 0; v < 4; v++) acc[p][v] = vdupq_n_u32(0);
      for (int k = 0; k < Kp; k += KR) {
        uint8x16_t xv[MR];
        for (int p = 0; p < MR; p++) xv[p] = vld1q_u8(x[p] + k);
        DOT_GROUP(0);
        DOT_GROUP(1);
        DOT_GROUP(2);
        DOT_GROUP(3);
      }
      for (int p = 0; p < rows; p++) {
        int32x4_t y[4];
        for (int v = 0; v < 4; v++) {
          const int32x4_t a = vaddq_s32(vreinterpretq_s32_u32(acc[p][v]), vld1q_s32(bias + n0 + 4 * v));
          y[v] = mnq_rq_neon_apply(vsubq_s32(a, zw_sum[p]), &rq);
        }
        const uint8x16_t o = vcombine_u8(mnq_rq_neon_narrow(y[0], y[1]), mnq_rq_neon_narrow(y[2], y[3]));
        uint8_t *dst = out + (m + p) * N + n0;
        if (n0 + NR <= N) {
          vst1q_u8(dst, o);
        } else {
          uint8_t tmp[NR];
          vst1q_u8(tmp, o);
          memcpy(dst, tmp, (size_t)(N - n0));
        }
      }
    }
  }
}
