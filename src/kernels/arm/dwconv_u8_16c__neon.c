/* Depthwise uint8 conv (any kernel size, stride and padding), plain NEON, one source
 * for aarch64 and ARMv7; the dot product does not help here (the reduction runs over
 * taps, not adjacent bytes), so both ARM levels use it.
 * 16 channels a step: each tap loads 16 input bytes once, widens them minus the
 * input zero point (exact in int16), and multiply-accumulates int16 (w - zw) into
 * four int32 accumulators that stay in registers for the whole pixel. The loop runs
 * channel block outside, pixels of an output row inside, so the block's bias and
 * requantization parameters stay in registers along the row. A 3x3 pixel whose taps
 * are all inside the image takes an unrolled path; others skip outside taps (as in
 * TFLite) with the same per-tap code.
 * Packed: this header, int32 bias[Cp], requantization (3 x Cp), int16 w[taps][Cp],
 * Cp = C rounded up to 16. */
#include <arm_neon.h>
#include <stdlib.h>

#include "../internal.h"
#include "requant_neon.h"

enum { CB = 16 };

typedef struct {
  int Cp;
  const int32_t *bias;
  mnq_arm_rq rq;
  const int16_t *weights;
} dw_packed;

int mnq_dwconv_u8_prepare__neon(mnq_layer *L) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c, Cp = (C + CB - 1) / CB * CB, taps = d->k_h * d->k_w;
  const size_t head = (sizeof(dw_packed) + 63) & ~(size_t)63;
  const size_t params = (size_t)Cp * 4 + mnq_arm_rq_bytes(Cp);
  uint8_t *mem = calloc(1, head + params + (size_t)taps * Cp * 2);
  if (!mem) return -1;
  dw_packed *pk = (dw_packed *)mem;
  int32_t *bias = (int32_t *)(mem + head);
  int16_t *wp = (int16_t *)(mem + head + params);
  mnq_arm_rq_fill(&pk->rq, bias + Cp, d, Cp);
  for (int c = 0; c < C; c++) {
    bias[c] = d->bias ? d->bias[c] : 0;
    for (int t = 0; t < taps; t++) wp[(size_t)t * Cp + c] = (int16_t)(d->weights[(size_t)t * C + c] - d->w_zp);
  }
  pk->Cp = Cp;
  pk->bias = bias;
  pk->weights = wp;
  L->packed = pk;
  return 0;
}

/* acc += (x[0..16) - zx) * w[0..16) */
static inline void tap(int32x4_t *a0, int32x4_t *a1, int32x4_t *a2, int32x4_t *a3, uint8x16_t xv, const int16_t *w,
                       uint8x8_t zx) {
  const int16x8_t lo = vreinterpretq_s16_u16(vsubl_u8(vget_low_u8(xv), zx));
  const int16x8_t w0 = vld1q_s16(w), w1 = vld1q_s16(w + 8);
#ifdef __aarch64__
  const int16x8_t hi = vreinterpretq_s16_u16(vsubl_high_u8(xv, vcombine_u8(zx, zx)));
  *a0 = vmlal_s16(*a0, vget_low_s16(lo), vget_low_s16(w0));
  *a1 = vmlal_high_s16(*a1, lo, w0);
  *a2 = vmlal_s16(*a2, vget_low_s16(hi), vget_low_s16(w1));
  *a3 = vmlal_high_s16(*a3, hi, w1);
#else
  const int16x8_t hi = vreinterpretq_s16_u16(vsubl_u8(vget_high_u8(xv), zx));
  *a0 = vmlal_s16(*a0, vget_low_s16(lo), vget_low_s16(w0));
  *a1 = vmlal_s16(*a1, vget_high_s16(lo), vget_high_s16(w0));
  *a2 = vmlal_s16(*a2, vget_low_s16(hi), vget_low_s16(w1));
  *a3 = vmlal_s16(*a3, vget_high_s16(hi), vget_high_s16(w1));
#endif
}

/* 16 input bytes at x, or the first `valid` of them (channel tail: never read past the tensor) */
static inline uint8x16_t load_x(const uint8_t *x, int valid) {
  if (valid >= CB) return vld1q_u8(x);
  uint8_t tmp[CB] = {0};
  memcpy(tmp, x, (size_t)valid);
  return vld1q_u8(tmp);
}

