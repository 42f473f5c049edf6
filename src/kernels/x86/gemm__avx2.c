/* Pointwise conv and im2col conv on AVX2 for CPUs without AVX-512 or AVX-VNNI.
 * vpmaddubsw (u8 x s8) can saturate int16, so activations are widened to int16
 * once per chunk of rows and multiplied by int16 (w - w_zp) with vpmaddwd: every
 * int32 sum stays exact.
 *
 * Microkernel mnq_gemm_i16_{MR}x8c8__avx2: MR rows x 8 columns, K in groups of 8
 * ("c8", the mnq_gemm_pack_i16 layout). Per group a row's 8 activations are loaded
 * into both 128-bit halves (a load, no shuffle) and each of 4 weight vectors holds
 * 8 k of two columns (j, j + 4), so vpmaddwd + vpaddd are the only arithmetic in the
 * loop; three vphaddd per row at the end leave the 8 column sums in order. It knows
 * rows, K, strides and the prepared requantization only; the drivers widen, tile
 * and split. 3 rows (12 accumulators) measured fastest on Zen 3 (bench/README.md). */
#include <immintrin.h>

#include "gemm.h"
#include "im2col_avx2.h"
#include "requant_avx2.h"

#define MR 3

/* The one requantization call site: 8 int32 sums of output channels [n0, n0 + 8) -> min(nc, 8) bytes. */
static inline void store_requantized(uint8_t *c, __m256i acc, const rq256 *q, int n0, int nc) {
  (void)n0; /* per-channel parameters would be read at n0 */
  rq256_store8(c, rq256_apply(acc, q), nc);
}

/* Rows unrolled by macros, not arrays: gcc keeps an accumulator array in memory. */
#define ROWS_1(X) X(0)
#define ROWS_2(X) X(0) X(1)
#define ROWS_3(X) X(0) X(1) X(2)
#define DECLARE_ROW(i)                                                                              \
  __m256i acc##i##0 = _mm256_setzero_si256(), acc##i##1 = acc##i##0, acc##i##2 = acc##i##0, \
          acc##i##3 = acc##i##0;                                                                  \
  const int16_t *a##i = a + i * a_stride;
#define LOAD_ROW(i)                                                                   \
  const __m256i x##i = _mm256_broadcastsi128_si256(_mm_load_si128((const __m128i *)a##i)); \
  a##i += 8;
