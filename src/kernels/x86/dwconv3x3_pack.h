/* Plan-time layout of the AVX2 depthwise 3x3 kernel (plain C, block width
 * B = int32 lanes per vector), and the shape test and requantization plan
 * all x86 3x3 kernels share.
 *
 * Packed weights, per block of B channels (tail channels zero):
 *   int16 w01[3][2B]  (w[ky][0][c] - w_zp, w[ky][1][c] - w_zp) interleaved
 *   int16 w2[3][2B]   (w[ky][2][c] - w_zp, 0)
 *   int32 bias[B]
 * so one multiply-add of int16 pairs applies two horizontal taps.
 *
 * Scratch holds three widened input rows (a ring over input rows). Row entry t
 * of channel block cb is (x[col] - in_zp, x[col+1] - in_zp) per channel, where
 * col = t*stride - pad_left; columns outside the image are 0. Output column ox
 * reads entry ox for taps kx=0,1 and entry ox + 2/stride for kx=2. */
#ifndef MNQ_DWCONV3X3_PACK_H
#define MNQ_DWCONV3X3_PACK_H

#include <stdlib.h>

#include "../internal.h"
#include "rq_lanes.h"

static inline int mnq_dw3x3_blocks(const mnq_layer_desc *d, int B) { return (d->out_c + B - 1) / B; }
static inline int mnq_dw3x3_entries(const mnq_layer_desc *d) { return d->out_w + 2 / d->stride_w; }
static inline size_t mnq_dw3x3_row_bytes(const mnq_layer_desc *d, int B) {
  return (size_t)mnq_dw3x3_blocks(d, B) * mnq_dw3x3_entries(d) * 4 * B;
}
static inline size_t mnq_dw3x3_block_bytes(int B) { return (size_t)28 * B; }

/* This work part's rows [*r0, *r1) of `rows` and channel blocks [*cb0, *cb1) of nb.
 * Channel blocks are split first (as many groups as divide the parts), rows only for
 * the rest: a row split widens the two input rows above each part's first row again,
 * which at several tiles per thread costs more than any locality the split keeps. */
static inline void mnq_dw3x3_split(long rows, int nb, const mnq_work *w, long *r0, long *r1, long *cb0, long *cb1) {
  int groups = w->nparts < nb ? w->nparts : nb;
  while (w->nparts % groups) groups--;
  const mnq_work by_block = {w->part % groups, groups, NULL}, by_row = {w->part / groups, w->nparts / groups, NULL};
  mnq_partition(nb, &by_block, cb0, cb1);
  mnq_partition(rows, &by_row, r0, r1);
}

/* Kernels handle 3x3 with equal strides 1 or 2, any padding, channels and size. */
static inline int mnq_dw3x3_fits(const mnq_layer_desc *d) {
  return d->k_h == 3 && d->k_w == 3 && d->stride_h == d->stride_w && (d->stride_h == 1 || d->stride_h == 2);
}

/* Requantization shared by the x86 3x3 kernels: mnq_requantize rearranged.
 * With a = acc << left, x = SRDHM(a, M) = floor((a*M + 2^30) / 2^31) and
 * RDPOT(x, r) = floor((x + 2^(r-1) - [x < 0]) / 2^r) for r > 0, x itself for
 * r = 0. The half and the output zero point (times 2^r) fold into the 64-bit
 * nudge added to a*M; doubling a puts floor(...) / 2^31 in the high dword of
 * each 64-bit product, so the results are gathered without shifts. [x < 0]
 * may be replaced by [a < 0] (they differ only at x = 0, where subtracting 1
 * does not change the quotient), and is skipped when act_min >= out_zp: then
 * every a < 0 clamps to act_min either way. Then y = t >> r, clamped.
 * Exact only if 2 * (acc << left) and t fit int32: mnq_dw3x3_rq_fits bounds
 * |acc| by the weights and bias at plan time. */
static inline int mnq_dw3x3_rq_fits(const mnq_layer_desc *d) {
  const int C = d->out_c, left = d->shift > 0 ? d->shift : 0, right = d->shift > 0 ? 0 : -d->shift;
  int64_t bmax = 0;
  for (int c = 0; c < C; c++) {
    int64_t b = d->bias ? llabs((long long)d->bias[c]) : 0;
    for (int t = 0; t < 9; t++) b += 255 * (int64_t)abs(d->weights[t * C + c] - d->w_zp);
    if (b > bmax) bmax = b;
  }
  if (left >= 30 || (bmax << (left + 1)) >= ((int64_t)1 << 31)) return 0;
  return right == 0 || bmax + 2 + ((int64_t)256 << right) < ((int64_t)1 << 31);
}

