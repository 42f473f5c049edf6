/* uint8 GEMM microkernel, 4 rows x 16 channels, plain aarch64 Advanced SIMD (no dot
 * product: Cortex-A53/A55/A72), and the pointwise / conv layers built on it.
 * Weights are packed as int16 (w - zw), rows widened to int16 (x, not x - zx: the
 * folded bias carries -zx * sum(w - zw)); SMLAL/SMLAL2 by element multiply 4
 * channels by one row's x[k] into int32 (4 MACs an instruction; every product
 * fits, the sum wraps exactly like the scalar int32 sum).
 * Panel order: for each k, the 16 channels' int16 weights. ARMv7: gemm_u8_4x8__neon.c. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "gemm_driver.h"

enum { MR = 4, NR = 16, KR = 8 };

static size_t panel_offset(int j, int k) { return (size_t)k * NR + j; }

/* Registers: rows x (widened) in v0..v3 (by-element 16-bit operands must be in
 * v0..v15), accumulators row r in ACC_r (4 x 4 channels), weights v28..v31 (two k). */
#define ACC_0 "v4", "v5", "v6", "v7"
#define ACC_1 "v16", "v17", "v18", "v19"
#define ACC_2 "v20", "v21", "v22", "v23"
#define ACC_3 "v24", "v25", "v26", "v27"
/* one k (lane of the widened rows) with channels 0-7 in wa and 8-15 in wb */
#define MAC_ROW_(row, lane, wa, wb, c0, c1, c2, c3)                                           \
  "smlal " c0 ".4s, " wa ".4h, " row ".h[" lane "]\n smlal2 " c1 ".4s, " wa ".8h, " row ".h[" lane "]\n" \
  "smlal " c2 ".4s, " wb ".4h, " row ".h[" lane "]\n smlal2 " c3 ".4s, " wb ".8h, " row ".h[" lane "]\n"
#define MAC_ROW(row, lane, wa, wb, acc) MAC_ROW_(row, lane, wa, wb, acc)
#define MAC_K(lane, wa, wb)                                                                     \
  MAC_ROW("v0", lane, wa, wb, ACC_0) MAC_ROW("v1", lane, wa, wb, ACC_1)                         \
  MAC_ROW("v2", lane, wa, wb, ACC_2) MAC_ROW("v3", lane, wa, wb, ACC_3)
#define MAC_2K(lane0, lane1)                                                                    \
  "ld1 {v28.8h - v31.8h}, [%[wp]], #64\n" MAC_K(lane0, "v28", "v29") MAC_K(lane1, "v30", "v31")
#define INIT_ROW_(c0, c1, c2, c3) \
  "mov " c0 ".16b, v28.16b\n mov " c1 ".16b, v29.16b\n mov " c2 ".16b, v30.16b\n mov " c3 ".16b, v31.16b\n"
#define INIT_ROW(acc) INIT_ROW_(acc)
#define STORE_ROW_(c0, c1, c2, c3) "st1 {" c0 ".4s - " c3 ".4s}, [%[acc]], #64\n"
#define STORE_ROW(acc) STORE_ROW_(acc)

/* channel quarter v of the 16: its multiplier, left shift and negated right shift */
#define RQ_ARGS int32x4_t m0, int32x4_t m1, int32x4_t m2, int32x4_t m3, int32x4_t l0, int32x4_t l1, int32x4_t l2, \
                int32x4_t l3, int32x4_t r0, int32x4_t r1, int32x4_t r2, int32x4_t r3
static inline uint8x16_t requant_row(const int32_t *acc, RQ_ARGS, int right_only, int16x8_t zp, uint8x16_t lo,
                                     uint8x16_t hi) {
  const int32x4_t y0 = mnq_arm_rq_scale(vld1q_s32(acc), m0, l0, r0, right_only);
  const int32x4_t y1 = mnq_arm_rq_scale(vld1q_s32(acc + 4), m1, l1, r1, right_only);
  const int32x4_t y2 = mnq_arm_rq_scale(vld1q_s32(acc + 8), m2, l2, r2, right_only);
  const int32x4_t y3 = mnq_arm_rq_scale(vld1q_s32(acc + 12), m3, l3, r3, right_only);
  return mnq_arm_rq_u8x16(mnq_arm_rq_add_zp(y0, y1, zp), mnq_arm_rq_add_zp(y2, y3, zp), lo, hi);
}