/* One output row, one block of 16 channels. right_only is a constant in each caller. */
static inline void row_block(const mnq_layer_desc *d, const dw_packed *pk, const uint8_t *in, uint8_t *out, long n,
                             int oy, int c0, const int right_only) {
  const int C = d->out_c, Cp = pk->Cp, valid = C - c0;
  const uint8x8_t zx = vdup_n_u8((uint8_t)d->in_zp);
  const int32_t *bp = pk->bias + c0, *mp = pk->rq.multiplier + c0, *lp = pk->rq.left_shift + c0;
  const int32_t *rp = pk->rq.right_shift_neg + c0;
  const int32x4_t b0 = vld1q_s32(bp), b1 = vld1q_s32(bp + 4), b2 = vld1q_s32(bp + 8), b3 = vld1q_s32(bp + 12);
  const int32x4_t m0 = vld1q_s32(mp), m1 = vld1q_s32(mp + 4), m2 = vld1q_s32(mp + 8), m3 = vld1q_s32(mp + 12);
  const int32x4_t l0 = vld1q_s32(lp), l1 = vld1q_s32(lp + 4), l2 = vld1q_s32(lp + 8), l3 = vld1q_s32(lp + 12);
  const int32x4_t r0 = vld1q_s32(rp), r1 = vld1q_s32(rp + 4), r2 = vld1q_s32(rp + 8), r3 = vld1q_s32(rp + 12);
  const int16x8_t zp = vdupq_n_s16(pk->rq.out_zp);
  const uint8x16_t lo = vdupq_n_u8(pk->rq.act_min), hi = vdupq_n_u8(pk->rq.act_max);
  /* valid tap rows are a contiguous range: no bounds test per tap */
  const int y0 = oy * d->stride_h - d->pad_top;
  const int ky0 = y0 < 0 ? -y0 : 0, ky1 = d->in_h - y0 < d->k_h ? d->in_h - y0 : d->k_h;
  const int fast_rows = d->k_h == 3 && d->k_w == 3 && ky0 == 0 && ky1 == 3 && valid >= CB;
  const long row_stride = (long)d->in_w * C;
  const long in_base = ((n * d->in_h + y0) * d->in_w) * C + c0; /* + ky * row_stride + ix * C: inside */
  const int16_t *w = pk->weights + c0;
  uint8_t *o = out + ((n * d->out_h + oy) * (long)d->out_w) * C + c0;
  for (int ox = 0; ox < d->out_w; ox++, o += C) {
    const int x0 = ox * d->stride_w - d->pad_left;
    const int kx0 = x0 < 0 ? -x0 : 0, kx1 = d->in_w - x0 < d->k_w ? d->in_w - x0 : d->k_w;
    int32x4_t a0 = b0, a1 = b1, a2 = b2, a3 = b3;
    if (fast_rows && kx0 == 0 && kx1 == 3) {
      const uint8_t *p = in + in_base + (long)x0 * C;
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p), w, zx);
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p + C), w + Cp, zx);
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p + 2 * C), w + 2 * Cp, zx);
      p += row_stride;
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p), w + 3 * Cp, zx);
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p + C), w + 4 * Cp, zx);
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p + 2 * C), w + 5 * Cp, zx);
      p += row_stride;
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p), w + 6 * Cp, zx);
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p + C), w + 7 * Cp, zx);
      tap(&a0, &a1, &a2, &a3, vld1q_u8(p + 2 * C), w + 8 * Cp, zx);
    } else {
      for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++)
          tap(&a0, &a1, &a2, &a3, load_x(in + in_base + ky * row_stride + (long)(x0 + kx) * C, valid),
              w + (size_t)(ky * d->k_w + kx) * Cp, zx);
    }
    const int32x4_t y0v = mnq_arm_rq_scale(a0, m0, l0, r0, right_only);
    const int32x4_t y1v = mnq_arm_rq_scale(a1, m1, l1, r1, right_only);
    const int32x4_t y2v = mnq_arm_rq_scale(a2, m2, l2, r2, right_only);
    const int32x4_t y3v = mnq_arm_rq_scale(a3, m3, l3, r3, right_only);
    const uint8x16_t y = mnq_arm_rq_u8x16(mnq_arm_rq_add_zp(y0v, y1v, zp), mnq_arm_rq_add_zp(y2v, y3v, zp), lo, hi);
    if (valid >= CB) {
      vst1q_u8(o, y);
    } else {
      uint8_t tmp[CB];
      vst1q_u8(tmp, y);
      memcpy(o, tmp, (size_t)valid);
    }
  }
}

void mnq_dwconv_u8_16c__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const dw_packed *pk = (const dw_packed *)L->packed;
  long r0, r1;
  mnq_partition((long)batch * d->out_h, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int oy = (int)(r % d->out_h);
    for (int c0 = 0; c0 < d->out_c; c0 += CB) {
      if (pk->rq.right_only) row_block(d, pk, in, out, n, oy, c0, 1);
      else row_block(d, pk, in, out, n, oy, c0, 0);
    }
  }
}
