/* Depthwise 3x3 uint8, stride 1 and 2, AVX-512 VNNI: 16 channels per zmm and
 * vpdpwssd applying two taps per instruction on pre-widened int16 pairs
 * (layouts: dwconv3x3_pack.h). Borders are zero entries, so the inner loop
 * never branches. */
#include <immintrin.h>
#include <stdint.h>

#include "../internal.h"
#include "dwconv3x3_pack.h"
#include "requant_avx512.h"

enum { B = 16 };

int mnq_dwconv3x3_u8_prepare__avx512vnni(mnq_layer *L) { return mnq_dw3x3_prepare(L, B); }

/* 16 channels of input column col, or the zero point outside the image. */
static inline __m128i load_col(const uint8_t *x, int col, int in_w, int C, __mmask16 m, __m128i zp8) {
  return (col >= 0 && col < in_w) ? _mm_mask_loadu_epi8(zp8, m, x + (long)col * C) : zp8;
}

/* One input row (all channels) -> pair entries (x[col] - zp, x[col+1] - zp). */
static void widen_row(const mnq_layer_desc *d, const uint8_t *x, __m512i *q) {
  const int C = d->out_c, s = d->stride_w, nb = mnq_dw3x3_blocks(d, B), nt = mnq_dw3x3_entries(d);
  const __m128i zp8 = _mm_set1_epi8((char)d->in_zp);
  const __m512i zp16 = _mm512_set1_epi16((short)d->in_zp);
  for (int cb = 0; cb < nb; cb++) {
    const __mmask16 m = (cb == nb - 1 && C % B) ? (__mmask16)((1u << (C % B)) - 1) : (__mmask16)0xFFFF;
    const uint8_t *xc = x + cb * B;
    for (int t = 0; t < nt; t++) {
      const int col = t * s - d->pad_left;
      const __m128i a = load_col(xc, col, d->in_w, C, m, zp8), b = load_col(xc, col + 1, d->in_w, C, m, zp8);
      const __m256i ab = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi8(a, b)),
                                                 _mm_unpackhi_epi8(a, b), 1);
      q[cb * nt + t] = _mm512_sub_epi16(_mm512_cvtepu8_epi16(ab), zp16);
    }
  }
}

static inline void dwconv3x3(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                             const mnq_work *w, const int s) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c, nb = mnq_dw3x3_blocks(d, B), nt = mnq_dw3x3_entries(d), e2 = 2 / s;
  const size_t row_vecs = mnq_dw3x3_row_bytes(d, B) / sizeof(__m512i);
  __m512i *ring = (__m512i *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63);
  long held[3] = {-1, -1, -1}; /* which (image, input row) each ring slot holds */
  const mnq_rq512 rq = mnq_rq512_init(d);
  const __mmask16 tail = C % B ? (__mmask16)((1u << (C % B)) - 1) : (__mmask16)0xFFFF;
  long r0, r1;
  mnq_partition((long)batch * d->out_h, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int oy = (int)(r % d->out_h);
    const __m512i *rows[3];
    int live[3], any = 0;
    for (int ky = 0; ky < 3; ky++) {
      const int iy = oy * s - d->pad_top + ky;
      live[ky] = iy >= 0 && iy < d->in_h;
      if (!live[ky]) continue;
      const long g = n * d->in_h + iy;
      __m512i *slot = ring + (g % 3) * row_vecs;
      if (held[g % 3] != g) {
        widen_row(d, in + g * d->in_w * C, slot);
        held[g % 3] = g;
      }
      rows[ky] = slot;
      any = ky;
    }
    /* a row outside the image gets zero weights, so any held row can stand in */
    for (int ky = 0; ky < 3; ky++)
      if (!live[ky]) rows[ky] = rows[any];
    uint8_t *o = out + r * d->out_w * C;
    for (int cb = 0; cb < nb; cb++) {
      const __m512i *pk = (const __m512i *)L->packed + cb * 7;
      const __m512i z = _mm512_setzero_si512();
      const __m512i w01a = live[0] ? pk[0] : z, w01b = live[1] ? pk[1] : z, w01c = live[2] ? pk[2] : z;
      const __m512i w2a = live[0] ? pk[3] : z, w2b = live[1] ? pk[4] : z, w2c = live[2] ? pk[5] : z;
      const __m512i bias = pk[6];
      const __m512i *qa = rows[0] + cb * nt, *qb = rows[1] + cb * nt, *qc = rows[2] + cb * nt;
      const __mmask16 m = cb == nb - 1 ? tail : (__mmask16)0xFFFF;
      for (int ox = 0; ox < d->out_w; ox++) {
        /* two chains so consecutive vpdpwssd do not wait on each other */
        __m512i acc0 = _mm512_dpwssd_epi32(bias, qa[ox], w01a);
        __m512i acc1 = _mm512_dpwssd_epi32(z, qa[ox + e2], w2a);
        acc0 = _mm512_dpwssd_epi32(acc0, qb[ox], w01b);
        acc1 = _mm512_dpwssd_epi32(acc1, qb[ox + e2], w2b);
        acc0 = _mm512_dpwssd_epi32(acc0, qc[ox], w01c);
        acc1 = _mm512_dpwssd_epi32(acc1, qc[ox + e2], w2c);
        const __m512i y = mnq_rq512_apply(_mm512_add_epi32(acc0, acc1), &rq);
        _mm_mask_storeu_epi8(o + (long)ox * C + cb * B, m, _mm512_cvtepi32_epi8(y));
      }
    }
  }
}

void mnq_dwconv3x3s1_u8__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                    const mnq_work *w) {
  dwconv3x3(L, in, out, batch, w, 1);
}

void mnq_dwconv3x3s2_u8__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                    const mnq_work *w) {
  dwconv3x3(L, in, out, batch, w, 2);
}