static void gemm_u8_4x16__neon(int mr, int nc, int Kp, const uint8_t *const *a, const void *panel,
                               const int32_t *bias, const int32_t *row_offset, const mnq_arm_rq *rq, int n0,
                               uint8_t *out, long out_stride) {
  (void)row_offset; /* int16 (w - zw) weights: no per-row term */
  const uint8_t *x0 = a[0], *x1 = a[1], *x2 = a[2], *x3 = a[3];
  const int16_t *wp = (const int16_t *)panel;
  int32_t acc[MR][NR];
  int32_t *accp = &acc[0][0];
  int steps = Kp / KR;
  /* Assembly, as in the neondot kernel, so that no accumulator is spilled. Per 8 k:
   * 4 row loads + 4 widenings, 4 weight loads, 128 SMLAL(2), 2 loop instructions. */
  __asm__ volatile(
      "ld1 {v28.4s - v31.4s}, [%[bias]]\n"
      INIT_ROW(ACC_0) INIT_ROW(ACC_1) INIT_ROW(ACC_2) INIT_ROW(ACC_3)
      "1:\n"
      "ldr d0, [%[x0]], #8\n uxtl v0.8h, v0.8b\n"
      "ldr d1, [%[x1]], #8\n uxtl v1.8h, v1.8b\n"
      "ldr d2, [%[x2]], #8\n uxtl v2.8h, v2.8b\n"
      "ldr d3, [%[x3]], #8\n uxtl v3.8h, v3.8b\n"
      MAC_2K("0", "1") MAC_2K("2", "3") MAC_2K("4", "5") MAC_2K("6", "7")
      "subs %w[steps], %w[steps], #1\n"
      "b.ne 1b\n"
      STORE_ROW(ACC_0) STORE_ROW(ACC_1) STORE_ROW(ACC_2) STORE_ROW(ACC_3)
      : [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [x3] "+r"(x3), [wp] "+r"(wp), [steps] "+r"(steps),
        [acc] "+r"(accp)
      : [bias] "r"(bias)
      : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", "v20", "v21",
        "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");
  const int32_t *mp = rq->multiplier + n0, *lp = rq->left_shift + n0, *rp = rq->right_shift_neg + n0;
  const int32x4_t m0 = vld1q_s32(mp), m1 = vld1q_s32(mp + 4), m2 = vld1q_s32(mp + 8), m3 = vld1q_s32(mp + 12);
  const int32x4_t l0 = vld1q_s32(lp), l1 = vld1q_s32(lp + 4), l2 = vld1q_s32(lp + 8), l3 = vld1q_s32(lp + 12);
  const int32x4_t r0 = vld1q_s32(rp), r1 = vld1q_s32(rp + 4), r2 = vld1q_s32(rp + 8), r3 = vld1q_s32(rp + 12);
  const int16x8_t zp = vdupq_n_s16(rq->out_zp);
  const uint8x16_t lo = vdupq_n_u8(rq->act_min), hi = vdupq_n_u8(rq->act_max);
  /* the branch once per tile; inside, right_only is a constant */
#define STORE_ROWS(right_only)                                                                              \
  for (int r = 0; r < mr; r++)                                                                              \
    mnq_arm_store_u8x16(out + r * out_stride,                                                              \
                        requant_row(acc[r], m0, m1, m2, m3, l0, l1, l2, l3, r0, r1, r2, r3, right_only, zp, lo, hi), nc)
  if (rq->right_only) {
    STORE_ROWS(1);
  } else {
    STORE_ROWS(0);
  }
#undef STORE_ROWS
}

/* Pointwise and general conv layers (the dispatcher picks by op). */
int mnq_gemm_u8_prepare__neon(mnq_layer *L) {
  mnq_arm_gemm_packed *pk = mnq_arm_gemm_pack(&L->d, NR, KR, 2, panel_offset);
  if (!pk) return -1;
  L->packed = pk;
  L->scratch_bytes = mnq_arm_gemm_scratch(pk, MR);
  return 0;
}

void mnq_gemm_u8_4x16__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  mnq_arm_gemm_layer(L, in, out, batch, w, MR, NR, 2, gemm_u8_4x16__neon, NULL);
}
#endif
