/* Depthwise uint8 conv (any kernel size, stride and padding), plain NEON, one source
 * for aarch64 and ARMv7; the dot product does not help here (the reduction runs over
 * taps, not adjacent bytes), so both ARM levels use it.
 * 16 channels a step: each tap's 16 input bytes are widened minus the input zero
 * point (exact in int16) and multiply-accumulated with int16 (w - zw) into four int32
 * accumulators that stay in registers for the whole pixel. The loop runs channel
 * block outside, pixels of an output row inside, so the block's bias and
 * requantization parameters stay in registers along the row. 3x3 pixels go through
 * unrolled paths (on aarch64 assembly that shares each input column between the
 * pixels of a group); others skip outside taps (as in TFLite) with the same per-tap
 * code.
 * Packed: this header, int32 bias[Cp], requantization (3 x Cp), then int16 weights
 * by block of 16 channels, w[block][tap][16] (a block's taps are contiguous: the
 * assembly loads two taps an instruction), then 3 x 16 zeros; Cp = C rounded up to 16. */
#include <arm_neon.h>
#include <stdlib.h>

#include "../internal.h"
#include "neon_kernels.h"
#include "requant_neon.h"

enum { CB = 16 };

typedef struct {
  int Cp, taps;
  const int32_t *bias;
  mnq_arm_rq rq;
  const int16_t *weights;
} dw_packed;

int mnq_dwconv_u8_prepare__neon(mnq_layer *L) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c, Cp = (C + CB - 1) / CB * CB, taps = d->k_h * d->k_w;
  const size_t head = (sizeof(dw_packed) + 63) & ~(size_t)63;
  const size_t params = (size_t)Cp * 4 + mnq_arm_rq_bytes(Cp);
  /* + a kernel row of zero weights (3 taps): 3x3 taps outside the image point at it */
  uint8_t *mem = calloc(1, head + params + ((size_t)taps * Cp + 3 * CB) * 2);
  if (!mem) return -1;
  dw_packed *pk = (dw_packed *)mem;
  int32_t *bias = (int32_t *)(mem + head);
  int16_t *wp = (int16_t *)(mem + head + params);
  mnq_arm_rq_fill(&pk->rq, bias + Cp, d, Cp);
  for (int c = 0; c < C; c++) {
    bias[c] = d->bias ? d->bias[c] : 0;
    for (int t = 0; t < taps; t++)
      wp[((size_t)(c / CB) * taps + t) * CB + c % CB] = (int16_t)(d->weights[(size_t)t * C + c] - d->w_zp);
  }
  pk->Cp = Cp, pk->taps = taps;
  pk->bias = bias;
  pk->weights = wp;
  L->packed = pk;
  return 0;
}

/* 3 taps of zero weights, for taps outside the image */
static inline const int16_t *zero_weights(const dw_packed *pk) { return pk->weights + (size_t)pk->taps * pk->Cp; }

/* channels [c0, c0 + 16): tap t's 16 weights at + t * CB */
static inline const int16_t *block_weights(const dw_packed *pk, int c0) { return pk->weights + (size_t)c0 * pk->taps; }

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

/* Requantizes four accumulators and stores the first `valid` (<= 16) channels. */
static inline __attribute__((always_inline)) void requant_store(const mnq_arm_rq16 *q, int32x4_t a0, int32x4_t a1,
                                                                int32x4_t a2, int32x4_t a3, uint8_t *o, int valid,
                                                                const int form) {
  const uint8x16_t y = mnq_arm_rq16_apply(q, a0, a1, a2, a3, form);
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
                                                             int c0, int ox0, int ox1, const int form) {
  const int C = d->out_c, valid = C - c0;
  const int16_t *w = block_weights(pk, c0);
  const uint8x8_t zx = vdup_n_u8((uint8_t)d->in_zp);
  const int y0 = oy * d->stride_h - d->pad_top;
  const int ky0 = y0 < 0 ? -y0 : 0, ky1 = d->in_h - y0 < d->k_h ? d->in_h - y0 : d->k_h;
  const mnq_arm_rq16 q = mnq_arm_rq16_load(&pk->rq, c0, form);
  for (int ox = ox0; ox < ox1; ox++) {
    const int x0 = ox * d->stride_w - d->pad_left;
    const int kx0 = x0 < 0 ? -x0 : 0, kx1 = d->in_w - x0 < d->k_w ? d->in_w - x0 : d->k_w;
    const int32_t *bp = pk->bias + c0;
    int32x4_t a0 = vld1q_s32(bp), a1 = vld1q_s32(bp + 4), a2 = vld1q_s32(bp + 8), a3 = vld1q_s32(bp + 12);
    for (int ky = ky0; ky < ky1; ky++)
      for (int kx = kx0; kx < kx1; kx++)
        tap(&a0, &a1, &a2, &a3, load_x(in + (((n * d->in_h + y0 + ky) * d->in_w + x0 + kx) * C + c0), valid),
            w + (ky * d->k_w + kx) * CB, zx);
    requant_store(&q, a0, a1, a2, a3, out + (((n * d->out_h + oy) * d->out_w + ox) * C + c0), valid, form);
  }
}

