/* Shared by the x86 GEMM kernels (pointwise and im2col conv) and dispatch.c:
 * the packed-weight layout, its (plain C) packing routine, and the kernels.
 *
 * Packed layout, one allocation (freeable with free()):
 *   mnq_gemm_packed header | int32 bias[np] | int8 w[np/16][kgroups][16 lanes][4 k]
 * with w = weight - 128 (signed, for u8 x s8 dot products) and zeros in the
 * padding, so padded k or n contribute nothing. A run of 16 k-groups of one
 * N-block is exactly an AMX B tile (16 rows x 64 bytes), so AMX and VNNI share
 * the layout; AMX packs with K padded to 64, or to 4 when K < 64 (one narrow tile). */
#ifndef MNQ_X86_GEMM_H
#define MNQ_X86_GEMM_H

#include <stdlib.h>

#include "../internal.h"
#include "rq_lanes.h"

typedef struct {
  int k;            /* GEMM depth: bytes of one activation row that count */
  int kgroups;      /* k-groups of 4 stored per N-block (>= ceil(k/4)) */
  int n, np;        /* output channels, rounded up to 16 (AMX: 32) */
  int32_t zw_corr;  /* 128 - w_zp: weight offset folded onto the row sums */
  int32_t *bias;    /* np entries, bias_folded padded with zeros */
  int8_t *w;        /* 64-byte aligned */
  /* Per-channel layers (AVX2 packing only): np/8 blocks of rq_lanes.h. NULL per tensor. */
  int32_t *rq_lanes;
} mnq_gemm_packed;

/* Weights [n][k] uint8 (row-major, k contiguous) -> packed; NULL when out of memory. */
static inline mnq_gemm_packed *mnq_gemm_pack(const uint8_t *weights, const int32_t *bias_folded, int n, int k,
                                             int w_zp, int k_align, int n_align) {
  const int kp = (k + k_align - 1) / k_align * k_align, np = (n + n_align - 1) / n_align * n_align;
  const size_t head = (sizeof(mnq_gemm_packed) + 63) & ~(size_t)63;
  const size_t bias_bytes = ((size_t)np * 4 + 63) & ~(size_t)63;
  void *mem = NULL;
  if (posix_memalign(&mem, 64, head + bias_bytes + (size_t)np * kp)) return NULL;
  mnq_gemm_packed *P = mem;
  P->k = k;
  P->kgroups = kp / 4;
  P->n = n;
  P->np = np;
  P->zw_corr = 128 - w_zp;
  P->bias = (int32_t *)((uint8_t *)mem + head);
  P->w = (int8_t *)((uint8_t *)mem + head + bias_bytes);
  P->rq_lanes = NULL;
  for (int j = 0; j < np; j++) P->bias[j] = j < n ? bias_folded[j] : 0;
  for (int j = 0; j < np; j++)
    for (int kk = 0; kk < kp; kk++) {
      int8_t v = 0;
      if (j < n && kk < k) v = (int8_t)((int)weights[(long)j * k + kk] - 128);
      P->w[((long)(j / 16) * P->kgroups + kk / 4) * 64 + (j % 16) * 4 + kk % 4] = v;
    }
  return P;
}

/* AVX2 layout ("c2": K in pairs, no u8 x s8 dot product that cannot saturate): the same header
 * with w as int16 (w - w_zp) in [np/8][kgroups = ceil(k/2)][8 lanes][2 k], so
 * vpmaddwd needs no row-sum correction (zw_corr = 0). Per-channel layers
 * (channel_multipliers non-NULL) get their rq_lanes after the weights. */
static inline mnq_gemm_packed *mnq_gemm_pack_i16(const uint8_t *weights, const int32_t *bias_folded, int n, int k,
                                                 int w_zp, const int32_t *channel_multipliers,
                                                 const int32_t *channel_shifts) {
  const int kp = (k + 1) & ~1, np = (n + 7) & ~7;
  const size_t head = (sizeof(mnq_gemm_packed) + 63) & ~(size_t)63;
  const size_t bias_bytes = ((size_t)np * 4 + 63) & ~(size_t)63;
  const size_t w_bytes = ((size_t)np * kp * 2 + 63) & ~(size_t)63;
  const size_t lane_bytes = channel_multipliers ? (size_t)np * 4 * 4 : 0;
  void *mem = NULL;
  if (posix_memalign(&mem, 64, head + bias_bytes + w_bytes + lane_bytes)) return NULL;
  mnq_gemm_packed *P = mem;
  P->k = k;
  P->kgroups = kp / 2;
  P->n = n;
  P->np = np;
  P->zw_corr = 0;
  P->bias = (int32_t *)((uint8_t *)mem + head);
  P->w = (int8_t *)((uint8_t *)mem + head + bias_bytes);
  P->rq_lanes = channel_multipliers ? (int32_t *)((uint8_t *)mem + head + bias_bytes + w_bytes) : NULL;
  if (P->rq_lanes) mnq_rq_lanes_fill(P->rq_lanes, channel_multipliers, channel_shifts, n, np);
  int16_t *w16 = (int16_t *)P->w;
  for (int j = 0; j < np; j++) P->bias[j] = j < n ? bias_folded[j] : 0;
  for (int j = 0; j < np; j++)
    for (int kk = 0; kk < kp; kk++)
      w16[((long)(j / 8) * P->kgroups + kk / 2) * 16 + (j % 8) * 2 + kk % 2] =
          (int16_t)(j < n && kk < k ? (int)weights[(long)j * k + kk] - w_zp : 0);
  return P;
}

