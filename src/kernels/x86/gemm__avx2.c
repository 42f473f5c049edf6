/* Pointwise conv on AVX2 for CPUs without AVX-512. vpmaddubsw (u8 x s8) can
 * saturate int16, so activations are widened to int16 once per row chunk and
 * multiplied by int16 (w - w_zp) with vpmaddwd: every int32 sum stays exact.
 * Microkernel: 6 rows x 16 channels, 12 ymm accumulators. */
#include <immintrin.h>

#include "gemm.h"

#define MR 6
#define NB 2 /* 8-channel blocks per tile */

typedef struct {
  __m256i mult, nudge, zp, lo, hi, rmask, rhalf;
  __m128i lshift, rshift;
} rq256;

static rq256 rq256_init(const mnq_layer_desc *d) {
  const int left = d->shift > 0 ? d->shift : 0, right = d->shift > 0 ? 0 : -d->shift;
  const int32_t mask = (int32_t)(((int64_t)1 << right) - 1);
  rq256 q = {_mm256_set1_epi64x(d->multiplier), _mm256_set1_epi64x((int64_t)1 << 30), _mm256_set1_epi32(d->out_zp),
             _mm256_set1_epi32(d->act_min), _mm256_set1_epi32(d->act_max), _mm256_set1_epi32(mask),
             _mm256_set1_epi32(mask >> 1), _mm_cvtsi32_si128(left), _mm_cvtsi32_si128(right)};
  return q;
}

/* mnq_requantize on 8 lanes; see requant_avx512.h for why floor((ab + 2^30) >> 31) is SRDHM here. */
static inline __m256i rq256_apply(__m256i acc, const rq256 *q) {
  const __m256i a = _mm256_sll_epi32(acc, q->lshift);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(a, q->mult), q->nudge), 31);
  const __m256i odd = _mm256_slli_epi64(
      _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32), q->mult), q->nudge), 1);
  const __m256i x = _mm256_blend_epi32(even, odd, 0xAA);
  const __m256i rem = _mm256_and_si256(x, q->rmask);
  const __m256i threshold = _mm256_sub_epi32(q->rhalf, _mm256_srai_epi32(x, 31));
  __m256i y = _mm256_sra_epi32(x, q->rshift);
  y = _mm256_sub_epi32(y, _mm256_cmpgt_epi32(rem, threshold)); /* true lanes are -1 */
  y = _mm256_add_epi32(y, q->zp);
  return _mm256_min_epi32(_mm256_max_epi32(y, q->lo), q->hi);
}

static inline void store8(uint8_t *o, __m256i y, int n) {
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

static inline int32_t load4(const int16_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline __attribute__((always_inline)) void ukernel(const int mr, const int nb, const mnq_gemm_packed *P,
                                                          const int16_t *a, long lda, int b, uint8_t *o, long ldo,
                                                          const rq256 *q) {
  const long wstride = (long)P->kgroups * 16;
  const int16_t *w = (const int16_t *)P->w + b * wstride;
  __m256i acc[MR][NB];
  for (int j = 0; j < nb; j++) {
    const __m256i bias = _mm256_load_si256((const __m256i *)(P->bias + (b + j) * 8));
    for (int i = 0; i < mr; i++) acc[i][j] = bias;
  }
  for (int g = 0; g < P->kgroups; g++) {
    __m256i wv[NB];
    for (int j = 0; j < nb; j++) wv[j] = _mm256_load_si256((const __m256i *)(w + j * wstride + g * 16));
    for (int i = 0; i < mr; i++) {
      const __m256i x = _mm256_set1_epi32(load4(a + i * lda + g * 2));
      for (int j = 0; j < nb; j++) acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(x, wv[j]));
    }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nb; j++) store8(o + i * ldo + j * 8, rq256_apply(acc[i][j], q), P->n - (b + j) * 8);
}

#define UK(mr_, nb_) ukernel(mr_, nb_, P, a16 + r * kp, kp, b, o, P->n, &q)

void mnq_pwconv_u8_6x16__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const rq256 q = rq256_init(&L->d);
  const int K = P->k, kp = P->kgroups * 2;
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 8, 1, w, &m0, &m1, &b0, &b1);
  int16_t *a16 = (int16_t *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63);
  for (long c0 = m0; c0 < m1; c0 += MNQ_AVX2_CHUNK) {
    const long rows = m1 - c0 < MNQ_AVX2_CHUNK ? m1 - c0 : MNQ_AVX2_CHUNK;
    for (long r = 0; r < rows; r++) { /* widen; odd K gets a zero partner */
      const uint8_t *x = in + (c0 + r) * K;
      int16_t *dst = a16 + r * kp;
      int k = 0;
      for (; k + 16 <= K; k += 16)
        _mm256_storeu_si256((__m256i *)(dst + k), _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + k))));
      for (; k < kp; k++) dst[k] = k < K ? x[k] : 0;
    }
    for (int b = b0; b < b1; b += NB) {
      const int nb = b1 - b < NB ? b1 - b : NB;
      for (long r = 0; r < rows; r += MR) {
        uint8_t *o = out + (c0 + r) * P->n + b * 8;
        const long mr = rows - r < MR ? rows - r : MR;
        if (nb == NB) {
          switch (mr) {
            case 1: UK(1, 2); break;
            case 2: UK(2, 2); break;
            case 3: UK(3, 2); break;
            case 4: UK(4, 2); break;
            case 5: UK(5, 2); break;
            default: UK(6, 2); break;
          }
        } else {
          switch (mr) {
            case 1: UK(1, 1); break;
            case 2: UK(2, 1); break;
            case 3: UK(3, 1); break;
            case 4: UK(4, 1); break;
            case 5: UK(5, 1); break;
            default: UK(6, 1); break;
          }
        }
      }
    }
  }
}
