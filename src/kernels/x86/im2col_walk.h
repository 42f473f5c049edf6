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

/* Kernel row ky of an im2col row for pixel p: fill says some taps lie outside the image
 * (the caller first sets the kernel row's k_w*in_c bytes to in_zp), then n bytes of
 * in-image taps go from in + src to row + dst (n = 0: the kernel row is off the image). */
typedef struct {
  long src, dst, n;
  int fill;
} mnq_im2col_run;

static inline mnq_im2col_run mnq_im2col_run_of(const mnq_layer_desc *d, const mnq_im2col_pos *p, int ky) {
  const int iy = p->oy * d->stride_h - d->pad_top + ky, inside = iy >= 0 && iy < d->in_h;
  mnq_im2col_run run = {0, ((long)ky * d->k_w + p->kx0) * d->in_c, 0, !inside || p->kx0 > 0 || p->kx1 < d->k_w};
  if (inside && p->kx0 < p->kx1) {
    run.src = mnq_im2col_offset(d, p, iy, p->ix0 + p->kx0);
    run.n = (long)(p->kx1 - p->kx0) * d->in_c;
  }
  return run;
}

/* The ISA's byte moves: fill sets n bytes to v (it may write past them, up to the row's
 * end), copy moves n bytes. */
typedef void (*mnq_im2col_fill_fn)(uint8_t *dst, long n, uint8_t v);
typedef void (*mnq_im2col_copy_fn)(uint8_t *dst, const uint8_t *src, long n);

/* im2col for output pixels [r0, r0 + rows) (batch folded in): row r of buf (stride lda)
 * holds the K = k_h*k_w*in_c taps in weight order, then `pad` zero bytes. Taps outside the
 * image get in_zp, adding in_zp * (w - w_zp), which the conv's folded bias (taken over all
 * taps) cancels exactly. Always inlined, so each ISA's moves inline into the loop. */
static inline __attribute__((always_inline)) void mnq_im2col_rows(const mnq_layer_desc *d, const uint8_t *in,
                                                                  long r0, long rows, uint8_t *buf, long lda,
                                                                  long pad, mnq_im2col_fill_fn fill,
                                                                  mnq_im2col_copy_fn copy) {
  const long kwc = (long)d->k_w * d->in_c, K = d->k_h * kwc;
  const uint8_t zp = (uint8_t)d->in_zp;
  mnq_im2col_pos p = mnq_im2col_before(d, r0);
  for (long r = 0; r < rows; r++) {
    mnq_im2col_next(d, &p);
    uint8_t *row = buf + r * lda;
    for (int ky = 0; ky < d->k_h; ky++) {
      const mnq_im2col_run run = mnq_im2col_run_of(d, &p, ky);
      if (run.fill) fill(row + ky * kwc, kwc, zp);
      if (run.n) copy(row + run.dst, in + run.src, run.n);
    }
    fill(row + K, pad, 0);
  }
}

#endif