#ifdef __aarch64__
/* Two or four pixels of a 3x3 row, 16 channels, as inline assembly (from intrinsics GCC
 * spilled and reloaded weights). Per kernel row: two loads bring its 3 taps' weights
 * (v16..v21), then each input column the group needs (pair: 4 at stride 1, 5 at stride
 * 2; four pixels at stride 1: 6) is loaded and widened once (v22 -> v23, v24) and
 * multiply-accumulated into every pixel that has a tap on it. The accumulators are
 * outputs, requantized by the caller. */
#define DW_COL(at) "ldr q22, " at "\n usubl v23.8h, v22.8b, %[zx].8b\n usubl2 v24.8h, v22.16b, %[zx].16b\n"
#define DW_MAC_(a0, a1, a2, a3, wl, wh)                                                                   \
  "smlal %[" a0 "].4s, v23.4h, " wl ".4h\n smlal2 %[" a1 "].4s, v23.8h, " wl ".8h\n"                      \
  "smlal %[" a2 "].4s, v24.4h, " wh ".4h\n smlal2 %[" a3 "].4s, v24.8h, " wh ".8h\n"
#define DW_MAC(acc, w) DW_MAC_(acc, w)
#define DW_A "a0", "a1", "a2", "a3"
#define DW_B "b0", "b1", "b2", "b3"
#define DW_W0 "v16", "v17"
#define DW_W1 "v18", "v19"
#define DW_W2 "v20", "v21"
#define DW_WEIGHTS(w) "ld1 {v16.8h - v19.8h}, [%[" w "]]\n ldp q20, q21, [%[" w "], #64]\n"
#define DW_ROW_S1(r, w)                                                                                            \
  DW_WEIGHTS(w)                                                                                                    \
  DW_COL("[%[" r "]]") DW_MAC(DW_A, DW_W0)                                                                         \
  DW_COL("[%[" r "], %[o1]]") DW_MAC(DW_A, DW_W1) DW_MAC(DW_B, DW_W0)                                              \
  DW_COL("[%[" r "], %[o2]]") DW_MAC(DW_A, DW_W2) DW_MAC(DW_B, DW_W1)                                              \
  DW_COL("[%[" r "], %[o3]]") DW_MAC(DW_B, DW_W2)
#define DW_ROW_S2(r, w)                                                                                            \
  DW_WEIGHTS(w)                                                                                                    \
  DW_COL("[%[" r "]]") DW_MAC(DW_A, DW_W0)                                                                         \
  DW_COL("[%[" r "], %[o1]]") DW_MAC(DW_A, DW_W1)                                                                  \
  DW_COL("[%[" r "], %[o2]]") DW_MAC(DW_A, DW_W2) DW_MAC(DW_B, DW_W0)                                              \
  DW_COL("[%[" r "], %[o3]]") DW_MAC(DW_B, DW_W1)                                                                  \
  DW_COL("[%[" r "], %[o4]]") DW_MAC(DW_B, DW_W2)
/* Edge pairs: a left-border pixel (tap column 0 left of the image) with its right
 * neighbour, columns from the image's first; a pixel with its right-border neighbour
 * (whose last tap column is right of the image). The outside column is never read. */
