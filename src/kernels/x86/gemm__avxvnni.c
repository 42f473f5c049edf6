/* Pointwise conv on AVX-VNNI (AVX2 CPUs with the VEX-encoded vpdpbusd, e.g.
 * Alder Lake and later): the AVX-512 VNNI scheme on ymm. Activations (u8) times
 * weights packed as w - 128 (s8, mnq_gemm_pack layout), summed four at a time
 * into int32 without saturation; the per-row sum of x times (128 - w_zp)
 * restores sum x * (w - w_zp). Microkernel: 6 rows x 16 channels, 12 ymm
 * accumulators (one packed 16-lane group is two ymm). */
#include <immintrin.h>

#include "gemm.h"
#include "requant_avx2.h"

#define MR 6
#define CHUNK 96 /* rows whose activations stay in cache while every column tile sweeps them */

static inline int32_t load4(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline int32_t rowsum(const uint8_t *x, int k) {
  __m256i s = _mm256_setzero_si256();
  int i = 0;
  for (; i + 32 <= k; i += 32) s = _mm256_add_epi64(s, _mm256_sad_epu8(_mm256_loadu_si256((const __m256i *)(x + i)),
                                                                         _mm256_setzero_si256()));
  const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  int32_t t = (int32_t)_mm_cvtsi128_si64(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2)));
  for (; i < k; i++) t += x[i];
  return t;
}

/* mr rows x 16 channels from column block b (of 16); `cols` of them are stored. */
static inline __attribute__((always_inline)) void ukernel(const int mr, const mnq_gemm_packed *P, const uint8_t *a,
                                                          long lda, int b, const int32_t *rsc, uint8_t *o, long ldo,
                                                          int cols, const rq256 *q) {
  const int8_t *w = P->w + (long)b * P->kgroups * 64;
  const __m256i b0 = _mm256_load_si256((const __m256i *)(P->bias + b * 16));
  const __m256i b1 = _mm256_load_si256((const __m256i *)(P->bias + b * 16 + 8));
  __m256i acc[MR][2];
  for (int i = 0; i < mr; i++) {
    const __m256i r = _mm256_set1_epi32(rsc[i]);
    acc[i][0] = _mm256_add_epi32(b0, r);
    acc[i][1] = _mm256_add_epi32(b1, r);
  }
  const int kfull = P->k / 4, ktail = P->k % 4;
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
      int32_t t = 0;
      memcpy(&t, a + i * lda + kfull * 4, (size_t)ktail);
      const __m256i x = _mm256_set1_epi32(t);
      acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], x, w0);
      acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], x, w1);
    }
  }
  for (int i = 0; i < mr; i++) {
    rq256_store8(o + i * ldo, rq256_apply(acc[i][0], q), cols);
    if (cols > 8) rq256_store8(o + i * ldo + 8, rq256_apply(acc[i][1], q), cols - 8);
  }
}

#define UK(mr_) ukernel(mr_, P, ar, lda, b, rsc + r, o, ldo, cols, q)

void mnq_pwconv_u8_6x16__avxvnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const rq256 qv = rq256_init(&L->d), *q = &qv;
  const long lda = P->k, ldo = P->n;
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 16, 1, w, &m0, &m1, &b0, &b1);
  int32_t rsc[CHUNK];
  for (long c0 = m0; c0 < m1; c0 += CHUNK) {
    const long cr = m1 - c0 < CHUNK ? m1 - c0 : CHUNK;
    for (long r = 0; r < cr; r++) rsc[r] = rowsum(in + (c0 + r) * lda, P->k) * P->zw_corr;
    for (int b = b0; b < b1; b++) {
      const int cols = P->n - b * 16 < 16 ? P->n - b * 16 : 16;
      for (long r = 0; r < cr; r += MR) {
        const uint8_t *ar = in + (c0 + r) * lda;
        uint8_t *o = out + (c0 + r) * ldo + b * 16;
        switch (cr - r < MR ? cr - r : MR) {
          case 1: UK(1); break;
          case 2: UK(2); break;
          case 3: UK(3); break;
          case 4: UK(4); break;
          case 5: UK(5); break;
          default: UK(6); break;
        }
      }
    }
  }
}
