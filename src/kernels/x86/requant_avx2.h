/* TFLite-exact requantization of 8 int32 accumulators (AVX2), bit-identical
 * to mnq_requantize() in internal.h. */
#ifndef MNQ_REQUANT_AVX2_H
#define MNQ_REQUANT_AVX2_H

#include <immintrin.h>

#include "../internal.h"

typedef struct {
  __m256i mult, round30, rmask, rthr, out_zp, lo, hi;
  __m128i lshift, rshift;
} mnq_rq256;

static inline mnq_rq256 mnq_rq256_init(const mnq_layer_desc *d) {
  const int left = d->shift > 0 ? d->shift : 0, right = d->shift > 0 ? 0 : -d->shift;
  const int32_t mask = (int32_t)(((int64_t)1 << right) - 1);
  mnq_rq256 p;
  p.mult = _mm256_set1_epi64x(d->multiplier);
  p.round30 = _mm256_set1_epi64x((int64_t)1 << 30);
  p.rmask = _mm256_set1_epi32(mask);
  p.rthr = _mm256_set1_epi32(mask >> 1);
  p.out_zp = _mm256_set1_epi32(d->out_zp);
  p.lo = _mm256_set1_epi32(d->act_min);
  p.hi = _mm256_set1_epi32(d->act_max);
  p.lshift = _mm_cvtsi32_si128(left);
  p.rshift = _mm_cvtsi32_si128(right);
  return p;
}

/* acc -> clamped output in int32 lanes. SRDHM with multiplier >= 0 equals
 * floor((a*M + 2^30) / 2^31): the scalar nudge-then-truncate gives the same
 * value for negative products, and a = M = INT32_MIN cannot occur. */
static inline __m256i mnq_rq256_apply(__m256i acc, const mnq_rq256 *p) {
  const __m256i a = _mm256_sll_epi32(acc, p->lshift);
  const __m256i even = _mm256_add_epi64(_mm256_mul_epi32(a, p->mult), p->round30);
  const __m256i odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32), p->mult), p->round30);
  /* bits 31..62 of each 64-bit product: low half for even lanes, high half for odd */
  const __m256i hm = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  /* rounding divide by 2^right, ties away from zero (cmpgt is -1 where true) */
  const __m256i q = _mm256_sra_epi32(hm, p->rshift);
  const __m256i rem = _mm256_and_si256(hm, p->rmask);
  const __m256i thr = _mm256_sub_epi32(p->rthr, _mm256_srai_epi32(hm, 31));
  const __m256i y = _mm256_sub_epi32(q, _mm256_cmpgt_epi32(rem, thr));
  return _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(y, p->out_zp), p->lo), p->hi);
}

#endif
