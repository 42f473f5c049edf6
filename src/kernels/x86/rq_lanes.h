/* Plan-time (plain C) operands of the AVX2 per-channel requantization, rq256_channels
 * in requant_avx2.h: per block of 8 output channels, 32 int32 lanes: multiplier,
 * left shift, right shift, rounding mask 2^right - 1. Shared by the AVX2 GEMM and
 * 3x3 depthwise packings. */
#ifndef MNQ_X86_RQ_LANES_H
#define MNQ_X86_RQ_LANES_H

#include <stdint.h>

enum { MNQ_RQ_LANES_PER_BLOCK = 32 };

/* Blocks for channels [0, np), np a multiple of 8 (channels past n get multiplier 0). */
static inline void mnq_rq_lanes_fill(int32_t *lanes, const int32_t *multipliers, const int32_t *shifts, int n,
                                     int np) {
  for (int j = 0; j < np; j++) {
    const int32_t shift = j < n ? shifts[j] : 0, right = shift > 0 ? 0 : -shift;
    int32_t *block = lanes + (j / 8) * MNQ_RQ_LANES_PER_BLOCK + j % 8;
    block[0] = j < n ? multipliers[j] : 0;
    block[8] = shift > 0 ? shift : 0;
    block[16] = right;
    block[24] = (int32_t)(((int64_t)1 << right) - 1);
  }
}

#endif
