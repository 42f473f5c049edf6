/* mnq_requantize() on 16 int32 lanes, bit-identical to the scalar definition.
 * Included only by files compiled with AVX-512 flags.
 *
 * With M >= 0, SRDHM(a, M) = floor((a*M + 2^30) / 2^31), and for r >= 1
 * RoundingDivideByPOT(x, r) = floor((x + 2^(r-1) - [x<0]) / 2^r). Nested floors
 * merge (floor((floor(u/A) + c)/B) = floor((u + cA)/(AB)) for integer c), so
 *   y = floor((a*M + 2^30 + (2^(r-1) - [x<0] + zp*2^r) * 2^31) / 2^(31+r))
 * in one 64-bit add and one shift. [x<0] may be taken as [a*M<0]: when a*M < 0
 * but x = 0 both numerators floor to 0 for r >= 1. r = 0 has no [x<0] term.
 * The [x<0] term (a mask and a subtract per half) is skipped when the clamp
 * hides it: x <= 0 gives y <= zp, so with act_min >= zp every negative
 * accumulator clamps to act_min either way (ReLU layers). tests/test_pointwise_
 * kernels.py::test_requant_edges checks this against the scalar path. */
#ifndef MNQ_X86_REQUANT_AVX512_H
#define MNQ_X86_REQUANT_AVX512_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__)
#error "requant_avx512.h needs AVX-512 F/BW flags: include it only from files built with them"
#endif

#include <immintrin.h>

#include "../internal.h"

typedef struct {
  __m512i mult;      /* M in every qword */
  __m512i round;     /* qword: 2^30 + (2^(r-1) + zp*2^r) * 2^31 (zp left out when late_zp) */
  __m512i tie;       /* qword: 2^31, subtracted where a*M < 0 (only when need_tie) */
  __m512i shift;     /* qword: 31 + r */
  __m512i pick;      /* dword index: even lanes from the even products, odd from the odd */
  __m512i zp, lo, hi;
  __m512i lo8, hi8;  /* act_min / act_max in every byte */
  __m128i lshift;
  int left, need_tie, late_zp;
} mnq_rq512;

static inline mnq_rq512 mnq_rq512_init(const mnq_layer_desc *d) {
  const int left = d->shift > 0 ? d->shift : 0, right = d->shift > 0 ? 0 : -d->shift;
  mnq_rq512 q;
  /* 64-bit headroom: |a*M| < 2^62, so zp*2^(31+r) may join the sum only for small r */
  q.late_zp = right > 22;
  int64_t round = ((int64_t)1 << 30) + (right ? (int64_t)1 << (30 + right) : 0);
  if (!q.late_zp) round += (int64_t)d->out_zp << (31 + right);
  q.mult = _mm512_set1_epi64(d->multiplier);
  q.round = _mm512_set1_epi64(round);
  q.tie = _mm512_set1_epi64((int64_t)1 << 31);
  q.shift = _mm512_set1_epi64(31 + right);
  q.pick = _mm512_set_epi32(30, 14, 28, 12, 26, 10, 24, 8, 22, 6, 20, 4, 18, 2, 16, 0);
  q.zp = _mm512_set1_epi32(d->out_zp);
  q.lo = _mm512_set1_epi32(d->act_min);
  q.hi = _mm512_set1_epi32(d->act_max);
  q.lo8 = _mm512_set1_epi8((char)d->act_min);
  q.hi8 = _mm512_set1_epi8((char)d->act_max);
  q.lshift = _mm_cvtsi32_si128(left);
  q.left = left;
  q.need_tie = right > 0 && d->act_min < d->out_zp;
  return q;
}

/* acc -> requantized value plus zero point, not yet clamped (int32 lanes). */
static inline __m512i mnq_rq512_scale(__m512i acc, const mnq_rq512 *q) {
  const __m512i a = q->left ? _mm512_sll_epi32(acc, q->lshift) : acc;
  /* vpmuldq reads the low dword of each qword: even lanes, then odd ones moved down */
  const __m512i pe = _mm512_mul_epi32(a, q->mult);
  const __m512i po = _mm512_mul_epi32(_mm512_shuffle_epi32(a, _MM_PERM_DDBB), q->mult);
  __m512i ve = _mm512_add_epi64(pe, q->round), vo = _mm512_add_epi64(po, q->round);
  if (q->need_tie) {
    ve = _mm512_mask_sub_epi64(ve, _mm512_movepi64_mask(pe), ve, q->tie);
    vo = _mm512_mask_sub_epi64(vo, _mm512_movepi64_mask(po), vo, q->tie);
  }
  const __m512i y = _mm512_permutex2var_epi32(_mm512_srav_epi64(ve, q->shift), q->pick,
                                              _mm512_srav_epi64(vo, q->shift));
  return q->late_zp ? _mm512_add_epi32(y, q->zp) : y;
}

/* acc -> clamped output in int32 lanes (0..255). */
static inline __m512i mnq_rq512_apply(__m512i acc, const mnq_rq512 *q) {
  return _mm512_min_epi32(_mm512_max_epi32(mnq_rq512_scale(acc, q), q->lo), q->hi);
}

/* Four scaled vectors (channels 0-15, 16-31, 32-47, 48-63 of one row) -> the
 * first bytes of 64 clamped uint8 outputs selected by m. Saturating packs keep
 * order (act_min/max lie in 0..255), so clamping once per 64 bytes is exact. */
static inline void mnq_rq512_store64(uint8_t *o, __mmask64 m, __m512i y0, __m512i y1, __m512i y2, __m512i y3,
                                     const mnq_rq512 *q) {
  /* packs interleave per 128-bit lane: dword 4L+j holds channels 16j+4L..+3 */
  const __m512i p = _mm512_packus_epi16(_mm512_packs_epi32(y0, y1), _mm512_packs_epi32(y2, y3));
  const __m512i idx = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
  const __m512i v = _mm512_min_epu8(_mm512_max_epu8(_mm512_permutexvar_epi32(idx, p), q->lo8), q->hi8);
  _mm512_mask_storeu_epi8(o, m, v);
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
