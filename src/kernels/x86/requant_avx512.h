/* TFLite-exact requantization of 16 int32 accumulators (AVX-512), bit-identical
 * to mnq_requantize() in internal.h. */
#ifndef MNQ_REQUANT_AVX512_H
#define MNQ_REQUANT_AVX512_H

#include <immintrin.h>

#include "../internal.h"

typedef struct {
  __m512i mult, round30, rmask, rthr, out_zp, lo, hi;
  __m128i lshift, rshift;
} mnq_rq512;

static inline mnq_rq512 mnq_rq512_init(const mnq_layer_desc *d) {
  const int left = d->shift > 0 ? d->shift : 0, right = d->shift > 0 ? 0 : -d->shift;
  const int32_t mask = (int32_t)(((int64_t)1 << right) - 1);
  mnq_rq512 p;
  p.mult = _mm512_set1_epi64(d->multiplier);
  p.round30 = _mm512_set1_epi64((int64_t)1 << 30);
  p.rmask = _mm512_set1_epi32(mask);
  p.rthr = _mm512_set1_epi32(mask >> 1);
  p.out_zp = _mm512_set1_epi32(d->out_zp);
  p.lo = _mm512_set1_epi32(d->act_min);
  p.hi = _mm512_set1_epi32(d->act_max);
  p.lshift = _mm_cvtsi32_si128(left);
  p.rshift = _mm_cvtsi32_si128(right);
  return p;
}

/* acc -> clamped output in int32 lanes. SRDHM with multiplier >= 0 equals
 * floor((a*M + 2^30) / 2^31): the scalar nudge-then-truncate gives the same
 * value for negative products, and a = M = INT32_MIN cannot occur. */
static inline __m512i mnq_rq512_apply(__m512i acc, const mnq_rq512 *p) {
  const __m512i a = _mm512_sll_epi32(acc, p->lshift);
  const __m512i even = _mm512_add_epi64(_mm512_mul_epi32(a, p->mult), p->round30);
  const __m512i odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(a, 32), p->mult), p->round30);
  /* bits 31..62 of each 64-bit product: low half for even lanes, high half for odd */
  const __m512i hm = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 31), _mm512_slli_epi64(odd, 1));
  /* rounding divide by 2^right, ties away from zero */
  const __m512i q = _mm512_sra_epi32(hm, p->rshift);
  const __m512i rem = _mm512_and_si512(hm, p->rmask);
  const __m512i thr = _mm512_sub_epi32(p->rthr, _mm512_srai_epi32(hm, 31));
  const __m512i y = _mm512_mask_add_epi32(q, _mm512_cmpgt_epi32_mask(rem, thr), q, _mm512_set1_epi32(1));
  return _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(y, p->out_zp), p->lo), p->hi);
}

#endif
