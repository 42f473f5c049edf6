/* Pointwise conv on AMX-INT8: tdpbusd over 32x32 output blocks (2 A tiles of
 * 16 pixels x 64 k, 2 B tiles of 64 k x 16 channels, 4 int32 C tiles), then the
 * same row-sum correction and exact requantization as the AVX-512 VNNI kernel. */
#include <immintrin.h>

#include "gemm.h"
#include "requant_avx512.h"

typedef struct {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
} tile_config;

void mnq_pwconv_u8_32x32__amx(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  const mnq_gemm_packed *P = L->packed;
  const mnq_rq512 q = mnq_rq512_init(&L->d);
  const int K = P->k, N = P->n, kp = P->kgroups * 4, steps = kp / 64;
  const long wstride = (long)P->kgroups * 64;
  long m0, m1;
  int p0, p1;
  mnq_gemm_split((long)batch * L->d.out_h * L->d.out_w, N, 32, w, &m0, &m1, &p0, &p1);
  uint8_t *base = (uint8_t *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63);
  int32_t *c = (int32_t *)base;    /* [32][32] */
  uint8_t *abuf = base + 32 * 32 * 4; /* [32][kp]: tail rows or K not a multiple of 64 */
  tile_config cfg = {.palette = 1};
  for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
  _tile_loadconfig(&cfg);
  int32_t rsc[32];
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
    for (int i = 0; i < rows; i++) rsc[i] = mnq_rowsum512(in + (r + i) * K, K) * P->zw_corr;
    for (int p = p0; p < p1; p++) {
      const int8_t *b0 = P->w + 2 * p * wstride, *b1 = b0 + wstride;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int t = 0; t < steps; t++) {
        _tile_loadd(4, a + t * 64, lda);
        _tile_loadd(5, a + 16 * lda + t * 64, lda);
        _tile_loadd(6, b0 + t * 1024, 64);
        _tile_loadd(7, b1 + t * 1024, 64);
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
      for (int i = 0; i < rows; i++) {
        const __m512i rs = _mm512_set1_epi32(rsc[i]);
        const __m512i y0 = mnq_rq512_scale(_mm512_add_epi32(_mm512_add_epi32(_mm512_load_si512(c + i * 32), bias0), rs), &q);
        const __m512i y1 = mnq_rq512_scale(_mm512_add_epi32(_mm512_add_epi32(_mm512_load_si512(c + i * 32 + 16), bias1), rs), &q);
        mnq_rq512_store64(out + (r + i) * N + col, mask, y0, y1, y0, y1, &q);
      }
    }
  }
  _tile_release();
}