#define DW_ROW_S1_LEFT(r, w)                                                                                       \
  DW_WEIGHTS(w)                                                                                                    \
  DW_COL("[%[" r "]]") DW_MAC(DW_A, DW_W1) DW_MAC(DW_B, DW_W0)                                                     \
  DW_COL("[%[" r "], %[o1]]") DW_MAC(DW_A, DW_W2) DW_MAC(DW_B, DW_W1)                                              \
  DW_COL("[%[" r "], %[o2]]") DW_MAC(DW_B, DW_W2)
#define DW_ROW_S1_RIGHT(r, w)                                                                                      \
  DW_WEIGHTS(w)                                                                                                    \
  DW_COL("[%[" r "]]") DW_MAC(DW_A, DW_W0)                                                                         \
  DW_COL("[%[" r "], %[o1]]") DW_MAC(DW_A, DW_W1) DW_MAC(DW_B, DW_W0)                                              \
  DW_COL("[%[" r "], %[o2]]") DW_MAC(DW_A, DW_W2) DW_MAC(DW_B, DW_W1)
#define DW_ROW_S2_RIGHT(r, w)                                                                                      \
  DW_WEIGHTS(w)                                                                                                    \
  DW_COL("[%[" r "]]") DW_MAC(DW_A, DW_W0)                                                                         \
  DW_COL("[%[" r "], %[o1]]") DW_MAC(DW_A, DW_W1)                                                                  \
  DW_COL("[%[" r "], %[o2]]") DW_MAC(DW_A, DW_W2) DW_MAC(DW_B, DW_W0)                                              \
  DW_COL("[%[" r "], %[o3]]") DW_MAC(DW_B, DW_W1)
