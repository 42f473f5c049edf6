/* The output-pixel walk every x86 im2col shares (plain C, no intrinsics): rows
 * are output pixels with the batch folded in, visited in order. */
#ifndef MNQ_X86_IM2COL_WALK_H
#define MNQ_X86_IM2COL_WALK_H

#include "../internal.h"

/* Output pixel (img, oy, ox); its kernel window starts at input column ix0, and
 * kernel columns [kx0, kx1) fall inside the image (contiguous in NHWC). */
typedef struct {
  long img;
  int oy, ox, ix0, kx0, kx1;
} mnq_im2col_pos;

/* Just before row r0: the first mnq_im2col_next() lands on it. Incremental, as
 * a division per row cost more than the copies. */
static inline mnq_im2col_pos mnq_im2col_before(const mnq_layer_desc *d, long r0) {
  mnq_im2col_pos p = {r0 / ((long)d->out_h * d->out_w), (int)(r0 / d->out_w % d->out_h), (int)(r0 % d->out_w) - 1,
                      0, 0, 0};
  return p;
}

static inline void mnq_im2col_next(const mnq_layer_desc *d, mnq_im2col_pos *p) {
  if (++p->ox == d->out_w) {
    p->ox = 0;
    if (++p->oy == d->out_h) p->oy = 0, p->img++;
  }
  p->ix0 = p->ox * d->stride_w - d->pad_left;
  p->kx0 = p->ix0 < 0 ? -p->ix0 : 0;
  p->kx1 = d->in_w - p->ix0 < d->k_w ? d->in_w - p->ix0 : d->k_w;
}

/* Element offset of input pixel (img, iy, ix) in NHWC; ix may be negative (before the row). */
static inline long mnq_im2col_offset(const mnq_layer_desc *d, const mnq_im2col_pos *p, int iy, int ix) {
  return ((p->img * d->in_h + iy) * d->in_w + ix) * d->in_c;
}

#endif
