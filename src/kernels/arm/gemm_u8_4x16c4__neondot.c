/* uint8 GEMM microkernel, 4 rows x 16 channels, K in groups of 4 (aarch64 with
 * the dot-product extension), and the pointwise / conv layers built on it.
 * UDOT-by-lane multiplies 4 channels x 4 k of raw uint8 weights by 4 k of one row
 * broadcast from a lane: 16 MACs an instruction. Each 16-byte row load feeds 4
 * k-groups; one 4-register load brings a k-group's 16 channels. Accumulators start
 * at bias - zw * sum(row), so the loop has nothing but loads and UDOTs.
 * Panel order: per k-group of 4, channel j's 4 bytes at j * 4 (64 bytes a group). */
#include <arm_neon.h>

#include "gemm_driver.h"

enum { MR = 4, NR = 16, KR = 16 };

static size_t panel_offset(int j, int k) { return (size_t)(k / 4) * NR * 4 + (size_t)j * 4 + k % 4; }

static int32_t row_sum(const uint8_t *a, int Kp) {
  const uint8x16_t ones = vdupq_n_u8(1);
  uint32x4_t s = vdupq_n_u32(0);
  for (int k = 0; k < Kp; k += 16) s = vdotq_u32(s, vld1q_u8(a + k), ones);
  return (int32_t)vaddvq_u32(s);
}

/* Accumulators: row r, channels 4v..4v+3 in ACC(r, v); rows in v24..v27, one
 * k-group's weights in v28..v31. Only caller-saved vector registers are used. */
#define ACC_0 "v0", "v1", "v2", "v3"
#define ACC_1 "v4", "v5", "v6", "v7"
#define ACC_2 "v16", "v17", "v18", "v19"
#define ACC_3 "v20", "v21", "v22", "v23"
#define DOT(c, w, row, lane) "udot " c ".4s, " w ".16b, " row ".4b[" lane "]\n"
#define DOT_ROW_(row, lane, c0, c1, c2, c3) \
  DOT(c0, "v28", row, lane) DOT(c1, "v29", row, lane) DOT(c2, "v30", row, lane) DOT(c3, "v31", row, lane)
#define DOT_ROW(row, lane, acc) DOT_ROW_(row, lane, acc)
#define DOT_GROUP(lane)                                                                               \
  "ld1 {v28.16b - v31.16b}, [%[wp]], #64\n"                                                           \
  DOT_ROW("v24", lane, ACC_0) DOT_ROW("v25", lane, ACC_1) DOT_ROW("v26", lane, ACC_2) DOT_ROW("v27", lane, ACC_3)
#define INIT_ROW_(r, c0, c1, c2, c3)                                                                  \
  "ld1r {v24.4s}, [%[roff]], #4\n"                                                                    \
  "add " c0 ".4s, v28.4s, v24.4s\n add " c1 ".4s, v29.4s, v24.4s\n"                                   \
  "add " c2 ".4s, v30.4s, v24.4s\n add " c3 ".4s, v31.4s, v24.4s\n"
#define INIT_ROW(acc) INIT_ROW_(0, acc)
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

static void gemm_u8_4x16c4__neondot(int mr, int nc, int Kp, const uint8_t *const *a, const void *panel,
                                    const int32_t *bias, const int32_t *row_offset, const mnq_arm_rq *rq, int n0,
                                    uint8_t *out, long out_stride) {
  const uint8_t *x0 = a[0], *x1 = a[1], *x2 = a[2], *x3 = a[3];
  const uint8_t *wp = (const uint8_t *)panel;
  const int32_t *roff = row_offset;
  int32_t acc[MR][NR];
  int32_t *accp = &acc[0][0];
  int steps = Kp / KR;
  /* Assembly: compiled from intrinsics, GCC loads all four weight groups of a step up
   * front and spills accumulators. Per 16 k: 4 row loads, 4 group loads, 64 UDOTs and
   * 2 loop instructions (16 MACs in 74 instructions... 13.8 MACs/instruction). */
  __asm__ volatile(
      "ld1 {v28.4s - v31.4s}, [%[bias]]\n"
      INIT_ROW(ACC_0) INIT_ROW(ACC_1) INIT_ROW(ACC_2) INIT_ROW(ACC_3)
      "1:\n"
      "ldr q24, [%[x0]], #16\n"
      "ldr q25, [%[x1]], #16\n"
      "ldr q26, [%[x2]], #16\n"
      "ldr q27, [%[x3]], #16\n"
      DOT_GROUP("0") DOT_GROUP("1") DOT_GROUP("2") DOT_GROUP("3")
      "subs %w[steps], %w[steps], #1\n"
      "b.ne 1b\n"
      STORE_ROW(ACC_0) STORE_ROW(ACC_1) STORE_ROW(ACC_2) STORE_ROW(ACC_3)
      : [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [x3] "+r"(x3), [wp] "+r"(wp), [steps] "+r"(steps),
        [roff] "+r"(roff), [acc] "+r"(accp)
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
    mnq_arm_store_u8x16(out + r * out_stride, requant_row(acc[r], m0, m1, m2, m3, l0, l1, l2, l3, r0, r1, r2, r3, right_only, zp, lo, hi), nc)
  if (rq->right_only) {
    STORE_ROWS(1);
  } else {
    STORE_ROWS(0);
  }
#undef STORE_ROWS
}

/* Pointwise and general conv layers (the dispatcher picks by op). */
int mnq_gemm_u8_prepare__neondot(mnq_layer *L) {
  mnq_arm_gemm_packed *pk = mnq_arm_gemm_pack(&L->d, NR, KR, 1, panel_offset);
  if (!pk) return -1;
  L->packed = pk;
  L->scratch_bytes = mnq_arm_gemm_scratch(pk, MR);
  return 0;
}

void mnq_gemm_u8_4x16c4__neondot(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  mnq_arm_gemm_layer(L, in, out, batch, w, MR, NR, 1, gemm_u8_4x16c4__neondot, row_sum);
}
