/* The layer side of the ARM GEMM kernels, shared by every ISA's microkernel:
 * weight packing (once, at net creation), tiling the output pixels, im2col for
 * a general conv, per-row offsets, the split across work parts. The microkernels
 * themselves only see rows, channels, K and prepared parameters.
 *
 * Arithmetic (see DESIGN.md): acc = bias + sum (x - zx)(w - zw)
 *   = [bias - zx * sum (w - zw)]  +  sum x (w - zw)
 * The bracket is per output channel and folded at packing time over every tap
 * (im2col fills padding taps with zx, so they contribute zero either way). A
 * kernel that multiplies raw uint8 weights adds the per-row term -zw * sum x.
 *
 * Packed block (one allocation, freed by the net): this header, then int32 bias[Np],
 * the requantization arrays (3 x Np int32), then the kernel's weight panels:
 * Np/NR panels of Kp x NR weights in the kernel's own order and type. */
#ifndef MNQ_ARM_GEMM_DRIVER_H
#define MNQ_ARM_GEMM_DRIVER_H

#include <stdlib.h>

#include "../internal.h"
#include "neon_kernels.h"
#include "requant_neon.h"

typedef struct {
  int K, Kp, Np;        /* reduction length (k_h*k_w*in_c), padded; channels padded */
  const int32_t *bias;  /* folded, Np */
  mnq_arm_rq rq;
  const void *weights;  /* panels, panel p at p * Kp * NR elements */
} mnq_arm_gemm_packed;

static inline int mnq_arm_round_up(int v, int r) { return (v + r - 1) / r * r; }

/* Panel element for output channel n, reduction index k (both already padded
 * space) -> offset inside the panel of that channel. */
typedef size_t (*mnq_arm_panel_offset_fn)(int n_in_panel, int k);

/* Packs weights [N][K] (uint8, k fastest) for a kernel with tile NR and k-step KR.
 * elem_bytes 1: stores w (raw uint8); 2: stores int16 (w - zw). */
static inline mnq_arm_gemm_packed *mnq_arm_gemm_pack(const mnq_layer_desc *d, int NR, int KR, int elem_bytes,
                                                     mnq_arm_panel_offset_fn offset) {
  const int K = d->k_h * d->k_w * d->in_c, N = d->out_c;
  const int Kp = mnq_arm_round_up(K, KR), Np = mnq_arm_round_up(N, NR);
  const size_t head = (sizeof(mnq_arm_gemm_packed) + 63) & ~(size_t)63;
  const size_t params = (size_t)Np * 4 + mnq_arm_rq_bytes(Np);
  uint8_t *mem = calloc(1, head + params + (size_t)Np * Kp * elem_bytes);
  if (!mem) return NULL;
  mnq_arm_gemm_packed *pk = (mnq_arm_gemm_packed *)mem;
  int32_t *bias = (int32_t *)(mem + head);
  mnq_arm_rq_fill(&pk->rq, bias + Np, d, Np);
  uint8_t *panels = mem + head + params;
  for (int n = 0; n < N; n++) {
    const uint8_t *wn = d->weights + (size_t)n * K;
    int32_t wsum = 0;
    uint8_t *panel = panels + (size_t)(n / NR) * Kp * NR * elem_bytes;
    for (int k = 0; k < K; k++) {
      wsum += (int32_t)wn[k] - d->w_zp;
      const size_t at = offset(n % NR, k);
      if (elem_bytes == 1) panel[at] = wn[k];
      else ((int16_t *)panel)[at] = (int16_t)(wn[k] - d->w_zp);
    }
    bias[n] = (d->bias ? d->bias[n] : 0) - d->in_zp * wsum;
  }
  pk->K = K, pk->Kp = Kp, pk->Np = Np;
  pk->bias = bias;
  pk->weights = panels;
  return pk;
}

/* One im2col row: the K = k_h*k_w*in_c inputs under output pixel (n, oy, ox)
 * (padding taps = in_zp), then zeros up to Kp. The row buffer has MNQ_ARM_ROW_SLACK
 * bytes beyond Kp: a short segment (the first conv's 3x3x3 rows: 9 bytes) is copied
 * as one 16-byte vector when the input has 16 bytes there, and a short zero tail as
 * one vector. */
enum { MNQ_ARM_ROW_SLACK = 16 };

