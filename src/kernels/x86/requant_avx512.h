/* mnq_requantize() on 16 int32 lanes, bit-identical to the scalar definition.
 * Included only by files compiled with AVX-512 flags. */
#ifndef MNQ_X86_REQUANT_AVX512_H
#define MNQ_X86_REQUANT_AVX512_H

#include <immintrin.h>

#include "../internal.h"

typedef struct {
  __m512i mult, nudge, zp, lo, hi, one;
  __m128i lshift, rshift;
  __m512i rmask, rhalf;  /* (1 << right) - 1 and its half */
} mnq_rq512;

static inline mnq_rq512 mnq_rq512_init(const mnq_layer_desc *d) {
  const int left = d->shift > 0 ? d->shift : 0, right = d->shift > 0 ? 0 : -d->shift;
  const int32_t mask = (int32_t)(((int64_t)1 << right) - 1);
  mnq_rq512 q;
  q.mult = _mm512_set1_epi64(d->multiplier);
  q.nudge = _mm512_set1_epi64((int64_t)1 << 30);
  q.zp = _mm512_set1_epi32(d->out_zp);
  q.lo = _mm512_set1_epi32(d->act_min);
  q.hi = _mm512_set1_epi32(d->act_max);
  q.one = _mm512_set1_epi32(1);
  q.lshift = _mm_cvtsi32_si128(left);
  q.rshift = _mm_cvtsi32_si128(right);
  q.rmask = _mm512_set1_epi32(mask);
  q.rhalf = _mm512_set1_epi32(mask >> 1);
  return q;
}

/* acc -> clamped output in int32 lanes (0..255). */
static inline __m512i mnq_rq512_apply(__m512i acc, const mnq_rq512 *q) {
  const __m512i a = _mm512_sll_epi32(acc, q->lshift);
  /* SRDHM: the multiplier is in [0, 2^31), so a*b never saturates and
   * trunc((ab + nudge) / 2^31) with TFLite's sign-dependent nudge equals
   * floor((ab + 2^30) / 2^31) for both signs. Even lanes and odd lanes are
   * multiplied separately (vpmuldq uses the low dword of each qword). */
  const __m512i even = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(a, q->mult), q->nudge), 31);
  const __m512i odd = _mm512_slli_epi64(
      _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(a, 32), q->mult), q->nudge), 1);
  const __m512i x = _mm512_mask_blend_epi32(0xAAAA, even, odd);
  /* rounding divide by 2^right, ties away from zero */
  const __m512i rem = _mm512_and_si512(x, q->rmask);
  const __m512i threshold = _mm512_sub_epi32(q->rhalf, _mm512_srai_epi32(x, 31));
  __m512i y = _mm512_sra_epi32(x, q->rshift);
  y = _mm512_mask_add_epi32(y, _mm512_cmpgt_epi32_mask(rem, threshold), y, q->one);
  y = _mm512_add_epi32(y, q->zp);
  return _mm512_min_epi32(_mm512_max_epi32(y, q->lo), q->hi);
}

/* Sum of a row's k bytes (vpsadbw), reading nothing past the row. */
static inline int32_t mnq_rowsum512(const uint8_t *x, int k) {
  __m512i s = _mm512_setzero_si512();
  int i = 0;
  for (; i + 64 <= k; i += 64) s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_loadu_si512(x + i), _mm512_setzero_si512()));
  if (i < k) {
    const __m512i v = _mm512_maskz_loadu_epi8((1ull << (k - i)) - 1, x + i);
    s = _mm512_add_epi64(s, _mm512_sad_epu8(v, _mm512_setzero_si512()));
  }
  return (int32_t)_mm512_reduce_add_epi64(s);
}

#endif
