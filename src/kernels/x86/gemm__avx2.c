/* Pointwise conv and im2col conv on AVX2 for CPUs without AVX-512 or AVX-VNNI.
 * vpmaddubsw (u8 x s8) can saturate int16, so activations are widened to int16
 * once per chunk of rows and multiplied by int16 (w - w_zp) with vpmaddwd: every
 * int32 sum stays exact.
 *
 * Microkernels mnq_gemm_i16_{MR}x{NR}c2__avx2: MR <= 6 rows x NR = 16 (or 8, the
 * last block of 8 columns) over K in pairs ("c2", the mnq_gemm_pack_i16 layout):
 * per pair a row's two activations are broadcast and multiplied into 2 (1) weight
 * vectors, 12 accumulators in all. They know rows, K, strides and the prepared
 * requantization only; the drivers widen, tile and split. 6x16 measured fastest on
 * Zen 3 (bench/README.md), once the inner loop stopped spilling: rows are unrolled
 * by macros, not array loops, and built without tree-PRE (both made gcc keep
 * accumulators on the stack; check `gcc -S` for %rsp in the loop after changes). */
#include <immintrin.h>

#include "gemm.h"
#include "im2col_avx2.h"
#include "requant_avx2.h"

#define MR 6

/* The one requantization call site: 8 int32 sums of output channels [n0, n0 + 8) -> min(nc, 8) bytes. */
static inline void store_requantized(uint8_t *c, __m256i acc, const rq256 *q, int n0, int nc) {
  if (q->lanes) { /* per-channel layer: the multipliers and shifts of channels n0.. (n0 % 8 == 0) */
    const rq256 qc = rq256_channels(q, q->lanes + (n0 / 8) * MNQ_RQ_LANES_PER_BLOCK);
    rq256_store8(c, rq256_apply(acc, &qc), nc);
  } else {
    rq256_store8(c, rq256_apply(acc, q), nc);
  }
}

#define ROWS_1(X) X(0)
#define ROWS_2(X) X(0) X(1)
#define ROWS_3(X) X(0) X(1) X(2)
#define ROWS_4(X) X(0) X(1) X(2) X(3)
#define ROWS_5(X) X(0) X(1) X(2) X(3) X(4)
#define ROWS_6(X) X(0) X(1) X(2) X(3) X(4) X(5)