#define MADD0(i) acc##i##0 = _mm256_add_epi32(acc##i##0, _mm256_madd_epi16(x##i, wv));
#define MADD1(i) acc##i##1 = _mm256_add_epi32(acc##i##1, _mm256_madd_epi16(x##i, wv));
#define MADD2(i) acc##i##2 = _mm256_add_epi32(acc##i##2, _mm256_madd_epi16(x##i, wv));
#define MADD3(i) acc##i##3 = _mm256_add_epi32(acc##i##3, _mm256_madd_epi16(x##i, wv));
#define STORE_ROW(i)                                                                                            \
  store_requantized(c + i * c_stride,                                                                           \
                    _mm256_add_epi32(_mm256_hadd_epi32(_mm256_hadd_epi32(acc##i##0, acc##i##1),               \
                                                       _mm256_hadd_epi32(acc##i##2, acc##i##3)),              \
                                     b),                                                                        \
                    q, n0, nc);

/* c[mr][min(nc, 8)] = requantize(bias[0..8) + a[mr][8 * kgroups] . w), with a rows a_stride
 * int16 apart (16-byte aligned) and w one packed 8-column block (32-byte aligned).
 * no-tree-pre: with it gcc spills accumulators in the inner loop (checked with gcc -S). */
#define DEFINE_UKERNEL(m)                                                                                         \
  static __attribute__((optimize("no-tree-pre"))) void mnq_gemm_i16_##m##x8c8__avx2(                              \
      long kgroups, const int16_t *a, long a_stride, const int16_t *w, const int32_t *bias, uint8_t *c,          \
      long c_stride, int n0, int nc, const rq256 *q) {                                                            \
    ROWS_##m(DECLARE_ROW);                                                                                        \
    for (long g = 0; g < kgroups; g++, w += 64) {                                                                \
      ROWS_##m(LOAD_ROW);                                                                                         \
      __m256i wv = _mm256_load_si256((const __m256i *)w);                                                         \
      ROWS_##m(MADD0);                                                                                            \
      wv = _mm256_load_si256((const __m256i *)(w + 16));                                                          \
      ROWS_##m(MADD1);                                                                                            \
      wv = _mm256_load_si256((const __m256i *)(w + 32));                                                          \
      ROWS_##m(MADD2);                                                                                            \
      wv = _mm256_load_si256((const __m256i *)(w + 48));                                                          \
      ROWS_##m(MADD3);                                                                                            \
    }                                                                                                             \
    const __m256i b = _mm256_loadu_si256((const __m256i *)bias);                                                 \
    ROWS_##m(STORE_ROW);                                                                                          \
  }
DEFINE_UKERNEL(1)
DEFINE_UKERNEL(2)
DEFINE_UKERNEL(3)

/* rows x column blocks [b0, b1) of 8 over int16 rows of kgroups * 8 entries. Column blocks
 * outermost: a block's weights (16 * K bytes) stay in L1 while every row passes. */
static void gemm_chunk(const mnq_gemm_packed *P, const rq256 *q, const int16_t *a16, long rows, uint8_t *out, long ldo,
                       int b0, int b1) {
  const long kp = (long)P->kgroups * 8;
  for (int b = b0; b < b1; b++) {
    const int16_t *w = (const int16_t *)P->w + b * kp * 8;
    const int32_t *bias = P->bias + b * 8;
    const int n0 = b * 8, nc = P->n - n0;
    long r = 0;
    for (; r + MR <= rows; r += MR)
      mnq_gemm_i16_3x8c8__avx2(P->kgroups, a16 + r * kp, kp, w, bias, out + r * ldo + n0, ldo, n0, nc, q);
    if (rows - r == 2) mnq_gemm_i16_2x8c8__avx2(P->kgroups, a16 + r * kp, kp, w, bias, out + r * ldo + n0, ldo, n0, nc, q);
    if (rows - r == 1) mnq_gemm_i16_1x8c8__avx2(P->kgroups, a16 + r * kp, kp, w, bias, out + r * ldo + n0, ldo, n0, nc, q);
  }
}

static int16_t *scratch16(const mnq_work *w) { return (int16_t *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63); }

void mnq_pwconv_u8_3x8c8__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const rq256 q = rq256_init(&L->d);
  const int K = P->k, kp = P->kgroups * 8;
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 8, 1, w, &m0, &m1, &b0, &b1);
  int16_t *a16 = scratch16(w);
  for (long c0 = m0; c0 < m1; c0 += MNQ_AVX2_CHUNK) {
    const long rows = m1 - c0 < MNQ_AVX2_CHUNK ? m1 - c0 : MNQ_AVX2_CHUNK;
    for (long r = 0; r < rows; r++) { /* widen; K pads to a multiple of 8 with zeros */
      const uint8_t *x = in + (c0 + r) * K;
      int16_t *dst = a16 + r * kp;
      int k = 0;
      for (; k + 16 <= K; k += 16)
        _mm256_storeu_si256((__m256i *)(dst + k), _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(x + k))));
      for (; k < kp; k++) dst[k] = k < K ? x[k] : 0;
    }
    gemm_chunk(P, &q, a16, rows, out + c0 * P->n, P->n, b0, b1);
  }
}

void mnq_conv_u8_im2col_3x8c8__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                    const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const rq256 q = rq256_init(&L->d);
  const int kp = P->kgroups * 8;
  long m0, m1;
  int b0, b1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 8, 1, w, &m0, &m1, &b0, &b1);
  const long lda = MNQ_IM2COL_AVX2_LDA(P->k);
  int16_t *a16 = scratch16(w);
  uint8_t *a8 = (uint8_t *)a16 + MNQ_AVX2_SCRATCH(P->k);
  for (long c0 = m0; c0 < m1; c0 += MNQ_AVX2_CHUNK) {
    const long rows = m1 - c0 < MNQ_AVX2_CHUNK ? m1 - c0 : MNQ_AVX2_CHUNK;
    mnq_im2col_avx2(&L->d, in, c0, rows, a8, lda);
    /* widen 16 at a time: rows end in >= 32 zeros (K's padding to 8) and a16 has room past kp */
    for (long r = 0; r < rows; r++)
      for (int k = 0; k < kp; k += 16)
        _mm256_storeu_si256((__m256i *)(a16 + r * kp + k),
                            _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a8 + r * lda + k))));
    gemm_chunk(P, &q, a16, rows, out + c0 * P->n, P->n, b0, b1);
  }
}