/* This thread's share of an M x N GEMM: rows [*m0, *m1) in whole runs of `grain`
 * rows (the microkernel's tile height, so only the last share has a ragged tile)
 * and column blocks [*b0, *b1) of `width` columns. Rows are split unless there are
 * fewer rows than columns (late layers: 25 pixels x 1024 channels), where splitting
 * columns halves each thread's weight traffic and keeps 2 threads from being slower than 1. */
static inline void mnq_gemm_split(long m, int n, int width, int grain, const mnq_work *w, long *m0, long *m1,
                                  int *b0, int *b1) {
  const int blocks = (n + width - 1) / width;
  if (w->nparts > 1 && m < n && blocks >= w->nparts) {
    long lo, hi;
    mnq_partition(blocks, w, &lo, &hi);
    *m0 = 0, *m1 = m, *b0 = (int)lo, *b1 = (int)hi;
  } else {
    long lo, hi;
    mnq_partition((m + grain - 1) / grain, w, &lo, &hi);
    *m0 = lo * grain < m ? lo * grain : m, *m1 = hi * grain < m ? hi * grain : m;
    *b0 = 0, *b1 = blocks;
  }
}

/* Rows of the im2col matrix a conv kernel builds at a time, per thread. */
#define MNQ_IM2COL_ROWS 192

/* Rows x column blocks [b0, b1) of 16 of a GEMM on any packing of this layout (the AMX
 * kernel hands it products of few rows, where tiles would be mostly padding). */
void mnq_gemm_u8_6x64__avx512vnni(const mnq_gemm_packed *P, const mnq_layer_desc *d, const uint8_t *a, long lda,
                                  long rows, uint8_t *out, long ldo, int b0, int b1);
void mnq_pwconv_u8_6x64__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_conv_u8_im2col_6x64__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_pwconv_u8_6x16c2__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
/* AVX-VNNI: the mnq_gemm_pack layout (k_align 4, n_align 16); pointwise needs no scratch. */
void mnq_pwconv_u8_5x16__avxvnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_conv_u8_im2col_5x16__avxvnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
#define MNQ_AVXVNNI_CHUNK 100 /* rows per chunk, whole 5-row tiles */
#define MNQ_AVXVNNI_CONV_SCRATCH(k) ((size_t)MNQ_AVXVNNI_CHUNK * MNQ_IM2COL_AVX2_LDA(k))
void mnq_conv_u8_im2col_6x16c2__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
/* Per-thread scratch of the AVX2 kernels: activations (im2col rows) widened to int16, a chunk of rows of K. */
#define MNQ_AVX2_CHUNK 96
#define MNQ_AVX2_SCRATCH(k) ((size_t)MNQ_AVX2_CHUNK * (((k) + 1) & ~1) * 2 + 64)
/* uint8 im2col rows of the AVX2-level conv kernels: K taps, then at least 32 bytes of room. */
#define MNQ_IM2COL_AVX2_LDA(k) ((((k) + 31) & ~31) + 32)
/* AVX2 conv: the int16 rows (their 64 spare bytes take the 16-wide widening's overrun), then the uint8 rows. */
#define MNQ_AVX2_CONV_SCRATCH(k) (MNQ_AVX2_SCRATCH(k) + 64 + (size_t)MNQ_AVX2_CHUNK * MNQ_IM2COL_AVX2_LDA(k))
void mnq_pwconv_u8_32x32__amx(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_conv_u8_im2col_32x32__amx(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
/* Below this many rows per thread the AMX pointwise kernel runs the VNNI microkernel. */
#define MNQ_AMX_MIN_ROWS 8
/* AMX packs K to one narrower tile when it is below 64, else to whole 64-byte steps. */
#define MNQ_AMX_KALIGN(k) ((k) < 64 ? 4 : 64)
#define MNQ_AMX_KP(k) (((k) + MNQ_AMX_KALIGN(k) - 1) / MNQ_AMX_KALIGN(k) * MNQ_AMX_KALIGN(k))
/* Per-thread scratch of the AMX kernels: int32 C block, `rows` A rows of KP (at least 32) bytes, slack. */
#define MNQ_AMX_SCRATCH(k, rows) (32 * 32 * 4 + (size_t)(rows) * (MNQ_AMX_KP(k) < 32 ? 32 : MNQ_AMX_KP(k)) + 64)

#endif
