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
#include "neon_kernels.h"
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
  /* + one tap of zero weights: 3x3 border pixels point their outside taps at it */
  uint8_t *mem = calloc(1, head + params + (size_t)(taps + 1) * Cp * 2);
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

/* A channel block's requantization, loaded once per run of pixels. */
typedef struct {
  int32x4_t m0, m1, m2, m3, l0, l1, l2, l3, r0, r1, r2, r3;
  int16x8_t zp;
  uint8x16_t lo, hi;
} block_rq;

static inline __attribute__((always_inline)) block_rq load_rq(const dw_packed *pk, int c0) {
  const int32_t *mp = pk->rq.multiplier + c0, *lp = pk->rq.left_shift + c0, *rp = pk->rq.right_shift_neg + c0;
  block_rq q;
  q.m0 = vld1q_s32(mp), q.m1 = vld1q_s32(mp + 4), q.m2 = vld1q_s32(mp + 8), q.m3 = vld1q_s32(mp + 12);
  q.l0 = vld1q_s32(lp), q.l1 = vld1q_s32(lp + 4), q.l2 = vld1q_s32(lp + 8), q.l3 = vld1q_s32(lp + 12);
  q.r0 = vld1q_s32(rp), q.r1 = vld1q_s32(rp + 4), q.r2 = vld1q_s32(rp + 8), q.r3 = vld1q_s32(rp + 12);
  q.zp = vdupq_n_s16(pk->rq.out_zp);
  q.lo = vdupq_n_u8(pk->rq.act_min), q.hi = vdupq_n_u8(pk->rq.act_max);
  return q;
}

/* Requantizes four accumulators and stores the first `valid` (<= 16) channels. */
static inline __attribute__((always_inline)) void requant_store(const block_rq *q, int32x4_t a0, int32x4_t a1,
                                                                int32x4_t a2, int32x4_t a3, uint8_t *o, int valid,
                                                                const int right_only) {
  const int32x4_t y0 = mnq_arm_rq_scale(a0, q->m0, q->l0, q->r0, right_only);
  const int32x4_t y1 = mnq_arm_rq_scale(a1, q->m1, q->l1, q->r1, right_only);
  const int32x4_t y2 = mnq_arm_rq_scale(a2, q->m2, q->l2, q->r2, right_only);
  const int32x4_t y3 = mnq_arm_rq_scale(a3, q->m3, q->l3, q->r3, right_only);
  const uint8x16_t y =
      mnq_arm_rq_u8x16(mnq_arm_rq_add_zp(y0, y1, q->zp), mnq_arm_rq_add_zp(y2, y3, q->zp), q->lo, q->hi);
  if (valid >= CB) {
    vst1q_u8(o, y);
  } else {
    uint8_t tmp[CB];
    vst1q_u8(tmp, y);
    memcpy(o, tmp, (size_t)valid);
  }
}

/* Output pixels [ox0, ox1) of row oy, channels [c0, c0 + 16), tap ranges checked per
 * pixel: borders, channel tails and kernel shapes other than 3x3. */
static inline __attribute__((always_inline)) void pixels_any(const mnq_layer_desc *d, const dw_packed *pk,
                                                             const uint8_t *in, uint8_t *out, long n, int oy,
                                                             int c0, int ox0, int ox1, const int right_only) {
  const int C = d->out_c, Cp = pk->Cp, valid = C - c0;
  const uint8x8_t zx = vdup_n_u8((uint8_t)d->in_zp);
  const int y0 = oy * d->stride_h - d->pad_top;
  const int ky0 = y0 < 0 ? -y0 : 0, ky1 = d->in_h - y0 < d->k_h ? d->in_h - y0 : d->k_h;
  const block_rq q = load_rq(pk, c0);
  for (int ox = ox0; ox < ox1; ox++) {
    const int x0 = ox * d->stride_w - d->pad_left;
    const int kx0 = x0 < 0 ? -x0 : 0, kx1 = d->in_w - x0 < d->k_w ? d->in_w - x0 : d->k_w;
    const int32_t *bp = pk->bias + c0;
    int32x4_t a0 = vld1q_s32(bp), a1 = vld1q_s32(bp + 4), a2 = vld1q_s32(bp + 8), a3 = vld1q_s32(bp + 12);
    for (int ky = ky0; ky < ky1; ky++)
      for (int kx = kx0; kx < kx1; kx++)
        tap(&a0, &a1, &a2, &a3, load_x(in + (((n * d->in_h + y0 + ky) * d->in_w + x0 + kx) * C + c0), valid),
            pk->weights + (size_t)(ky * d->k_w + kx) * Cp + c0, zx);
    requant_store(&q, a0, a1, a2, a3, out + (((n * d->out_h + oy) * d->out_w + ox) * C + c0), valid, right_only);
  }
}

