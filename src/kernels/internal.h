/* Shared by the executor and every kernel: the planned layer, the per-thread work
 * slice, and the TFLite-exact fixed-point helpers that define "correct". */
#ifndef MNQ_INTERNAL_H
#define MNQ_INTERNAL_H

#include <limits.h>
#include <string.h>

#include "mnq.h"

typedef struct {
  int part, nparts;   /* this thread's index and the thread count */
  uint8_t *scratch;   /* this thread's scratch, mnq_layer.scratch_bytes long */
} mnq_work;

typedef struct mnq_layer mnq_layer;

/* Every kernel: process this thread's share of the layer for the whole batch. */
typedef void (*mnq_kernel_fn)(const mnq_layer *L, const uint8_t *in, uint8_t *out,
                              int batch, const mnq_work *w);

struct mnq_layer {
  mnq_layer_desc d;
  mnq_kernel_fn kernel;
  const char *kernel_name;
  /* Pointwise layers, and convs on the im2col GEMM kernels (mnq_fold_bias):
   * bias - in_zp * sum_k(w - w_zp) over all k_h*k_w*in_c taps, so that
   * acc = bias_folded + sum_k x * (w - w_zp) exactly. NULL otherwise. */
  int32_t *bias_folded;
  void *packed;          /* kernel-specific weight layout, owned by the net */
  size_t scratch_bytes;  /* per thread */
  /* 1 when the kernel never reads d.weights / d.bias / d.channel_* after selection
   * (it runs from packed, or the op has no such arrays); 0 (the default) otherwise */
  int packed_only;
};

/* ---- dispatch.c ---- */
/* Choose the layer's kernel for `isa` (and pack its weights); -1 and err on failure. */
int mnq_select_kernel(mnq_layer *L, int isa, char *err, size_t err_len);
/* Fill L->bias_folded (conv or pointwise); -1 when out of memory. */
int mnq_fold_bias(mnq_layer *L);

/* Split [0, total) evenly; this thread gets [*begin, *end). */
static inline void mnq_partition(long total, const mnq_work *w, long *begin, long *end) {
  long chunk = total / w->nparts, rem = total % w->nparts;
  *begin = w->part * chunk + (w->part < rem ? w->part : rem);
  *end = *begin + chunk + (w->part < rem ? 1 : 0);
}

/* ---- gemmlowp / TFLite fixed-point primitives (scalar definitions) ---- */

/* round(a * b / 2^31), ties toward +inf (docs/exactness.md); the one overflow case saturates. */
static inline int32_t mnq_srdhm(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  int64_t ab = (int64_t)a * (int64_t)b;
  int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
static inline int32_t mnq_rdpot(int32_t x, int exponent) {
  /* |x| <= 2^31: beyond 31 the rounded quotient is 0 (-1 for the one tie). The uint8
   * softmax asks for 32+ when the sum of exps reaches 512 (e.g. 1001 equal logits);
   * TFLite's reference aborts there (gemmlowp asserts exponent <= 31), C shifts are UB. */
  if (exponent > 31) return (exponent == 32 && x == INT32_MIN) ? -1 : 0;
  const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier (double rounding). The left shift wraps
 * like TFLite's int32 multiply; accumulators of valid models never reach it. */
static inline int32_t mnq_mul_by_multiplier(int32_t x, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
  return mnq_rdpot(mnq_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* Accumulator -> clamped uint8 output of a conv-like layer (per-tensor requantization). */
static inline uint8_t mnq_requantize(int32_t acc, const mnq_layer_desc *d) {
  int32_t y = mnq_mul_by_multiplier(acc, d->multiplier, d->shift) + d->out_zp;
  if (y < d->act_min) y = d->act_min;
  if (y > d->act_max) y = d->act_max;
  return (uint8_t)y;
}

/* The same for output channel c, with the layer's per-channel multiplier and shift
 * when it has them (int8 models). */
static inline uint8_t mnq_requantize_channel(int32_t acc, const mnq_layer_desc *d, int c) {
  if (!d->channel_multipliers) return mnq_requantize(acc, d);
  int32_t y = mnq_mul_by_multiplier(acc, d->channel_multipliers[c], d->channel_shifts[c]) + d->out_zp;
  if (y < d->act_min) y = d->act_min;
  if (y > d->act_max) y = d->act_max;
  return (uint8_t)y;
}

/* Average pool's rounded mean of `count` inputs summing to `sum` (see pool_center, mnq.h):
 * the mean of (x - center), rounded half away from zero, plus center. */
static inline int32_t mnq_pool_average(int32_t sum, int32_t count, int32_t center) {
  if (count <= 0) return 0;
  const int32_t s = sum - center * count;
  return (s >= 0 ? (s + count / 2) / count : -((-s + count / 2) / count)) + center;
}

/* ---- uint8 softmax building blocks (gemmlowp fixed point, ref/pool_softmax_scalar.c) ---- */
#define MNQ_SOFTMAX_ACCUM_INT_BITS 12
/* exp(diff * beta * input_scale) in Q0, for diff <= 0 with diff >= softmax_diff_min. */
int32_t mnq_softmax_exp(const mnq_layer_desc *d, int32_t diff);
/* 1 / sum_of_exps (Q12) as output = RDPOT(SRDHM(shifted_scale, exp), exponent). */
void mnq_softmax_reciprocal(int32_t sum_of_exps, int32_t *shifted_scale, int *exponent);

/* ---- scalar kernels: the oracle every fast kernel is tested against ---- */
void mnq_conv_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_dwconv_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_pwconv_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_avgpool_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_softmax_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_copy_u8(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);

/* ---- portable fast paths for the cheap ops (generic/), used above the scalar level ---- */
/* L->packed: int32[256] table of mnq_softmax_exp(-d), d = 0..255 (0 where below diff_min) */
int mnq_softmax_u8_lut_pack(mnq_layer *L);
void mnq_softmax_u8_lut(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_avgpool_u8_channels(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);

#endif