static inline void mnq_arm_im2col_row(const mnq_layer_desc *d, const uint8_t *in, const uint8_t *in_end, long n,
                                      int oy, int ox, int Kp, uint8_t *row) {
  const int cin = d->in_c, seg = d->k_w * cin;
  const int x0 = ox * d->stride_w - d->pad_left, y0 = oy * d->stride_h - d->pad_top;
  const int kx0 = x0 < 0 ? -x0 : 0, kx1 = d->in_w - x0 < d->k_w ? d->in_w - x0 : d->k_w;
  const long row_bytes = (long)d->in_w * cin;
  /* offset of tap (0, 0), which may lie outside the image */
  long at = (n * d->in_h + y0) * row_bytes + (long)x0 * cin;
  uint8_t *dst = row;
  if (kx0 == 0 && kx1 == d->k_w && y0 >= 0 && y0 + d->k_h <= d->in_h && seg <= 16 &&
      in_end - in - (at + (d->k_h - 1) * row_bytes) >= 16) {
    /* the common case (every tap inside, short segments): one vector per kernel row,
     * the bytes past a segment are overwritten by the next */
    for (int ky = 0; ky < d->k_h; ky++, dst += seg, at += row_bytes) vst1q_u8(dst, vld1q_u8(in + at));
  } else {
    for (int ky = 0; ky < d->k_h; ky++, dst += seg, at += row_bytes) {
      const int iy = y0 + ky;
      if (iy < 0 || iy >= d->in_h || kx1 <= kx0) {
        memset(dst, d->in_zp, (size_t)seg);
        continue;
      }
      if (kx0 > 0) memset(dst, d->in_zp, (size_t)kx0 * cin);
      memcpy(dst + kx0 * cin, in + at + (long)kx0 * cin, (size_t)(kx1 - kx0) * cin);
      if (kx1 < d->k_w) memset(dst + kx1 * cin, d->in_zp, (size_t)(d->k_w - kx1) * cin);
    }
  }
  const int tail = Kp - (int)(dst - row);
  if (tail <= 16) vst1q_u8(dst, vdupq_n_u8(0));
  else memset(dst, 0, (size_t)tail);
}

/* A microkernel: out[r][0..N) for r < mr from rows a[0..MR) (Kp bytes each; rows
 * past mr repeat a valid one), all N/NR panels (consecutive), per-row offsets, the
 * folded bias and the requantization. It walks the panels itself so that a row
 * tile's pointers and constants are set up once. */
typedef void (*mnq_arm_gemm_ukernel_fn)(int mr, int N, int Kp, const uint8_t *const *a, const void *panels,
                                        const int32_t *bias, const int32_t *row_offset, const mnq_arm_rq *rq,
                                        uint8_t *out, long out_stride);

/* sums[r] = sum of row a[r]'s Kp bytes, r < MR (NULL when the kernel needs no row term) */
typedef void (*mnq_arm_row_sums_fn)(const uint8_t *const *a, int Kp, int32_t *sums);

/* Scratch per work part: MR rows of Kp bytes (im2col rows or zero-padded copies) + slack. */
static inline size_t mnq_arm_gemm_scratch(const mnq_arm_gemm_packed *pk, int MR) {
  return (size_t)MR * (pk->Kp + MNQ_ARM_ROW_SLACK);
}

/* A GEMM kernel's prepare: weights packed for its tile, scratch sized; 0, or -1 when out of memory. */
static inline int mnq_arm_gemm_prepare(mnq_layer *L, int MR, int NR, int KR, int elem_bytes,
                                       mnq_arm_panel_offset_fn offset) {
  mnq_arm_gemm_packed *pk = mnq_arm_gemm_pack(&L->d, NR, KR, elem_bytes, offset);
  if (!pk) return -1;
  L->packed = pk;
  L->scratch_bytes = mnq_arm_gemm_scratch(pk, MR);
  return 0;
}

/* Runs a pointwise (1x1 stride 1, rows read in place when K == Kp) or general conv
 * (im2col) layer: this part's share of MR-pixel tiles, each against every panel. */
static inline void mnq_arm_gemm_layer(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w,
                                      int MR, mnq_arm_gemm_ukernel_fn ukernel,
                                      mnq_arm_row_sums_fn row_sums) {
  const mnq_layer_desc *d = &L->d;
  const mnq_arm_gemm_packed *pk = (const mnq_arm_gemm_packed *)L->packed;
  const int N = d->out_c, K = pk->K, Kp = pk->Kp;
  const int im2col = d->op != MNQ_OP_POINTWISE;
  const long M = (long)batch * d->out_h * d->out_w;
  const uint8_t *in_end = in + (long)batch * d->in_h * d->in_w * d->in_c;
  long t0, t1;
  mnq_partition((M + MR - 1) / MR, w, &t0, &t1);
  const uint8_t *a[8];
  int32_t row_offset[8];
  /* im2col: the next row's pixel, stepped along (no division per row) */
  const long per_image = (long)d->out_h * d->out_w;
  long n = t0 * MR / per_image;
  int oy = (int)(t0 * MR % per_image / d->out_w), ox = (int)(t0 * MR % d->out_w);
  for (long t = t0; t < t1; t++) {
    const long m = t * MR;
    const int rows = M - m < MR ? (int)(M - m) : MR;
    if (!im2col && K == Kp) { /* pointwise rows in place; rows past the last repeat it */
      for (int r = 0; r < MR; r++) a[r] = in + (m + (r < rows ? r : rows - 1)) * K;
    } else {
      for (int r = 0; r < rows; r++) {
        uint8_t *buf = w->scratch + (size_t)r * (Kp + MNQ_ARM_ROW_SLACK);
        if (im2col) {
          mnq_arm_im2col_row(d, in, in_end, n, oy, ox, Kp, buf);
          if (++ox == d->out_w) {
            ox = 0;
            if (++oy == d->out_h) oy = 0, n++;
          }
        } else {
          memcpy(buf, in + (m + r) * K, (size_t)K);
          memset(buf + K, 0, (size_t)(Kp - K));
        }
        a[r] = buf;
      }
      for (int r = rows; r < MR; r++) a[r] = a[rows - 1];
    }
    if (row_sums) {
      row_sums(a, Kp, row_offset);
      /* wraps like the accumulator (the true total fits int32) */
      for (int r = 0; r < MR; r++) row_offset[r] = (int32_t)(0u - (uint32_t)d->w_zp * (uint32_t)row_offset[r]);
    } else {
      for (int r = 0; r < MR; r++) row_offset[r] = 0;
    }
    ukernel(rows, N, Kp, a, pk->weights, pk->bias, row_offset, &pk->rq, out + m * N, N);
  }
}

