/* Pointwise and im2col conv on AVX-VNNI (AVX2 CPUs with the VEX-encoded vpdpbusd, e.g.
 * Alder Lake and later): the AVX-512 VNNI scheme on ymm. Activations (u8) times
 * weights packed as w - 128 (s8, mnq_gemm_pack layout), summed four at a time
 * into int32 without saturation; the per-row sum of x times (128 - w_zp)
 * restores sum x * (w - w_zp). Microkernel: 5 rows x 16 channels, 10 ymm
 * accumulators (one packed 16-lane group is two ymm). Rows go in chunks whose
 * activations stay in cache while every column tile sweeps them; the im2col
 * conv builds one chunk of uint8 rows at a time and runs the same GEMM. */
#include <immintrin.h>

#include "gemm.h"
#include "im2col_avx2.h"
#include "requant_avx2.h"

#define MR 5 /* 6 rows (12 accumulators + 3) made GCC spill in the inner loop */

static inline int32_t load4(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Sum of the k bytes at x; `padded`: zeros follow up to the next multiple of 32. */
static inline int32_t rowsum(const uint8_t *x, int k, int padded) {
  const int kv = padded ? (k + 31) & ~31 : k & ~31;
  __m256i s = _mm256_setzero_si256();
  for (int i = 0; i < kv; i += 32)
    s = _mm256_add_epi64(s, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)(x + i)), _mm256_setzero_si256()));
  const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  int32_t t = (int32_t)_mm_cvtsi128_si64(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2)));
  for (int i = kv; i < k; i++) t += x[i];
  return t;
}

/* mr rows x 16 channels from column block b (of 16); `cols` of them are stored.
 * `padded`: rows may be read in whole 4-byte groups (zeros follow K). */
static inline __attribute__((always_inline)) void ukernel(const int mr, const mnq_gemm_packed *P, const uint8_t *a,
                                                          long lda, int b, const int32_t *rsc, uint8_t *o, long ldo,
                                                          int cols, const rq256 *q, const int padded) {
  const int8_t *w = P->w + (long)b * P->kgroups * 64;
  const __m256i b0 = _mm256_load_si256((const __m256i *)(P->bias + b * 16));
  const __m256i b1 = _mm256_load_si256((const __m256i *)(P->bias + b * 16 + 8));
  __m256i acc[MR][2];
  for (int i = 0; i < mr; i++) {
    const __m256i r = _mm256_set1_epi32(rsc[i]);
    acc[i][0] = _mm256_add_epi32(b0, r);
    acc[i][1] = _mm256_add_epi32(b1, r);
  }
  const int kfull = padded ? P->kgroups : P->k / 4, ktail = padded ? 0 : P->k % 4;
  for (int g = 0; g < kfull; g++) {
    const __m256i w0 = _mm256_load_si256((const __m256i *)(w + g * 64));
    const __m256i w1 = _mm256_load_si256((const __m256i *)(w + g * 64 + 32));
    for (int i = 0; i < mr; i++) {
      const __m256i x = _mm256_set1_epi32(load4(a + i * lda + g * 4));
      acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], x, w0);
      acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], x, w1);
    }
  }
  if (ktail) { /* the row may end here: read only its last bytes (padded weights are 0) */
    const __m256i w0 = _mm256_load_si256((const __m256i *)(w + kfull * 64));
    const __m256i w1 = _mm256_load_si256((const __m256i *)(w + kfull * 64 + 32));
    for (int i = 0; i < mr; i++) {
      const uint8_t *p = a + i * lda + kfull * 4; /* 1 to 3 bytes: no libc memcpy call */
      const __m256i x = _mm256_set1_epi32(p[0] | (ktail > 1 ? p[1] << 8 : 0) | (ktail > 2 ? p[2] << 16 : 0));
      acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], x, w0);
      acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], x, w1);
    }
  }
  for (int i = 0; i < mr; i++) {
    rq256_store8(o + i * ldo, rq256_apply(acc[i][0], q), cols);
    if (cols > 8) rq256_store8(o + i * ldo + 8, rq256_apply(acc[i][1], q), cols - 8);
  }
}

#define UK(mr_)                                                           \
  (padded ? ukernel(mr_, P, ar, lda, b, rsc + r, o, ldo, cols, q, 1)      \
          : ukernel(mr_, P, ar, lda, b, rsc + r, o, ldo, cols, q, 0))

/* rows x column blocks [b0, b1) of 16; a points at the first row; `padded` as for ukernel. */
static void gemm_rows(const mnq_gemm_packed *P, const rq256 *q, const uint8_t *a, long lda, long rows, uint8_t *out,
                      long ldo, int b0, int b1, const int padded) {
  int32_t rsc[MNQ_AVXVNNI_CHUNK];
  for (long c0 = 0; c0 < rows; c0 += MNQ_AVXVNNI_CHUNK) {
    const long cr = rows - c0 < MNQ_AVXVNNI_CHUNK ? rows - c0 : MNQ_AVXVNNI_CHUNK;
    for (long r = 0; r < cr; r++) rsc[r] = rowsum(a + (c0 + r) * lda, P->k, padded) * P->zw_corr;
    for (int b = b0; b < b1; b++) {
      const int cols = P->n - b * 16 < 16 ? P->n - b * 16 : 16;
      for (long r = 0; r < cr; r += MR) {
        const uint8_t *ar = a + (c0 + r) * lda;
        uint8_t *o = out + (c0 + r) * ldo + b * 16;
        switch (cr - r < MR ? cr - r : MR) {
          case 1: UK(1); break;
          case 2: UK(2); break;
          case 3: UK(3); break;
          case 4: UK(4); break;
          default: UK(5); break;
        }
      }
    }
  }
}

void mnq_pwconv_u8_5x16__avxvnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const rq256 q = rq256_init(&L->d);
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 16, 1, w, &m0, &m1, &b0, &b1);
  gemm_rows(P, &q, in + m0 * P->k, P->k, m1 - m0, out + m0 * P->n, P->n, b0, b1, 0);
}

void mnq_conv_u8_im2col_5x16__avxvnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                      const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const rq256 q = rq256_init(&L->d);
  const long lda = MNQ_IM2COL_AVX2_LDA(P->k);
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 16, 1, w, &m0, &m1, &b0, &b1);
  for (long r = m0; r < m1; r += MNQ_AVXVNNI_CHUNK) {
    const long rows = m1 - r < MNQ_AVXVNNI_CHUNK ? m1 - r : MNQ_AVXVNNI_CHUNK;
    mnq_im2col_avx2(&L->d, in, r, rows, w->scratch, lda);
    gemm_rows(P, &q, w->scratch, lda, rows, out + r * P->n, P->n, b0, b1, 1);
  }
}