/* 3x3, all taps inside, 16 full channels: pixels [ox0, ox1) of row oy. */
static inline __attribute__((always_inline)) void pixels_3x3(const mnq_layer_desc *d, const dw_packed *pk,
                                                             const uint8_t *in, uint8_t *out, long n, int oy,
                                                             int c0, int ox0, int ox1, const int right_only) {
  const long C = d->out_c, Cp = pk->Cp, rs = (long)d->in_w * C;
  const uint8x8_t zx = vdup_n_u8((uint8_t)d->in_zp);
  const uint8_t *p = in + ((n * d->in_h + oy * d->stride_h - d->pad_top) * d->in_w +
                           (long)ox0 * d->stride_w - d->pad_left) * C + c0;
  const long step = (long)d->stride_w * C;
  const int16_t *w = pk->weights + c0;
  const int32_t *bp = pk->bias + c0;
  uint8_t *o = out + (((n * d->out_h + oy) * d->out_w + ox0) * C + c0);
  const block_rq q = load_rq(pk, (int)c0);
  for (int ox = ox0; ox < ox1; ox++, p += step, o += C) {
    int32x4_t a0 = vld1q_s32(bp), a1 = vld1q_s32(bp + 4), a2 = vld1q_s32(bp + 8), a3 = vld1q_s32(bp + 12);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p), w, zx);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p + C), w + Cp, zx);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p + 2 * C), w + 2 * Cp, zx);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p + rs), w + 3 * Cp, zx);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p + rs + C), w + 4 * Cp, zx);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p + rs + 2 * C), w + 5 * Cp, zx);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p + 2 * rs), w + 6 * Cp, zx);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p + 2 * rs + C), w + 7 * Cp, zx);
    tap(&a0, &a1, &a2, &a3, vld1q_u8(p + 2 * rs + 2 * C), w + 8 * Cp, zx);
    requant_store(&q, a0, a1, a2, a3, o, CB, right_only);
  }
}

