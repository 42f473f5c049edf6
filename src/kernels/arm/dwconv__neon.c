/* Depthwise uint8 conv (any kernel size, stride and padding) with plain NEON,
 * one source for aarch64 and ARMv7: 8 channels per step, input widened to int16
 * minus its zero point, int16 weights (w - zw), vmlal into int32. Taps outside
 * the image are skipped, as in TFLite. The dot product does not help here (the
 * reduction runs over taps, not over adjacent bytes), so aarch64 with and
 * without it share this kernel.
 * Packed layout: int32 bias[Cp], then int16 w[k_h * k_w][Cp], Cp = C rounded to 8. */
#include <arm_neon.h>
#include <stdlib.h>

#include "../internal.h"
#include "neon_kernels.h"
#include "requant_neon.h"

enum { CR = 8 };

int mnq_dwconv_u8_prepare__neon(mnq_layer *L) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c, Cp = (C + CR - 1) / CR * CR, taps = d->k_h * d->k_w;
  uint8_t *p = calloc(1, (size_t)Cp * 4 + (size_t)taps * Cp * 2);
  if (!p) return -1;
  int32_t *bias = (int32_t *)p;
  int16_t *wp = (int16_t *)(p + (size_t)Cp * 4);
  for (int c = 0; c < C; c++) {
    bias[c] = d->bias ? d->bias[c] : 0;
    for (int t = 0; t < taps; t++) wp[(size_t)t * Cp + c] = (int16_t)(d->weights[(size_t)t * C + c] - d->w_zp);
  }
  L->packed = p;
  return 0;
}

void mnq_dwconv_u8__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c, Cp = (C + CR - 1) / CR * CR;
  const int32_t *bias = (const int32_t *)L->packed;
  const int16_t *weights = (const int16_t *)((const uint8_t *)L->packed + (size_t)Cp * 4);
  const mnq_rq_neon rq = mnq_rq_neon_init(d);
  const int16x8_t in_zp = vdupq_n_s16((int16_t)d->in_zp);
  long r0, r1;
  mnq_partition((long)batch * d->out_h, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int oy = (int)(r % d->out_h);
    /* valid tap rows/columns are contiguous ranges: no bounds test in the inner loop */
    const int y0 = oy * d->stride_h - d->pad_top;
    const int ky0 = y0 < 0 ? -y0 : 0, ky1 = d->in_h - y0 < d->k_h ? d->in_h - y0 : d->k_h;
    for (int ox = 0; ox < d->out_w; ox++) {
      const int x0 = ox * d->stride_w - d->pad_left;
      const int kx0 = x0 < 0 ? -x0 : 0, kx1 = d->in_w - x0 < d->k_w ? d->in_w - x0 : d->k_w;
      uint8_t *o = out + (r * d->out_w + ox) * C;
      for (int c = 0; c < C; c += CR) {
        const int full = c + CR <= C;
        int32x4_t acc0 = vld1q_s32(bias + c), acc1 = vld1q_s32(bias + c + 4);
        for (int ky = ky0; ky < ky1; ky++) {
          const long xrow = ((n * d->in_h + y0 + ky) * d->in_w + x0) * C + c; /* + kx * C: inside */
          const int16_t *wrow = weights + (size_t)ky * d->k_w * Cp + c;
          for (int kx = kx0; kx < kx1; kx++) {
            uint8x8_t xv;
            if (full) {
              xv = vld1_u8(in + xrow + (long)kx * C);
            } else { /* channel tail: never read past the tensor */
              uint8_t tmp[CR] = {0};
              memcpy(tmp, in + xrow + (long)kx * C, (size_t)(C - c));
              xv = vld1_u8(tmp);
            }
            const int16x8_t xs = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(xv)), in_zp);
            const int16x8_t wv = vld1q_s16(wrow + (size_t)kx * Cp);
            acc0 = vmlal_s16(acc0, vget_low_s16(xs), vget_low_s16(wv));
            acc1 = vmlal_s16(acc1, vget_high_s16(xs), vget_high_s16(wv));
          }
        }
        const uint8x8_t y = mnq_rq_neon_narrow(mnq_rq_neon_apply(acc0, &rq), mnq_rq_neon_apply(acc1, &rq));
        if (full) {
          vst1_u8(o + c, y);
        } else {
          uint8_t tmp[CR];
          vst1_u8(tmp, y);
          memcpy(o + c, tmp, (size_t)(C - c));
        }
      }
    }
  }
}