#define DW_PAIR(ROW)                                                                                               \
  __asm__ volatile("ldp %q[a0], %q[a1], [%[bias]]\n ldp %q[a2], %q[a3], [%[bias], #32]\n"                          \
                   "ldp %q[b0], %q[b1], [%[bias]]\n ldp %q[b2], %q[b3], [%[bias], #32]\n"                          \
                   ROW("r0", "w0") ROW("r1", "w1") ROW("r2", "w2")                                                 \
                   : [a0] "=&w"(a0), [a1] "=&w"(a1), [a2] "=&w"(a2), [a3] "=&w"(a3), [b0] "=&w"(b0),               \
                     [b1] "=&w"(b1), [b2] "=&w"(b2), [b3] "=&w"(b3)                                                \
                   : [r0] "r"(rows[0] + at), [r1] "r"(rows[1] + at), [r2] "r"(rows[2] + at), [w0] "r"(wrow[0]),     \
                     [w1] "r"(wrow[1]), [w2] "r"(wrow[2]), [bias] "r"(bp), [o1] "r"(C), [o2] "r"(2 * C),           \
                     [o3] "r"(3 * C), [o4] "r"(4 * C), [zx] "w"(zx16)                                              \
                   : "memory", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24")
/* Four pixels at stride 1: 6 columns a kernel row, the weights loaded once for four. */
#define DW_C "c0", "c1", "c2", "c3"
#define DW_D "d0", "d1", "d2", "d3"
#define DW_ROW_QUAD(r, w)                                                                                          \
  DW_WEIGHTS(w)                                                                                                    \
  DW_COL("[%[" r "]]") DW_MAC(DW_A, DW_W0)                                                                         \
  DW_COL("[%[" r "], %[o1]]") DW_MAC(DW_A, DW_W1) DW_MAC(DW_B, DW_W0)                                              \
  DW_COL("[%[" r "], %[o2]]") DW_MAC(DW_A, DW_W2) DW_MAC(DW_B, DW_W1) DW_MAC(DW_C, DW_W0)                          \
  DW_COL("[%[" r "], %[o3]]") DW_MAC(DW_B, DW_W2) DW_MAC(DW_C, DW_W1) DW_MAC(DW_D, DW_W0)                          \
  DW_COL("[%[" r "], %[o4]]") DW_MAC(DW_C, DW_W2) DW_MAC(DW_D, DW_W1)                                              \
  DW_COL("[%[" r "], %[o5]]") DW_MAC(DW_D, DW_W2)
#define DW_INIT(p) "ldp %q[" p "0], %q[" p "1], [%[bias]]\n ldp %q[" p "2], %q[" p "3], [%[bias], #32]\n"
#define DW_QUAD                                                                                                    \
  __asm__ volatile(DW_INIT("a") DW_INIT("b") DW_INIT("c") DW_INIT("d")                                             \
                   DW_ROW_QUAD("r0", "w0") DW_ROW_QUAD("r1", "w1") DW_ROW_QUAD("r2", "w2")                         \
                   : [a0] "=&w"(a0), [a1] "=&w"(a1), [a2] "=&w"(a2), [a3] "=&w"(a3), [b0] "=&w"(b0),               \
                     [b1] "=&w"(b1), [b2] "=&w"(b2), [b3] "=&w"(b3), [c0] "=&w"(c0), [c1] "=&w"(c1),               \
                     [c2] "=&w"(c2), [c3] "=&w"(c3), [d0] "=&w"(d0), [d1] "=&w"(d1), [d2] "=&w"(d2), [d3] "=&w"(d3) \
                   : [r0] "r"(rows[0] + at), [r1] "r"(rows[1] + at), [r2] "r"(rows[2] + at), [w0] "r"(wrow[0]),     \
                     [w1] "r"(wrow[1]), [w2] "r"(wrow[2]), [bias] "r"(bp), [o1] "r"(C), [o2] "r"(2 * C),           \
                     [o3] "r"(3 * C), [o4] "r"(4 * C), [o5] "r"(5 * C), [zx] "w"(zx16)                             \
                   : "memory", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24")
#endif

static inline int clamp_index(int i, int n) { return i < 0 ? 0 : i >= n ? n - 1 : i; }

/* One 3x3 pixel whose tap columns are inside: rows[ky] + at is its column 0 in kernel
 * row ky, against that row's weights wrow[ky]. */
static inline __attribute__((always_inline)) void one_pixel(const uint8_t *const *rows, const int16_t *const *wrow,
                                                            long at, long C, const int32_t *bp,
                                                            const mnq_arm_rq16 *q, uint8_t *o, uint8x8_t zx,
                                                            const int form) {
  int32x4_t a0 = vld1q_s32(bp), a1 = vld1q_s32(bp + 4), a2 = vld1q_s32(bp + 8), a3 = vld1q_s32(bp + 12);
  for (int t = 0; t < 9; t++) tap(&a0, &a1, &a2, &a3, vld1q_u8(rows[t / 3] + at + t % 3 * C), wrow[t / 3] + t % 3 * CB, zx);
  requant_store(q, a0, a1, a2, a3, o, CB, form);
}

/* 3x3, 16 full channels, pixels [ox0, ox1) of row oy whose columns are all inside the
 * image, except (aarch64 only) a left-border first pixel (left_edge: stride 1, its tap
 * column 0 left of the image) and a right-border last pixel (right_edge: its last tap
 * column right of the image), each taken in a pair with its neighbour. A kernel row
 * outside the image reads a clamped (valid) row against zero weights, so it adds 0 and
 * every tap stays unrolled. On aarch64 at stride 1 (a constant in each instantiation)
 * four pixels at a time, then two; at stride 2 two; stride 0 stands for any other, one
 * at a time. */
static inline __attribute__((always_inline)) void pixels_3x3(const mnq_layer_desc *d, const dw_packed *pk,
                                                             const uint8_t *in, uint8_t *out, long n, int oy,
                                                             int c0, int ox0, int ox1, int left_edge,
                                                             int right_edge, const int form, const int stride) {
  const long C = d->out_c;
  const uint8x8_t zx = vdup_n_u8((uint8_t)d->in_zp);
  const int y0 = oy * d->stride_h - d->pad_top;
  const uint8_t *rows[3];
  const int16_t *wrow[3];
  for (int ky = 0; ky < 3; ky++) {
    const int inside = y0 + ky >= 0 && y0 + ky < d->in_h;
    rows[ky] = in + ((n * d->in_h + clamp_index(y0 + ky, d->in_h)) * d->in_w) * C + c0;
    wrow[ky] = inside ? block_weights(pk, c0) + ky * 3 * CB : zero_weights(pk);
  }
  long at = ((long)ox0 * d->stride_w - d->pad_left) * C; /* tap column 0 of pixel ox0 */
  const long step = (long)d->stride_w * C;
  const int32_t *bp = pk->bias + c0;
  uint8_t *o = out + (((n * d->out_h + oy) * d->out_w + ox0) * C + c0);
  const mnq_arm_rq16 q = mnq_arm_rq16_load(&pk->rq, c0, form);
  int ox = ox0;
#ifdef __aarch64__
  if (stride) {
    const uint8x16_t zx16 = vcombine_u8(zx, zx);
    const int end = right_edge ? ox1 - 2 : ox1; /* the interior's end */
    if (stride == 1 && left_edge) {
      int32x4_t a0, a1, a2, a3, b0, b1, b2, b3;
      at += C; /* the image's first column */
      DW_PAIR(DW_ROW_S1_LEFT);
      requant_store(&q, a0, a1, a2, a3, o, CB, form);
      requant_store(&q, b0, b1, b2, b3, o + C, CB, form);
      ox += 2, at += 2 * step - C, o += 2 * C;
    }
    if (stride == 1)
      for (; ox + 3 < end; ox += 4, at += 4 * step, o += 4 * C) {
        int32x4_t a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3, d0, d1, d2, d3;
        DW_QUAD;
        requant_store(&q, a0, a1, a2, a3, o, CB, form);
        requant_store(&q, b0, b1, b2, b3, o + C, CB, form);
        requant_store(&q, c0, c1, c2, c3, o + 2 * C, CB, form);
        requant_store(&q, d0, d1, d2, d3, o + 3 * C, CB, form);
      }
    for (; ox + 1 < end; ox += 2, at += 2 * step, o += 2 * C) {
      int32x4_t a0, a1, a2, a3, b0, b1, b2, b3;
      if (stride == 1) DW_PAIR(DW_ROW_S1);
      else DW_PAIR(DW_ROW_S2);
      requant_store(&q, a0, a1, a2, a3, o, CB, form);
      requant_store(&q, b0, b1, b2, b3, o + C, CB, form);
    }
    for (; ox < end; ox++, at += step, o += C) one_pixel(rows, wrow, at, C, bp, &q, o, zx, form);
    if (right_edge) {
      int32x4_t a0, a1, a2, a3, b0, b1, b2, b3;
      if (stride == 1) DW_PAIR(DW_ROW_S1_RIGHT);
      else DW_PAIR(DW_ROW_S2_RIGHT);
      requant_store(&q, a0, a1, a2, a3, o, CB, form);
      requant_store(&q, b0, b1, b2, b3, o + C, CB, form);
    }
    return;
  }
#else
  (void)stride, (void)left_edge, (void)right_edge;
#endif
  for (; ox < ox1; ox++, at += step, o += C) one_pixel(rows, wrow, at, C, bp, &q, o, zx, form);
}


/* 3x3 border pixels [ox0, ox1) of row oy, 16 full channels: a tap outside the image
 * reads a clamped (valid) input position against the zero-weight tap, so it adds 0
 * and the 9 taps stay unrolled. */
static inline __attribute__((always_inline)) void pixels_3x3_border(const mnq_layer_desc *d, const dw_packed *pk,
                                                                    const uint8_t *in, uint8_t *out, long n, int oy,
                                                                    int c0, int ox0, int ox1, const int form) {
  const int C = d->out_c;
  const uint8x8_t zx = vdup_n_u8((uint8_t)d->in_zp);
  const int16_t *zero_w = zero_weights(pk);
  const int y0 = oy * d->stride_h - d->pad_top;
  const int row_in0 = y0 >= 0 && y0 < d->in_h, row_in1 = y0 + 1 >= 0 && y0 + 1 < d->in_h;
  const int row_in2 = y0 + 2 >= 0 && y0 + 2 < d->in_h;
  const uint8_t *row0 = in + ((n * d->in_h + clamp_index(y0, d->in_h)) * d->in_w) * C + c0;
  const uint8_t *row1 = in + ((n * d->in_h + clamp_index(y0 + 1, d->in_h)) * d->in_w) * C + c0;
  const uint8_t *row2 = in + ((n * d->in_h + clamp_index(y0 + 2, d->in_h)) * d->in_w) * C + c0;
  const int16_t *w = block_weights(pk, c0);
  const mnq_arm_rq16 q = mnq_arm_rq16_load(&pk->rq, c0, form);
  for (int ox = ox0; ox < ox1; ox++) {
    const int x0 = ox * d->stride_w - d->pad_left;
    const int col_in0 = x0 >= 0 && x0 < d->in_w, col_in1 = x0 + 1 >= 0 && x0 + 1 < d->in_w;
    const int col_in2 = x0 + 2 >= 0 && x0 + 2 < d->in_w;
    const long col0 = (long)clamp_index(x0, d->in_w) * C, col1 = (long)clamp_index(x0 + 1, d->in_w) * C;
    const long col2 = (long)clamp_index(x0 + 2, d->in_w) * C;
    const int32_t *bp = pk->bias + c0;
    int32x4_t a0 = vld1q_s32(bp), a1 = vld1q_s32(bp + 4), a2 = vld1q_s32(bp + 8), a3 = vld1q_s32(bp + 12);
#define BORDER_TAP(ky, kx) \
  tap(&a0, &a1, &a2, &a3, vld1q_u8(row##ky + col##kx), row_in##ky && col_in##kx ? w + (ky * 3 + kx) * CB : zero_w, zx)
    BORDER_TAP(0, 0); BORDER_TAP(0, 1); BORDER_TAP(0, 2);
    BORDER_TAP(1, 0); BORDER_TAP(1, 1); BORDER_TAP(1, 2);
    BORDER_TAP(2, 0); BORDER_TAP(2, 1); BORDER_TAP(2, 2);
#undef BORDER_TAP
    requant_store(&q, a0, a1, a2, a3, out + (((n * d->out_h + oy) * d->out_w + ox) * C + c0), CB, form);
  }
}

/* One output row: per block of 16 channels, border pixels through pixels_3x3_border
 * and the interior through pixels_3x3; other kernel shapes and channel tails
 * through pixels_any. */
static inline __attribute__((always_inline)) void row(const mnq_layer_desc *d, const dw_packed *pk,
                                                      const uint8_t *in, uint8_t *out, long n, int oy,
                                                      const int form) {
  const int is3x3 = d->k_h == 3 && d->k_w == 3;
  int ox_lo = d->out_w, ox_hi = d->out_w; /* interior columns: x0 >= 0 and x0 + 3 <= in_w */
  if (is3x3 && d->in_w >= 3) {
    ox_lo = (d->pad_left + d->stride_w - 1) / d->stride_w;
    ox_hi = (d->in_w - 3 + d->pad_left) / d->stride_w + 1;
    if (ox_hi > d->out_w) ox_hi = d->out_w;
    if (ox_lo > ox_hi) ox_lo = ox_hi;
  }
  /* aarch64: the border pixel each side that misses one tap column joins the pair path
   * (SAME padding's usual case: pad_left 1 at stride 1, the last pixel one column short) */
  int left_edge = 0, right_edge = 0;
#ifdef __aarch64__
  if (is3x3 && (d->stride_w == 1 || d->stride_w == 2) && ox_hi - ox_lo >= 2) {
    left_edge = d->stride_w == 1 && ox_lo == 1 && d->pad_left == 1;
    right_edge = ox_hi == d->out_w - 1 && ox_hi * d->stride_w - d->pad_left + 2 == d->in_w;
  }
#endif
  for (int c0 = 0; c0 < d->out_c; c0 += CB) {
    if (!is3x3 || d->out_c - c0 < CB) {
      pixels_any(d, pk, in, out, n, oy, c0, 0, d->out_w, form);
      continue;
    }
    const int first = ox_lo - left_edge, end = ox_hi + right_edge; /* the pixels_3x3 range */
    pixels_3x3_border(d, pk, in, out, n, oy, c0, 0, first, form);
    if (d->stride_w == 1) pixels_3x3(d, pk, in, out, n, oy, c0, first, end, left_edge, right_edge, form, 1);
    else if (d->stride_w == 2) pixels_3x3(d, pk, in, out, n, oy, c0, first, end, 0, right_edge, form, 2);
    else pixels_3x3(d, pk, in, out, n, oy, c0, first, end, 0, 0, form, 0);
    pixels_3x3_border(d, pk, in, out, n, oy, c0, end, d->out_w, form);
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
    MNQ_ARM_WITH_FORM(pk->rq.form, row(d, pk, in, out, n, oy, rq_form));
  }
}