static inline int clamp_index(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* 3x3 border pixels [ox0, ox1) of row oy, 16 full channels: a tap outside the image
 * reads a clamped (valid) input position against the zero-weight tap, so it adds 0
 * and the 9 taps stay unrolled. */
static inline __attribute__((always_inline)) void pixels_3x3_border(const mnq_layer_desc *d, const dw_packed *pk,
                                                                    const uint8_t *in, uint8_t *out, long n, int oy,
                                                                    int c0, int ox0, int ox1, const int right_only) {
  const int C = d->out_c, Cp = pk->Cp;
  const uint8x8_t zx = vdup_n_u8((uint8_t)d->in_zp);
  const int16_t *zero_w = pk->weights + (size_t)9 * Cp; /* all taps' zero block */
  const int y0 = oy * d->stride_h - d->pad_top;
  const int row_in0 = y0 >= 0 && y0 < d->in_h, row_in1 = y0 + 1 >= 0 && y0 + 1 < d->in_h;
  const int row_in2 = y0 + 2 >= 0 && y0 + 2 < d->in_h;
  const uint8_t *row0 = in + ((n * d->in_h + clamp_index(y0, d->in_h)) * d->in_w) * C + c0;
  const uint8_t *row1 = in + ((n * d->in_h + clamp_index(y0 + 1, d->in_h)) * d->in_w) * C + c0;
  const uint8_t *row2 = in + ((n * d->in_h + clamp_index(y0 + 2, d->in_h)) * d->in_w) * C + c0;
  const int16_t *w = pk->weights + c0;
  const block_rq q = load_rq(pk, c0);
  for (int ox = ox0; ox < ox1; ox++) {
    const int x0 = ox * d->stride_w - d->pad_left;
    const int col_in0 = x0 >= 0 && x0 < d->in_w, col_in1 = x0 + 1 >= 0 && x0 + 1 < d->in_w;
    const int col_in2 = x0 + 2 >= 0 && x0 + 2 < d->in_w;
    const long col0 = (long)clamp_index(x0, d->in_w) * C, col1 = (long)clamp_index(x0 + 1, d->in_w) * C;
    const long col2 = (long)clamp_index(x0 + 2, d->in_w) * C;
    const int32_t *bp = pk->bias + c0;
    int32x4_t a0 = vld1q_s32(bp), a1 = vld1q_s32(bp + 4), a2 = vld1q_s32(bp + 8), a3 = vld1q_s32(bp + 12);
#define BORDER_TAP(ky, kx) \
  tap(&a0, &a1, &a2, &a3, vld1q_u8(row##ky + col##kx), row_in##ky && col_in##kx ? w + (ky * 3 + kx) * Cp : zero_w, zx)
    BORDER_TAP(0, 0); BORDER_TAP(0, 1); BORDER_TAP(0, 2);
    BORDER_TAP(1, 0); BORDER_TAP(1, 1); BORDER_TAP(1, 2);
    BORDER_TAP(2, 0); BORDER_TAP(2, 1); BORDER_TAP(2, 2);
#undef BORDER_TAP
    requant_store(&q, a0, a1, a2, a3, out + (((n * d->out_h + oy) * d->out_w + ox) * C + c0), CB, right_only);
  }
}

/* One output row: per block of 16 channels, border pixels through pixels_3x3_border
 * and the interior through pixels_3x3; other kernel shapes and channel tails
 * through pixels_any. */
static inline __attribute__((always_inline)) void row(const mnq_layer_desc *d, const dw_packed *pk,
                                                      const uint8_t *in, uint8_t *out, long n, int oy,
                                                      const int right_only) {
  const int is3x3 = d->k_h == 3 && d->k_w == 3;
  const int y0 = oy * d->stride_h - d->pad_top;
  int ox_lo = d->out_w, ox_hi = d->out_w; /* interior columns: x0 >= 0 and x0 + 3 <= in_w */
  if (is3x3 && y0 >= 0 && y0 + 3 <= d->in_h && d->in_w >= 3) {
    ox_lo = (d->pad_left + d->stride_w - 1) / d->stride_w;
    ox_hi = (d->in_w - 3 + d->pad_left) / d->stride_w + 1;
    if (ox_hi > d->out_w) ox_hi = d->out_w;
    if (ox_lo > ox_hi) ox_lo = ox_hi;
  }
  for (int c0 = 0; c0 < d->out_c; c0 += CB) {
    if (!is3x3 || d->out_c - c0 < CB) {
      pixels_any(d, pk, in, out, n, oy, c0, 0, d->out_w, right_only);
      continue;
    }
    pixels_3x3_border(d, pk, in, out, n, oy, c0, 0, ox_lo, right_only);
    pixels_3x3(d, pk, in, out, n, oy, c0, ox_lo, ox_hi, right_only);
    pixels_3x3_border(d, pk, in, out, n, oy, c0, ox_hi, d->out_w, right_only);
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
    if (pk->rq.right_only) row(d, pk, in, out, n, oy, 1);
    else row(d, pk, in, out, n, oy, 0);
  }
}
