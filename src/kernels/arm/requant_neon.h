/* Vector requantization for NEON (aarch64 and ARMv7), bit-identical to
 * mnq_requantize_channel() in internal.h:
 *  - vqrdmulhq_s32 is exactly SaturatingRoundingDoublingHighMul (including the
 *    INT32_MIN * INT32_MIN saturation);
 *  - vrshlq_s32 by -e rounds ties upwards, TFLite's RoundingDivideByPOT rounds
 *    them away from zero: subtracting 1 from negative inputs first (the fixup
 *    TFLite's own NEON path uses) turns one into the other. */
#ifndef MNQ_REQUANT_NEON_H
#define MNQ_REQUANT_NEON_H

#ifndef __ARM_NEON
#error "requant_neon.h needs NEON (ARMv7: -mfpu=neon): include it only from *__neon*.c"
#endif

#include <arm_neon.h>

#include "../internal.h"

/* ---- Prepared per-output-channel requantization for the GEMM and depthwise kernels ----
 * Every output channel has its own multiplier and shifts (filled from the layer's
 * per-channel arrays, or the per-tensor pair replicated), so per-tensor and
 * per-channel layers run the same code. Arrays hold Cp entries (padding channels 0). */
/* Forms of a layer's requantization; kernels are instantiated per form (a constant
 * in each instantiation), so the common cases carry no unused steps:
 *  - MNQ_RQ_RIGHT: every channel has no left shift, a right shift of 1..31 and a
 *    multiplier >= 0. Then the ties-away fixup is x + (x >> 31): SRDHM never returns
 *    INT32_MIN for a multiplier >= 0, so the add cannot wrap.
 *  - MNQ_RQ_RIGHT_PLAIN: MNQ_RQ_RIGHT, out_zp 0 and the clamp [0, 255] (a ReLU/ReLU6
 *    layer whose output range starts at 0): the saturating narrowing is the clamp, and
 *    the ties-away fixup is not needed either: it changes only negative values, whose
 *    shifted result is <= 0 under either rounding and clamps to 0 all the same.
 *  - MNQ_RQ_GENERAL: anything else. */
enum { MNQ_RQ_GENERAL, MNQ_RQ_RIGHT, MNQ_RQ_RIGHT_PLAIN };

/* Runs the statement given with `rq_form` a constant equal to `form`: one inlined
 * specialization of a kernel per form, the switch outside every loop that matters. */
#define MNQ_ARM_WITH_FORM(form, ...)                                                      \
  do {                                                                                    \
    switch (form) {                                                                       \
      case MNQ_RQ_RIGHT_PLAIN: { const int rq_form = MNQ_RQ_RIGHT_PLAIN; __VA_ARGS__; break; } \
      case MNQ_RQ_RIGHT: { const int rq_form = MNQ_RQ_RIGHT; __VA_ARGS__; break; }        \
      default: { const int rq_form = MNQ_RQ_GENERAL; __VA_ARGS__; }                       \
    }                                                                                     \
  } while (0)

typedef struct {
  int32_t *multiplier, *left_shift, *right_shift_neg; /* right_shift_neg = min(shift, 0) */
  int form;                                           /* MNQ_RQ_* */
  int16_t out_zp;
  uint8_t act_min, act_max;
} mnq_arm_rq;

static inline size_t mnq_arm_rq_bytes(int Cp) { return (size_t)3 * sizeof(int32_t) * (size_t)Cp; }

/* mem: mnq_arm_rq_bytes(Cp) bytes, 4-byte aligned, zeroed. */
static inline void mnq_arm_rq_fill(mnq_arm_rq *rq, void *mem, const mnq_layer_desc *d, int Cp) {
  rq->multiplier = (int32_t *)mem;
  rq->left_shift = rq->multiplier + Cp;
  rq->right_shift_neg = rq->left_shift + Cp;
  int right_only = 1;
  for (int c = 0; c < d->out_c; c++) {
    const int32_t m = d->channel_multipliers ? d->channel_multipliers[c] : d->multiplier;
    const int32_t shift = d->channel_shifts ? d->channel_shifts[c] : d->shift;
    rq->multiplier[c] = m;
    rq->left_shift[c] = shift > 0 ? shift : 0;
    rq->right_shift_neg[c] = shift > 0 ? 0 : shift;
    if (m < 0 || shift > -1 || shift < -31) right_only = 0;
  }
  /* out_zp and the clamp are validated to [0, 255] (net.c) */
  rq->out_zp = (int16_t)d->out_zp;
  rq->act_min = (uint8_t)d->act_min;
  rq->act_max = (uint8_t)d->act_max;
  rq->form = !right_only ? MNQ_RQ_GENERAL
             : d->out_zp == 0 && d->act_min == 0 && d->act_max == 255 ? MNQ_RQ_RIGHT_PLAIN
                                                                       : MNQ_RQ_RIGHT;
}

