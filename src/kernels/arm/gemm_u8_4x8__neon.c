/* uint8 GEMM microkernel, 4 rows x 8 channels, ARMv7 NEON (16 q registers: 8
 * accumulators, 4 widened rows, the weights), and the pointwise / conv layers built
 * on it. Same arithmetic as the aarch64 gemm_u8_4x16__neon.c: int16 (w - zw)
 * weights, rows widened to int16, VMLAL by lane into int32.
 * Panel order: for each k, the 8 channels' int16 weights. */
#if defined(__arm__) && !defined(__aarch64__)
#include <arm_neon.h>

#include "gemm_driver.h"

enum { MR = 4, NR = 8, KR = 8 };

static size_t panel_offset(int j, int k) { return (size_t)k * NR + j; }

/* weights of k (= lane of the rows' half h) times the four rows */
#define MAC_K(k, half, lane)                                                      \
  do {                                                                            \
    const int16x8_t wv = vld1q_s16(wp + (k) * NR);                                \
    c00 = vmlal_lane_s16(c00, vget_low_s16(wv), vget_##half##_s16(x0), lane);     \
    c01 = vmlal_lane_s16(c01, vget_high_s16(wv), vget_##half##_s16(x0), lane);    \
    c10 = vmlal_lane_s16(c10, vget_low_s16(wv), vget_##half##_s16(x1), lane);     \
    c11 = vmlal_lane_s16(c11, vget_high_s16(wv), vget_##half##_s16(x1), lane);    \
    c20 = vmlal_lane_s16(c20, vget_low_s16(wv), vget_##half##_s16(x2), lane);     \
    c21 = vmlal_lane_s16(c21, vget_high_s16(wv), vget_##half##_s16(x2), lane);    \
    c30 = vmlal_lane_s16(c30, vget_low_s16(wv), vget_##half##_s16(x3), lane);     \
    c31 = vmlal_lane_s16(c31, vget_high_s16(wv), vget_##half##_s16(x3), lane);    \
  } while (0)

static inline uint8x8_t requant8(int32x4_t c0, int32x4_t c1, int32x4_t m0, int32x4_t m1, int32x4_t l0, int32x4_t l1,
                                 int32x4_t r0, int32x4_t r1, int form, int16x8_t zp, uint8x8_t lo, uint8x8_t hi) {
  const int16x8_t y = mnq_arm_rq_add_zp(mnq_arm_rq_scale(c0, m0, l0, r0, form),
                                        mnq_arm_rq_scale(c1, m1, l1, r1, form), zp, form);
  return form == MNQ_RQ_RIGHT_PLAIN ? vqmovun_s16(y) : vmin_u8(vmax_u8(vqmovun_s16(y), lo), hi);
}

static void store8(uint8_t *dst, uint8x8_t v, int nc) {
  if (nc == 8) {
    vst1_u8(dst, v);
  } else {
    uint8_t tmp[8];
    vst1_u8(tmp, v);
    memcpy(dst, tmp, (size_t)nc);
  }
}

/* One panel: rows a[0..4) x channels n0..n0+7 (the first nc stored). */
static inline void panel_4x8(int mr, int nc, int Kp, const uint8_t *const *a, const int16_t *wp, const int32_t *bias,
                             const mnq_arm_rq *rq, int n0, uint8_t *out, long out_stride) {
  const int32x4_t b0 = vld1q_s32(bias), b1 = vld1q_s32(bias + 4);
  int32x4_t c00 = b0, c01 = b1, c10 = b0, c11 = b1, c20 = b0, c21 = b1, c30 = b0, c31 = b1;
  for (int k = 0; k < Kp; k += KR, wp += KR * NR) {
    const int16x8_t x0 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(a[0] + k)));
    const int16x8_t x1 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(a[1] + k)));
    const int16x8_t x2 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(a[2] + k)));
    const int16x8_t x3 = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(a[3] + k)));
    MAC_K(0, low, 0); MAC_K(1, low, 1); MAC_K(2, low, 2); MAC_K(3, low, 3);
    MAC_K(4, high, 0); MAC_K(5, high, 1); MAC_K(6, high, 2); MAC_K(7, high, 3);
  }
  const int32x4_t m0 = vld1q_s32(rq->multiplier + n0), m1 = vld1q_s32(rq->multiplier + n0 + 4);
  const int32x4_t l0 = vld1q_s32(rq->left_shift + n0), l1 = vld1q_s32(rq->left_shift + n0 + 4);
  const int32x4_t r0 = vld1q_s32(rq->right_shift_neg + n0), r1 = vld1q_s32(rq->right_shift_neg + n0 + 4);
  const int16x8_t zp = vdupq_n_s16(rq->out_zp);
  const uint8x8_t lo = vdup_n_u8(rq->act_min), hi = vdup_n_u8(rq->act_max);
  const int form = rq->form;
  store8(out, requant8(c00, c01, m0, m1, l0, l1, r0, r1, form, zp, lo, hi), nc);
  if (mr > 1) store8(out + out_stride, requant8(c10, c11, m0, m1, l0, l1, r0, r1, form, zp, lo, hi), nc);
  if (mr > 2) store8(out + 2 * out_stride, requant8(c20, c21, m0, m1, l0, l1, r0, r1, form, zp, lo, hi), nc);
  if (mr > 3) store8(out + 3 * out_stride, requant8(c30, c31, m0, m1, l0, l1, r0, r1, form, zp, lo, hi), nc);
}

static void gemm_u8_4x8__neon(int mr, int N, int Kp, const uint8_t *const *a, const void *panels,
                              const int32_t *bias, const int32_t *row_offset, const mnq_arm_rq *rq, uint8_t *out,
                              long out_stride) {
  (void)row_offset; /* int16 (w - zw) weights: no per-row term */
  for (int n0 = 0; n0 < N; n0 += NR)
    panel_4x8(mr, N - n0 < NR ? N - n0 : NR, Kp, a, (const int16_t *)panels + (size_t)n0 * Kp, bias + n0, rq, n0,
              out + n0, out_stride);
}

/* Pointwise and general conv layers (the dispatcher picks by op). */
int mnq_gemm_u8_prepare__neon(mnq_layer *L) {
  return mnq_arm_gemm_prepare(L, MR, NR, KR, 2, panel_offset);
}

void mnq_gemm_u8_4x8__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  mnq_arm_gemm_layer(L, in, out, batch, w, MR, gemm_u8_4x8__neon, NULL);
}
#endif
