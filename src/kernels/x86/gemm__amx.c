/* Pointwise conv and im2col conv on AMX-INT8: tdpbusd over 32x32 output blocks
 * (2 A tiles of 16 pixels x up to 64 k, 2 B tiles of up to 64 k x 16 channels,
 * 4 int32 C tiles), then the same row-sum correction and exact requantization
 * as the AVX-512 VNNI kernel. K below 64 uses narrower tiles instead of zero
 * padding (first pointwise K=32, the RGB stem's im2col K=27->28). */
#include <immintrin.h>

#include "gemm.h"
#include "im2col_avx512.h"
#include "requant_avx512.h"

typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

/* One k-step is 64 bytes, or the whole (4-aligned) K when it is shorter. */
static void load_tiles(const mnq_gemm_packed *P) {
  const int kstep = MNQ_AMX_KP(P->k) < 64 ? MNQ_AMX_KP(P->k) : 64;
  tile_config cfg = {.palette = 1};
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  cfg.colsb[4] = cfg.colsb[5] = (uint16_t)kstep; /* A: 16 rows x kstep bytes */
  cfg.rows[6] = cfg.rows[7] = (uint8_t)(kstep / 4); /* B: kstep/4 rows of 16 channels x 4 k */
  /* GCC 12 does not treat ldtilecfg as reading all 64 bytes and drops the stores
   * above at -O2 (the CPU then faults on garbage); make them visible first. */
  __asm__ volatile("" : : "m"(cfg) : "memory");
  _tile_loadconfig(&cfg);
}

/* Rows [0, rows) of A (lda apart; every 32-row block readable in full, rows past
 * `rows` may hold anything) times column pairs [p0, p1) -> out. rs holds each
 * row's sum of its K bytes. */
static void amx_rows(const mnq_gemm_packed *P, const mnq_rq512 *q, const uint8_t *a, long lda, long rows,
                     const int32_t *rs, uint8_t *out, long ldo, int p0, int p1, int32_t *c) {
  const int N = P->n, kp = P->kgroups * 4, kstep = kp < 64 ? kp : 64, steps = kp / kstep;
  const long wstride = (long)P->kgroups * 64;
  for (long r = 0; r < rows; r += 32) {
    const int nr = rows - r < 32 ? (int)(rows - r) : 32;
    const uint8_t *ar = a + r * lda;
    for (int p = p0; p < p1; p++) {
      const int8_t *b0 = P->w + 2 * p * wstride, *b1 = b0 + wstride;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int t = 0; t < steps; t++) {
        _tile_loadd(4, ar + t * kstep, lda);
        _tile_loadd(5, ar + 16 * lda + t * kstep, lda);
        _tile_loadd(6, b0 + t * kstep * 16, 64);
        _tile_loadd(7, b1 + t * kstep * 16, 64);
        _tile_dpbusd(0, 4, 6);
        _tile_dpbusd(1, 4, 7);
        _tile_dpbusd(2, 5, 6);
        _tile_dpbusd(3, 5, 7);
      }
      _tile_stored(0, c, 128);
      _tile_stored(1, c + 16, 128);
      _tile_stored(2, c + 16 * 32, 128);
      _tile_stored(3, c + 16 * 32 + 16, 128);
      const int col = 32 * p, width = N - col;
      const __mmask64 mask = width >= 32 ? 0xFFFFFFFFull : (1ull << width) - 1;
      const __m512i bias0 = _mm512_load_si512(P->bias + col), bias1 = _mm512_load_si512(P->bias + col + 16);
      for (int i = 0; i < nr; i++) {
        const __m512i corr = _mm512_set1_epi32(rs[r + i] * P->zw_corr);
        const __m512i y0 = mnq_rq512_scale(_mm512_add_epi32(_mm512_add_epi32(_mm512_load_si512(c + i * 32), bias0), corr), q);
        const __m512i y1 = mnq_rq512_scale(_mm512_add_epi32(_mm512_add_epi32(_mm512_load_si512(c + i * 32 + 16), bias1), corr), q);
        mnq_rq512_store64(out + (r + i) * ldo + col, mask, y0, y1, y0, y1, q);
      }
    }
  }
}

void mnq_pwconv_u8_32x32__amx(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const mnq_rq512 q = mnq_rq512_init(&L->d);
  const int K = P->k, N = P->n, kp = P->kgroups * 4;
  long m0, m1;
  int p0, p1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, N, 32, 32, w, &m0, &m1, &p0, &p1);
  if (m1 - m0 < MNQ_AMX_MIN_ROWS) { /* logits at batch 1: a GEMV, weight-streaming bound */
    const int b1 = 2 * p1 < (N + 15) / 16 ? 2 * p1 : (N + 15) / 16;
    if (m1 > m0 && b1 > 2 * p0) mnq_gemm_u8_6x64__avx512vnni(P, &L->d, in + m0 * K, K, m1 - m0, out + m0 * N, N, 2 * p0, b1);
    return;
  }
  uint8_t *base = (uint8_t *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63);
  int32_t *c = (int32_t *)base;    /* [32][32] */
  uint8_t *abuf = base + 32 * 32 * 4; /* [32][kp]: tail rows or K not a multiple of the k-step */
  load_tiles(P);
  int32_t rs[32];
  for (long r = m0; r < m1; r += 32) {
    const int rows = m1 - r < 32 ? (int)(m1 - r) : 32;
    const uint8_t *a = in + r * K;
    long lda = K;
    if (rows < 32 || K != kp) { /* tiles must not read past the rows: copy, zero-padded */
      for (int i = 0; i < 32; i++) {
        if (i < rows) memcpy(abuf + (long)i * kp, in + (r + i) * K, (size_t)K);
        memset(abuf + (long)i * kp + (i < rows ? K : 0), 0, (size_t)(i < rows ? kp - K : kp));
      }
      a = abuf, lda = kp;
    }
    for (int i = 0; i < rows; i++) rs[i] = mnq_rowsum512(in + (r + i) * K, K);
    amx_rows(P, &q, a, lda, rows, rs, out + r * N, N, p0, p1, c);
  }
  _tile_release();
}

void mnq_conv_u8_im2col_32x32__amx(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                   const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const mnq_rq512 q = mnq_rq512_init(&L->d);
  const int kp = P->kgroups * 4;
  long m0, m1;
  int p0, p1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, P->n, 32, 32, w, &m0, &m1, &p0, &p1);
  uint8_t *base = (uint8_t *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63);
  int32_t *c = (int32_t *)base;
  uint8_t *abuf = base + 32 * 32 * 4; /* [MNQ_IM2COL_ROWS][kp, or 32 when kp <= 32] */
  load_tiles(P);
  int32_t rs[MNQ_IM2COL_ROWS];
  for (long r = m0; r < m1; r += MNQ_IM2COL_ROWS) {
    const long rows = m1 - r < MNQ_IM2COL_ROWS ? m1 - r : MNQ_IM2COL_ROWS;
    if (kp <= 32) {
      mnq_im2col512_k32(&L->d, in, r, rows, abuf, rs);
      amx_rows(P, &q, abuf, 32, rows, rs, out + r * P->n, P->n, p0, p1, c);
    } else {
      mnq_im2col512(&L->d, in, r, rows, abuf, kp);
      for (long i = 0; i < rows; i++) rs[i] = mnq_rowsum512(abuf + i * kp, kp);
      amx_rows(P, &q, abuf, kp, rows, rs, out + r * P->n, P->n, p0, p1, c);
    }
  }
  _tile_release();
}
