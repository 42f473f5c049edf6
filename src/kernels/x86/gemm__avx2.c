/* Pointwise conv on AVX2 for CPUs without AVX-512. vpmaddubsw (u8 x s8) can
 * saturate int16, so activations are widened to int16 once per row chunk and
 * multiplied by int16 (w - w_zp) with vpmaddwd: every int32 sum stays exact.
 * Microkernel: 6 rows x 16 channels, 12 ymm accumulators. The im2col conv
 * widens its uint8 im2col rows the same way and runs the same microkernel. */
#include <immintrin.h>

#include "gemm.h"
#include "im2col_avx2.h"
#include "requant_avx2.h"

#define MR 6
#define NB 2 /* 8-channel blocks per tile */

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
  for (int j = 0; j < nb; j++) {
    const rq256 qj = P->rq_lanes ? rq256_channels(q, P->rq_lanes + (b + j) * 32) : *q;
    for (int i = 0; i < mr; i++) rq256_store8(o + i * ldo + j * 8, rq256_apply(acc[i][j], &qj), P->n - (b + j) * 8);
  }
}

#define UK(mr_, nb_) ukernel(mr_, nb_, P, a16 + r * kp, kp, b, out + r * ldo + b * 8, ldo, q)
#define UK_MR(nb_)                         \
  switch (rows - r < MR ? rows - r : MR) { \
    case 1: UK(1, nb_); break;             \
    case 2: UK(2, nb_); break;             \
    case 3: UK(3, nb_); break;             \
    case 4: UK(4, nb_); break;             \
    case 5: UK(5, nb_); break;             \
    default: UK(6, nb_); break;            \
  }

/* rows x column blocks [b0, b1) of 8 over int16 rows of kp (even) entries. */
static void gemm_chunk(const mnq_gemm_packed *P, const rq256 *q, const int16_t *a16, int kp, long rows, uint8_t *out,
                       long ldo, int b0, int b1) {
  for (int b = b0; b < b1; b += NB) {
    if (b1 - b >= NB) {
      for (long r = 0; r < rows; r += MR) UK_MR(2);
    } else {
      for (long r = 0; r < rows; r += MR) UK_MR(1);
    }
  }
}

static int16_t *scratch16(const mnq_work *w) { return (int16_t *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63); }

void mnq_pwconv_u8_6x16__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const rq256 q = rq256_init(&L->d);
  const int K = P->k, kp = P->kgroups * 2;
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 8, 1, w, &m0, &m1, &b0, &b1);
  int16_t *a16 = scratch16(w);
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
    gemm_chunk(P, &q, a16, kp, rows, out + c0 * P->n, P->n, b0, b1);
  }
}

void mnq_conv_u8_im2col_6x16__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                   const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const rq256 q = rq256_init(&L->d);
  const int kp = P->kgroups * 2;
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 8, 1, w, &m0, &m1, &b0, &b1);
  const long lda = MNQ_IM2COL_AVX2_LDA(P->k);
  int16_t *a16 = scratch16(w);
  uint8_t *a8 = (uint8_t *)a16 + MNQ_AVX2_SCRATCH(P->k);
  for (long c0 = m0; c0 < m1; c0 += MNQ_AVX2_CHUNK) {
    const long rows = m1 - c0 < MNQ_AVX2_CHUNK ? m1 - c0 : MNQ_AVX2_CHUNK;
    mnq_im2col_avx2(&L->d, in, c0, rows, a8, lda);
    /* widen 16 at a time: rows end in >= 32 zeros (the odd K's partner) and a16 has room past kp */
    for (long r = 0; r < rows; r++)
      for (int k = 0; k < kp; k += 16)
        _mm256_storeu_si256((__m256i *)(a16 + r * kp + k),
                            _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a8 + r * lda + k))));
    gemm_chunk(P, &q, a16, kp, rows, out + c0 * P->n, P->n, b0, b1);
  }
}