/* 2 * (2^30 + h * 2^31 + zp * 2^(31 + r)), h = 2^(r-1) the rounding half */
static inline int64_t mnq_dw3x3_rq_nudge(const mnq_layer_desc *d) {
  const int right = d->shift > 0 ? 0 : -d->shift;
  return ((int64_t)1 << 31) + (right ? ((int64_t)1 << (31 + right)) : 0) + ((int64_t)d->out_zp << (32 + right));
}

static inline int mnq_dw3x3_rq_sign_fix(const mnq_layer_desc *d) { return d->shift < 0 && d->act_min < d->out_zp; }

/* What each kernel's rq_init broadcasts: a = acc << left (taken doubled, as acc << (left + 1)),
 * t = high dword of a * multiplier + nudge (+ [a < 0] when sign_fix), y = t >> right. */
typedef struct {
  int32_t multiplier;
  int64_t nudge;
  int left, right, sign_fix;
} mnq_dw3x3_rq_plan;

static inline mnq_dw3x3_rq_plan mnq_dw3x3_rq_plan_of(const mnq_layer_desc *d) {
  const mnq_dw3x3_rq_plan p = {d->multiplier, mnq_dw3x3_rq_nudge(d), d->shift > 0 ? d->shift : 0,
                               d->shift > 0 ? 0 : -d->shift, mnq_dw3x3_rq_sign_fix(d)};
  return p;
}

/* The kernels (dwconv__avx2.c, dwconv__avx512vnni.c); prepare returns as mnq_dw3x3_prepare. */
int mnq_dwconv3x3_u8_prepare__avx2(mnq_layer *L);
void mnq_dwconv3x3s1_u8__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_dwconv3x3s2_u8__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
int mnq_dwconv3x3_u8_prepare__avx512vnni(mnq_layer *L);
void mnq_dwconv3x3s1_u8_32x2__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_dwconv3x3s2_u8_32x2__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);

/* Per-channel layers (AVX2, B = 8) append to each block its rq_lanes.h block and
 * requantize with the general rq256_apply, exact for every int32 accumulator, so
 * they need no mnq_dw3x3_rq_fits (real int8 files have channels whose huge bias
 * would fail it). */
static inline size_t mnq_dw3x3_channel_bytes(const mnq_layer_desc *d, int B) {
  return d->channel_multipliers ? (size_t)4 * MNQ_RQ_LANES_PER_BLOCK * (B / 8) : 0;
}

/* Pack weights and size the scratch; -1 on out of memory, 1 if the
 * requantization would not be exact (then another kernel takes the layer). */
static inline int mnq_dw3x3_prepare(mnq_layer *L, int B) {
  const mnq_layer_desc *d = &L->d;
  if (!d->channel_multipliers && !mnq_dw3x3_rq_fits(d)) return 1;
  const int C = d->out_c, nb = mnq_dw3x3_blocks(d, B);
  const size_t stride = mnq_dw3x3_block_bytes(B) + mnq_dw3x3_channel_bytes(d, B);
  const size_t bytes = (size_t)nb * stride;
  uint8_t *p = NULL;
  if (posix_memalign((void **)&p, 64, bytes)) return -1;
  memset(p, 0, bytes);
  for (int b = 0; b < nb; b++) {
    int16_t *w01 = (int16_t *)(p + b * stride);
    int16_t *w2 = w01 + 3 * 2 * B;
    int32_t *bias = (int32_t *)(w2 + 3 * 2 * B);
    for (int j = 0; j < B && b * B + j < C; j++) {
      const int c = b * B + j;
      for (int ky = 0; ky < 3; ky++) {
        const uint8_t *k = d->weights + (size_t)ky * 3 * C + c;
        w01[ky * 2 * B + 2 * j] = (int16_t)(k[0] - d->w_zp);
        w01[ky * 2 * B + 2 * j + 1] = (int16_t)(k[C] - d->w_zp);
        w2[ky * 2 * B + 2 * j] = (int16_t)(k[2 * C] - d->w_zp);
      }
      bias[j] = d->bias ? d->bias[c] : 0;
    }
    if (d->channel_multipliers) {
      const int n = C - b * B < B ? C - b * B : B;
      mnq_rq_lanes_fill((int32_t *)(bias + B), d->channel_multipliers + b * B, d->channel_shifts + b * B, n, B);
    }
  }
  L->packed = p;
  L->scratch_bytes = 64 + 3 * mnq_dw3x3_row_bytes(d, B); /* 64: room to align */
  return 0;
}

#endif