/* Four channels' accumulators -> the rescaled values (before the zero point; in the
 * PLAIN form exact only where they are >= 0, see above). */
static inline int32x4_t mnq_arm_rq_scale(int32x4_t acc, int32x4_t multiplier, int32x4_t left, int32x4_t right_neg,
                                         int form) {
  if (form == MNQ_RQ_RIGHT_PLAIN) return vrshlq_s32(vqrdmulhq_s32(acc, multiplier), right_neg);
  if (form == MNQ_RQ_RIGHT) {
    const int32x4_t x = vqrdmulhq_s32(acc, multiplier);
    return vrshlq_s32(vsraq_n_s32(x, x, 31), right_neg);
  }
  const int32x4_t x = vqrdmulhq_s32(vshlq_s32(acc, left), multiplier);
  return vrshlq_s32(vqaddq_s32(x, vshrq_n_s32(vandq_s32(x, right_neg), 31)), right_neg);
}

/* Rescaled int32 -> int16 with the zero point added. Exact for the uint8 result:
 * a value saturated to int16 stays outside [0, 255] after adding out_zp in [0, 255]. */
static inline int16x8_t mnq_arm_rq_add_zp(int32x4_t lo, int32x4_t hi, int16x8_t out_zp, int form) {
#ifdef __aarch64__
  const int16x8_t y = vqmovn_high_s32(vqmovn_s32(lo), hi);
#else
  const int16x8_t y = vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi));
#endif
  return form == MNQ_RQ_RIGHT_PLAIN ? y : vqaddq_s16(y, out_zp);
}

static inline uint8x16_t mnq_arm_rq_u8x16(int16x8_t lo, int16x8_t hi, uint8x16_t act_min, uint8x16_t act_max,
                                          int form) {
#ifdef __aarch64__
  const uint8x16_t u = vqmovun_high_s16(vqmovun_s16(lo), hi);
#else
  const uint8x16_t u = vcombine_u8(vqmovun_s16(lo), vqmovun_s16(hi));
#endif
  return form == MNQ_RQ_RIGHT_PLAIN ? u : vminq_u8(vmaxq_u8(u, act_min), act_max);
}

/* One block of 16 output channels' parameters, loaded once and kept in registers
 * while the kernel requantizes rows or pixels of that block. */
typedef struct {
  int32x4_t m0, m1, m2, m3, l0, l1, l2, l3, r0, r1, r2, r3;
  int16x8_t zp;
  uint8x16_t lo, hi;
} mnq_arm_rq16;

static inline __attribute__((always_inline)) mnq_arm_rq16 mnq_arm_rq16_load(const mnq_arm_rq *rq, int c0, int form) {
  const int32_t *mp = rq->multiplier + c0, *lp = rq->left_shift + c0, *rp = rq->right_shift_neg + c0;
  mnq_arm_rq16 q;
  q.m0 = vld1q_s32(mp), q.m1 = vld1q_s32(mp + 4), q.m2 = vld1q_s32(mp + 8), q.m3 = vld1q_s32(mp + 12);
  q.r0 = vld1q_s32(rp), q.r1 = vld1q_s32(rp + 4), q.r2 = vld1q_s32(rp + 8), q.r3 = vld1q_s32(rp + 12);
  q.l0 = q.r0, q.l1 = q.r1, q.l2 = q.r2, q.l3 = q.r3; /* unused unless GENERAL */
  if (form == MNQ_RQ_GENERAL)
    q.l0 = vld1q_s32(lp), q.l1 = vld1q_s32(lp + 4), q.l2 = vld1q_s32(lp + 8), q.l3 = vld1q_s32(lp + 12);
  q.zp = vdupq_n_s16(rq->out_zp);
  q.lo = vdupq_n_u8(rq->act_min), q.hi = vdupq_n_u8(rq->act_max);
  return q;
}

/* 16 channels' accumulators (4 per register) -> 16 output bytes. */
static inline __attribute__((always_inline)) uint8x16_t mnq_arm_rq16_apply(const mnq_arm_rq16 *q, int32x4_t a0,
                                                                          int32x4_t a1, int32x4_t a2, int32x4_t a3,
                                                                          int form) {
  const int16x8_t lo = mnq_arm_rq_add_zp(mnq_arm_rq_scale(a0, q->m0, q->l0, q->r0, form),
                                         mnq_arm_rq_scale(a1, q->m1, q->l1, q->r1, form), q->zp, form);
  const int16x8_t hi = mnq_arm_rq_add_zp(mnq_arm_rq_scale(a2, q->m2, q->l2, q->r2, form),
                                         mnq_arm_rq_scale(a3, q->m3, q->l3, q->r3, form), q->zp, form);
  return mnq_arm_rq_u8x16(lo, hi, q->lo, q->hi, form);
}

#endif
