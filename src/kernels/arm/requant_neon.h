/* Vector requantization for NEON (aarch64 and ARMv7), bit-identical to
 * mnq_requantize() in internal.h:
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

typedef struct {
  int32x4_t left, multiplier, right_neg, out_zp, act_min, act_max;
} mnq_rq_neon;

static inline mnq_rq_neon mnq_rq_neon_init(const mnq_layer_desc *d) {
  mnq_rq_neon rq;
  rq.left = vdupq_n_s32(d->shift > 0 ? d->shift : 0);
  rq.multiplier = vdupq_n_s32(d->multiplier);
  rq.right_neg = vdupq_n_s32(d->shift > 0 ? 0 : d->shift);
  rq.out_zp = vdupq_n_s32(d->out_zp);
  rq.act_min = vdupq_n_s32(d->act_min);
  rq.act_max = vdupq_n_s32(d->act_max);
  return rq;
}

/* int32 accumulators -> clamped outputs, still int32. */
static inline int32x4_t mnq_rq_neon_apply(int32x4_t acc, const mnq_rq_neon *rq) {
  int32x4_t x = vqrdmulhq_s32(vshlq_s32(acc, rq->left), rq->multiplier);
  /* right_neg has its sign bit set iff there is a right shift: then fixup = -1 for x < 0 */
  const int32x4_t fixup = vshrq_n_s32(vandq_s32(x, rq->right_neg), 31);
  x = vrshlq_s32(vqaddq_s32(x, fixup), rq->right_neg);
  x = vaddq_s32(x, rq->out_zp);
  return vminq_s32(vmaxq_s32(x, rq->act_min), rq->act_max);
}

/* Eight clamped int32 values (already in [0, 255]) -> eight bytes. */
static inline uint8x8_t mnq_rq_neon_narrow(int32x4_t lo, int32x4_t hi) {
  return vqmovn_u16(vcombine_u16(vqmovun_s32(lo), vqmovun_s32(hi)));
}

/* Row pointers of one MR-pixel tile of a pointwise GEMM: a short tile repeats its
 * last pixel, and rows whose K is not a multiple of the k-step are copied
 * zero-padded to Kp bytes into scratch (mr * Kp bytes) so loads stay in bounds. */
static inline void mnq_neon_tile_rows(const uint8_t *in, long m, int rows, int K, int Kp, int mr,
                                      uint8_t *scratch, const uint8_t **x) {
  for (int p = 0; p < mr; p++) {
    x[p] = in + (m + (p < rows ? p : rows - 1)) * K;
    if (K != Kp) {
      uint8_t *padded = scratch + (size_t)p * Kp;
      memcpy(padded, x[p], (size_t)K);
      memset(padded + K, 0, (size_t)(Kp - K));
      x[p] = padded;
    }
  }
}

#endif