/* Stores the first nc of 16 bytes (a channel tail never writes past the row). */
static inline void mnq_arm_store_u8x16(uint8_t *dst, uint8x16_t v, int nc) {
  if (nc == 16) {
    vst1q_u8(dst, v);
  } else {
    uint8_t tmp[16];
    vst1q_u8(tmp, v);
    memcpy(dst, tmp, (size_t)nc);
  }
}

/* Stores the first mr (<= 4) rows and nc channels of a 4 x 16 tile of output bytes. */
static inline __attribute__((always_inline)) void mnq_arm_store_rows_x16(uint8_t *out, long out_stride, int mr, int nc,
                                                                         uint8x16_t y0, uint8x16_t y1, uint8x16_t y2,
                                                                         uint8x16_t y3) {
  if (mr == 4 && nc == 16) { /* the common case, straight-line */
    vst1q_u8(out, y0), vst1q_u8(out + out_stride, y1);
    vst1q_u8(out + 2 * out_stride, y2), vst1q_u8(out + 3 * out_stride, y3);
    return;
  }
  mnq_arm_store_u8x16(out, y0, nc);
  if (mr > 1) mnq_arm_store_u8x16(out + out_stride, y1, nc);
  if (mr > 2) mnq_arm_store_u8x16(out + 2 * out_stride, y2, nc);
  if (mr > 3) mnq_arm_store_u8x16(out + 3 * out_stride, y3, nc);
}

#ifdef __ARM_FEATURE_DOTPROD
/* The dot-product kernels' row sums (mnq_arm_row_sums_fn, 4 rows): UDOT with ones. */
static inline __attribute__((always_inline)) void mnq_arm_row_sums_udot(const uint8_t *const *a, int Kp,
                                                                        int32_t *sums) {
  const uint8x16_t ones = vdupq_n_u8(1);
  const uint8_t *x0 = a[0], *x1 = a[1], *x2 = a[2], *x3 = a[3];
  uint32x4_t s0 = vdupq_n_u32(0), s1 = s0, s2 = s0, s3 = s0;
  for (int k = 0; k < Kp; k += 16, x0 += 16, x1 += 16, x2 += 16, x3 += 16) {
    s0 = vdotq_u32(s0, vld1q_u8(x0), ones);
    s1 = vdotq_u32(s1, vld1q_u8(x1), ones);
    s2 = vdotq_u32(s2, vld1q_u8(x2), ones);
    s3 = vdotq_u32(s3, vld1q_u8(x3), ones);
  }
  /* pairwise adds leave the four totals in one vector */
  vst1q_s32(sums, vreinterpretq_s32_u32(vpaddq_u32(vpaddq_u32(s0, s1), vpaddq_u32(s2, s3))));
}
#endif

/* Requantizes and stores a 4 x 16 tile of accumulators acc[r][16] (channels n0..n0+15)
 * to out (row stride out_stride), the first mr rows and nc channels. form is a constant
 * in each instantiation (MNQ_RQ_*). */
static inline __attribute__((always_inline)) void mnq_arm_requant_tile_4x16(const int32_t *acc, int mr, int nc,
                                                                            const mnq_arm_rq *rq, int n0, uint8_t *out,
                                                                            long out_stride, const int form) {
  const mnq_arm_rq16 q = mnq_arm_rq16_load(rq, n0, form);
#define MNQ_ARM_ROW(r) \
  mnq_arm_rq16_apply(&q, vld1q_s32(acc + 16 * (r)), vld1q_s32(acc + 16 * (r) + 4), vld1q_s32(acc + 16 * (r) + 8), \
                     vld1q_s32(acc + 16 * (r) + 12), form)
  mnq_arm_store_rows_x16(out, out_stride, mr, nc, MNQ_ARM_ROW(0), MNQ_ARM_ROW(1), MNQ_ARM_ROW(2), MNQ_ARM_ROW(3));
#undef MNQ_ARM_ROW
}


#endif