/* NR = 16: two 8-column blocks, w_stride int16 apart */
#define DECLARE_16(i) __m256i acc##i##0 = bias0, acc##i##1 = bias1; const int16_t *a##i = a + i * a_stride;
#define STEP_16(i)                                                                  \
  {                                                                                 \
    const __m256i x = _mm256_set1_epi32(*(const int32_t *)a##i);                     \
    a##i += 2;                                                                      \
    acc##i##0 = _mm256_add_epi32(acc##i##0, _mm256_madd_epi16(x, w0));              \
    acc##i##1 = _mm256_add_epi32(acc##i##1, _mm256_madd_epi16(x, w1));              \
  }
#define STORE_16(i)                                                  \
  store_requantized(c + i * c_stride, acc##i##0, q, n0, nc);          \
  store_requantized(c + i * c_stride + 8, acc##i##1, q, n0 + 8, nc - 8);
/* NR = 8 */
#define DECLARE_8(i) __m256i acc##i##0 = bias0; const int16_t *a##i = a + i * a_stride;
#define STEP_8(i)                                                                   \
  acc##i##0 = _mm256_add_epi32(acc##i##0, _mm256_madd_epi16(_mm256_set1_epi32(*(const int32_t *)a##i), w0)); \
  a##i += 2;
#define STORE_8(i) store_requantized(c + i * c_stride, acc##i##0, q, n0, nc);

/* c[mr][min(nc, NR)] = requantize(bias[0..NR) + a[mr][2 * kgroups] . w) for output channels from n0;
 * a rows a_stride int16 apart, w the packed column block(s) (32-byte aligned), w_stride int16 apart. */
#define DEFINE_UKERNEL(m, nr, SECOND_BLOCK)                                                                       \
  static __attribute__((optimize("no-tree-pre"))) void mnq_gemm_i16_##m##x##nr##c2__avx2(                         \
      long kgroups, const int16_t *a, long a_stride, const int16_t *w, long w_stride, const int32_t *bias,       \
      uint8_t *c, long c_stride, int n0, int nc, const rq256 *q) {                                                \
    const __m256i bias0 = _mm256_load_si256((const __m256i *)bias);                                              \
    SECOND_BLOCK(const __m256i bias1 = _mm256_load_si256((const __m256i *)(bias + 8));)                          \
    ROWS_##m(DECLARE_##nr);                                                                                       \
    for (long g = 0; g < kgroups; g++, w += 16) {                                                                \
      const __m256i w0 = _mm256_load_si256((const __m256i *)w);                                                   \
      SECOND_BLOCK(const __m256i w1 = _mm256_load_si256((const __m256i *)(w + w_stride));)                       \
      ROWS_##m(STEP_##nr);                                                                                        \
    }                                                                                                             \
    (void)w_stride;                                                                                               \
    ROWS_##m(STORE_##nr);                                                                                         \
  }
#define WITH(x) x
#define WITHOUT(x)
#define DEFINE_MR(m) DEFINE_UKERNEL(m, 16, WITH) DEFINE_UKERNEL(m, 8, WITHOUT)
DEFINE_MR(1)
DEFINE_MR(2)
DEFINE_MR(3)
DEFINE_MR(4)
DEFINE_MR(5)
DEFINE_MR(6)

typedef void (*ukernel_fn)(long, const int16_t *, long, const int16_t *, long, const int32_t *, uint8_t *, long, int,
                           int, const rq256 *);
static const ukernel_fn UKERNELS_16[MR + 1] = {NULL, mnq_gemm_i16_1x16c2__avx2, mnq_gemm_i16_2x16c2__avx2,
                                               mnq_gemm_i16_3x16c2__avx2, mnq_gemm_i16_4x16c2__avx2,
                                               mnq_gemm_i16_5x16c2__avx2, mnq_gemm_i16_6x16c2__avx2};
static const ukernel_fn UKERNELS_8[MR + 1] = {NULL, mnq_gemm_i16_1x8c2__avx2, mnq_gemm_i16_2x8c2__avx2,
                                              mnq_gemm_i16_3x8c2__avx2, mnq_gemm_i16_4x8c2__avx2,
                                              mnq_gemm_i16_5x8c2__avx2, mnq_gemm_i16_6x8c2__avx2};

/* rows x column blocks [b0, b1) of 8 over int16 rows of kp (even) entries. Columns outermost:
 * a 16-column tile's weights (32 * K bytes) stay in L1 while every row passes. */
static void gemm_chunk(const mnq_gemm_packed *P, const rq256 *q, const int16_t *a16, int kp, long rows, uint8_t *out,
                       long ldo, int b0, int b1) {
  const long w_stride = (long)P->kgroups * 16;
  for (int b = b0; b < b1; b += 2) {
    const ukernel_fn *uk = b1 - b >= 2 ? UKERNELS_16 : UKERNELS_8;
    const int16_t *w = (const int16_t *)P->w + b * w_stride;
    for (long r = 0; r < rows; r += MR) {
      const int mr = rows - r < MR ? (int)(rows - r) : MR;
      uk[mr](P->kgroups, a16 + r * kp, kp, w, w_stride, P->bias + b * 8, out + r * ldo + b * 8, ldo, b * 8,
             P->n - b * 8, q);
    }
  }
}

static int16_t *scratch16(const mnq_work *w) { return (int16_t *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63); }

void mnq_pwconv_u8_6x16c2__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  rq256 q = rq256_init(&L->d); /* once per layer run, shared by every microkernel call */
  q.lanes = P->rq_lanes;
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

void mnq_conv_u8_im2col_6x16c2__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                     const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  rq256 q = rq256_init(&L->d);
  q.lanes = P->rq_lanes;
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
