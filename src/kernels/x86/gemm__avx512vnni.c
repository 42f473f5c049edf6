/* Pointwise conv (a GEMM) and im2col conv on AVX-512 VNNI: vpdpbusd multiplies
 * activations (u8) by packed weights stored as w - 128 (s8); the per-row sum
 * of x times (128 - w_zp) restores sum x * (w - w_zp). Microkernel: 6 rows x
 * 64 channels, 24 zmm accumulators; requantized in registers. */
#include <immintrin.h>

#include "gemm.h"
#include "im2col_avx512.h"
#include "requant_avx512.h"

#define MR 6
#define NB 4 /* 16-channel blocks per tile */

static inline int32_t load4(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline __attribute__((always_inline)) void ukernel(
    const int mr, const int nb, const mnq_gemm_packed *P, const uint8_t *a, long lda, int b,
    const int32_t *rsc, uint8_t *o, long ldo, __mmask64 cols, const mnq_rq512 *q) {
  const long wstride = (long)P->kgroups * 64;
  const int8_t *w = P->w + b * wstride;
  __m512i acc[MR][NB];
  for (int j = 0; j < nb; j++) {
    const __m512i bias = _mm512_load_si512(P->bias + (b + j) * 16);
    for (int i = 0; i < mr; i++) acc[i][j] = _mm512_add_epi32(bias, _mm512_set1_epi32(rsc[i]));
  }
  const int kfull = P->k / 4, ktail = P->k % 4;
  for (int g = 0; g < kfull; g++) {
    __m512i wv[NB];
    for (int j = 0; j < nb; j++) wv[j] = _mm512_load_si512(w + j * wstride + g * 64);
    for (int i = 0; i < mr; i++) {
      const __m512i x = _mm512_set1_epi32(load4(a + i * lda + g * 4));
      for (int j = 0; j < nb; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], x, wv[j]);
    }
  }
  if (ktail) { /* the row may end here: read only its last bytes */
    __m512i wv[NB];
    for (int j = 0; j < nb; j++) wv[j] = _mm512_load_si512(w + j * wstride + kfull * 64);
    for (int i = 0; i < mr; i++) {
      const __m128i xt = _mm_maskz_loadu_epi8((__mmask16)((1u << ktail) - 1), a + i * lda + kfull * 4);
      const __m512i x = _mm512_broadcastd_epi32(xt);
      for (int j = 0; j < nb; j++) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], x, wv[j]);
    }
  }
  for (int i = 0; i < mr; i++) {
    __m512i y[NB];
    for (int j = 0; j < NB; j++) y[j] = j < nb ? mnq_rq512_scale(acc[i][j], q) : _mm512_setzero_si512();
    mnq_rq512_store64(o + i * ldo, cols, y[0], y[1], y[2], y[3], q);
  }
}

#define UK(mr_, nb_) ukernel(mr_, nb_, P, ar, lda, b, rsc + r, o, ldo, cols, q)
#define UK_NB(mr_)                 \
  switch (nb) {                    \
    case 1: UK(mr_, 1); break;     \
    case 2: UK(mr_, 2); break;     \
    case 3: UK(mr_, 3); break;     \
    default: UK(mr_, 4); break;    \
  }

/* rows x [b0*16, b1*16) of the GEMM; a points at the first row. Rows go in
 * chunks whose activations stay in cache while every column tile sweeps them. */
static void gemm_rows(const mnq_gemm_packed *P, const mnq_rq512 *q, const uint8_t *a, long lda, long rows,
                      uint8_t *out, long ldo, int b0, int b1) {
  enum { CHUNK_MAX = 64 * MR };
  long chunk = (65536 / lda) / MR * MR;
  chunk = chunk < MR ? MR : chunk > CHUNK_MAX ? CHUNK_MAX : chunk;
  int32_t rsc[CHUNK_MAX];
  for (long c0 = 0; c0 < rows; c0 += chunk) {
    const long cr = rows - c0 < chunk ? rows - c0 : chunk;
    for (long r = 0; r < cr; r++) rsc[r] = mnq_rowsum512(a + (c0 + r) * lda, P->k) * P->zw_corr;
    for (int b = b0; b < b1; b += NB) {
      const int nb = b1 - b < NB ? b1 - b : NB;
      const int width = P->n - b * 16 < nb * 16 ? P->n - b * 16 : nb * 16; /* not past this thread's columns */
      const __mmask64 cols = width >= 64 ? ~0ull : (1ull << width) - 1;
      for (long r = 0; r < cr; r += MR) {
        const uint8_t *ar = a + (c0 + r) * lda;
        uint8_t *o = out + (c0 + r) * ldo + b * 16;
        switch (cr - r < MR ? cr - r : MR) {
          case 1: UK_NB(1); break;
          case 2: UK_NB(2); break;
          case 3: UK_NB(3); break;
          case 4: UK_NB(4); break;
          case 5: UK_NB(5); break;
          default: UK_NB(6); break;
        }
      }
    }
  }
}

void mnq_gemm_u8_6x64__avx512vnni(const mnq_gemm_packed *P, const mnq_layer_desc *d, const uint8_t *a, long lda,
                                  long rows, uint8_t *out, long ldo, int b0, int b1) {
  const mnq_rq512 q = mnq_rq512_init(d);
  gemm_rows(P, &q, a, lda, rows, out, ldo, b0, b1);
}

void mnq_pwconv_u8_6x64__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                    const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const mnq_rq512 q = mnq_rq512_init(&L->d);
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 16, 1, w, &m0, &m1, &b0, &b1);
  gemm_rows(P, &q, in + m0 * P->k, P->k, m1 - m0, out + m0 * P->n, P->n, b0, b1);
}

void mnq_conv_u8_im2col_6x64__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                         const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const mnq_rq512 q = mnq_rq512_init(&L->d);
  const int lda = (P->k + 3) & ~3;
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 16, 1, w, &m0, &m1, &b0, &b1);
  for (long r = m0; r < m1; r += MNQ_IM2COL_ROWS) {
    const long rows = m1 - r < MNQ_IM2COL_ROWS ? m1 - r : MNQ_IM2COL_ROWS;
    mnq_im2col512(&L->d, in, r, rows, w->scratch, lda);
    gemm_rows(P, &q, w->scratch, lda, rows, out + r * P->n, P->n, b0, b1);
  }
}
