/* Requantization of 8 int32 accumulators to uint8 (mnq_requantize_channel, exact)
 * for the AVX2-level GEMM kernels (AVX2 and AVX-VNNI; only the AVX2 ones take
 * per-channel layers). Included only by files compiled with AVX2 flags. */
#ifndef MNQ_X86_REQUANT_AVX2_H
#define MNQ_X86_REQUANT_AVX2_H

#ifndef __AVX2__
#error "requant_avx2.h needs AVX2 flags (-mavx2): include it only from *__avx2.c / *__avxvnni.c"
#endif

#include <immintrin.h>

#include "../internal.h"

typedef struct {
  __m256i mult, mult_odd, nudge, zp, lo, hi, rmask, rhalf, lshift, rshift;
  const int32_t *lanes; /* per-channel layers: rq_lanes.h blocks of every 8 channels; NULL per tensor */
} rq256;

/* Per-tensor requantization: every lane gets the layer's multiplier and shift. */
static inline rq256 rq256_init(const mnq_layer_desc *d) {
  const int left = d->shift > 0 ? d->shift : 0, right = d->shift > 0 ? 0 : -d->shift;
  const int32_t mask = (int32_t)(((int64_t)1 << right) - 1);
  const __m256i mult = _mm256_set1_epi64x(d->multiplier);
  rq256 q = {mult, mult, _mm256_set1_epi64x((int64_t)1 << 30), _mm256_set1_epi32(d->out_zp),
             _mm256_set1_epi32(d->act_min), _mm256_set1_epi32(d->act_max), _mm256_set1_epi32(mask),
             _mm256_set1_epi32(mask >> 1), _mm256_set1_epi32(left), _mm256_set1_epi32(right)};
  return q;
}

/* Per-channel requantization of 8 output channels: `lanes` is their mnq_rq256_lanes
 * block (gemm.h), prepared at plan time; zero point and clamp come from `base`. */
static inline rq256 rq256_channels(const rq256 *base, const int32_t *lanes) {
  rq256 q = *base;
  q.mult = _mm256_load_si256((const __m256i *)lanes);
  q.mult_odd = _mm256_srli_epi64(q.mult, 32);
  q.lshift = _mm256_load_si256((const __m256i *)(lanes + 8));
  q.rshift = _mm256_load_si256((const __m256i *)(lanes + 16));
  q.rmask = _mm256_load_si256((const __m256i *)(lanes + 24));
  q.rhalf = _mm256_srli_epi32(q.rmask, 1);
  return q;
}

/* mnq_requantize on 8 lanes, each with its own multiplier and shift (all equal per
 * tensor); see requant_avx512.h for why floor((ab + 2^30) >> 31) is SRDHM here. */
static inline __m256i rq256_apply(__m256i acc, const rq256 *q) {
  const __m256i a = _mm256_sllv_epi32(acc, q->lshift);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(a, q->mult), q->nudge), 31);
  const __m256i odd = _mm256_slli_epi64(
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32), q->mult_odd), q->nudge), 1);
  const __m256i x = _mm256_blend_epi32(even, odd, 0xAA);
  const __m256i rem = _mm256_and_si256(x, q->rmask);
  const __m256i threshold = _mm256_sub_epi32(q->rhalf, _mm256_srai_epi32(x, 31));
  __m256i y = _mm256_srav_epi32(x, q->rshift);
  y = _mm256_sub_epi32(y, _mm256_cmpgt_epi32(rem, threshold)); /* true lanes are -1 */
  y = _mm256_add_epi32(y, q->zp);
  return _mm256_min_epi32(_mm256_max_epi32(y, q->lo), q->hi);
}

/* Low n lanes (all 8 when n >= 8), already clamped to [0, 255], as bytes. */
static inline void rq256_store8(uint8_t *o, __m256i y, int n) {
  const __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
  const __m128i p8 = _mm_packus_epi16(p16, p16);
  if (n >= 8) {
    _mm_storel_epi64((__m128i *)o, p8);
  } else {
    uint8_t tmp[16];
    _mm_storeu_si128((__m128i *)tmp, p8);
    memcpy(o, tmp, (size_t)n);
  }
}

#endif
