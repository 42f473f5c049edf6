/* Plan-time layout of the AVX2 depthwise 3x3 kernel (plain C, block width
 * B = int32 lanes per vector) and the shape test all x86 3x3 kernels share.
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

static inline int mnq_dw3x3_blocks(const mnq_layer_desc *d, int B) { return (d->out_c + B - 1) / B; }
static inline int mnq_dw3x3_entries(const mnq_layer_desc *d) { return d->out_w + 2 / d->stride_w; }
static inline size_t mnq_dw3x3_row_bytes(const mnq_layer_desc *d, int B) {
  return (size_t)mnq_dw3x3_blocks(d, B) * mnq_dw3x3_entries(d) * 4 * B;
}
static inline size_t mnq_dw3x3_block_bytes(int B) { return (size_t)28 * B; }

/* Kernels handle 3x3 with equal strides 1 or 2, any padding, channels and size. */
static inline int mnq_dw3x3_fits(const mnq_layer_desc *d) {
  return d->k_h == 3 && d->k_w == 3 && d->stride_h == d->stride_w && (d->stride_h == 1 || d->stride_h == 2);
}

/* Pack weights and size the scratch; -1 on out of memory. */
static inline int mnq_dw3x3_prepare(mnq_layer *L, int B) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c, nb = mnq_dw3x3_blocks(d, B);
  const size_t bytes = (size_t)nb * mnq_dw3x3_block_bytes(B);
  uint8_t *p = NULL;
  if (posix_memalign((void **)&p, 64, bytes)) return -1;
  memset(p, 0, bytes);
  for (int b = 0; b < nb; b++) {
    int16_t *w01 = (int16_t *)(p + b * mnq_dw3x3_block_bytes(B));
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
  }
  L->packed = p;
  L->scratch_bytes = 64 + 3 * mnq_dw3x3_row_bytes(d, B); /* 64: room to align */
  return 0;
}

#endif
