/* Depthwise 3x3 uint8, stride 1 and 2, AVX2: 8 channels per ymm and vpmaddwd
 * applying two taps per instruction on pre-widened int16 pairs (layouts:
 * dwconv3x3_pack.h). Borders are zero entries, so the inner loop never
 * branches; only the channel tail goes through a small bounce buffer. */
#include <immintrin.h>
#include <stdint.h>

#include "../internal.h"
#include "dwconv3x3_pack.h"
#include "requant_avx2.h"

enum { B = 8 };

int mnq_dwconv3x3_u8_prepare__avx2(mnq_layer *L) { return mnq_dw3x3_prepare(L, B); }

/* n (<= 8) channels of input column col, or the zero point outside the image /
 * past the channel count; the tail never reads beyond the tensor. */
static inline __m128i load_col(const uint8_t *x, int col, int in_w, int C, int n, uint8_t zp) {
  if (col < 0 || col >= in_w) return _mm_set1_epi8((char)zp);
  if (n == B) return _mm_loadl_epi64((const __m128i *)(x + (long)col * C));
  uint8_t buf[B];
  memset(buf, zp, B);
  memcpy(buf, x + (long)col * C, (size_t)n);
  return _mm_loadl_epi64((const __m128i *)buf);
}

/* One input row, channel blocks [cb0, cb1) -> pair entries (x[col] - zp, x[col+1] - zp). */
static void widen_row(const mnq_layer_desc *d, const uint8_t *x, __m256i *q, int cb0, int cb1) {
  const int C = d->out_c, s = d->stride_w, nt = mnq_dw3x3_entries(d);
  const __m256i zp16 = _mm256_set1_epi16((short)d->in_zp);
  for (int cb = cb0; cb < cb1; cb++) {
    const int n = C - cb * B < B ? C - cb * B : B;
    const uint8_t *xc = x + cb * B;
    for (int t = 0; t < nt; t++) {
      const int col = t * s - d->pad_left;
      const __m128i a = load_col(xc, col, d->in_w, C, n, (uint8_t)d->in_zp);
      const __m128i b = load_col(xc, col + 1, d->in_w, C, n, (uint8_t)d->in_zp);
      q[cb * nt + t] = _mm256_sub_epi16(_mm256_cvtepu8_epi16(_mm_unpacklo_epi8(a, b)), zp16);
    }
  }
}

/* mnq_requantize in ~11 ops (see mnq_dw3x3_rq_fits); clamped int32 lanes */
typedef struct {
  __m256i m, nudge, right, left1, lo, hi;
  int left, sign_fix;
} rq;

static inline rq rq_init(const mnq_layer_desc *d) {
  const mnq_dw3x3_rq_plan p = mnq_dw3x3_rq_plan_of(d);
  const rq q = {.m = _mm256_set1_epi64x(p.multiplier), .nudge = _mm256_set1_epi64x(p.nudge),
                .right = _mm256_set1_epi32(p.right), .left1 = _mm256_set1_epi32(p.left + 1),
                .lo = _mm256_set1_epi32(d->act_min), .hi = _mm256_set1_epi32(d->act_max),
                .left = p.left, .sign_fix = p.sign_fix};
  return q;
}

static inline __m256i rq_apply(__m256i acc, const rq *q) {
  const __m256i a2 = q->left ? _mm256_sllv_epi32(acc, q->left1) : _mm256_add_epi32(acc, acc);
  const __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(a2, q->m), q->nudge);
  const __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_shuffle_epi32(a2, 0xF5), q->m), q->nudge);
  __m256i t = _mm256_blend_epi32(_mm256_srli_epi64(pe, 32), po, 0xAA);
  if (q->sign_fix) t = _mm256_add_epi32(t, _mm256_srai_epi32(a2, 31));
  return _mm256_min_epi32(_mm256_max_epi32(_mm256_srav_epi32(t, q->right), q->lo), q->hi);
}

static inline __attribute__((always_inline)) void dwconv3x3(const mnq_layer *L, const uint8_t *in, uint8_t *out,
                                                            int batch, const mnq_work *w, const int s,
                                                            const int per_channel) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c, nb = mnq_dw3x3_blocks(d, B), nt = mnq_dw3x3_entries(d), e2 = 2 / s;
  const size_t row_vecs = mnq_dw3x3_row_bytes(d, B) / sizeof(__m256i);
  __m256i *ring = (__m256i *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63);
  long held[3] = {-1, -1, -1}; /* which (image, input row) each ring slot holds */
  const rq q = rq_init(d);
  const rq256 q_base = rq256_init(d); /* per-channel layers: zero point and clamp */
  long r0, r1, cb0, cb1;
  mnq_dw3x3_split((long)batch * d->out_h, nb, w, &r0, &r1, &cb0, &cb1);
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int oy = (int)(r % d->out_h);
    const __m256i *rows[3] = {NULL, NULL, NULL}; /* validation guarantees a live row */
    int live[3], any = 0;
    for (int ky = 0; ky < 3; ky++) {
      const int iy = oy * s - d->pad_top + ky;
      live[ky] = iy >= 0 && iy < d->in_h;
      if (!live[ky]) continue;
      const long g = n * d->in_h + iy;
      __m256i *slot = ring + (g % 3) * row_vecs;
      if (held[g % 3] != g) {
        widen_row(d, in + g * d->in_w * C, slot, (int)cb0, (int)cb1);
        held[g % 3] = g;
      }
      rows[ky] = slot;
      any = ky;
    }
    /* a row outside the image gets zero weights, so any held row can stand in */
    for (int ky = 0; ky < 3; ky++)
      if (!live[ky]) rows[ky] = rows[any];
    uint8_t *o = out + r * d->out_w * C;
    for (int cb = (int)cb0; cb < cb1; cb++) {
      const __m256i *pk = (const __m256i *)L->packed + cb * (per_channel ? 11 : 7);
      const rq256 q_channels = per_channel ? rq256_channels(&q_base, (const int32_t *)(pk + 7)) : q_base;
      const __m256i z = _mm256_setzero_si256();
      const __m256i w01a = live[0] ? pk[0] : z, w01b = live[1] ? pk[1] : z, w01c = live[2] ? pk[2] : z;
      const __m256i w2a = live[0] ? pk[3] : z, w2b = live[1] ? pk[4] : z, w2c = live[2] ? pk[5] : z;
      const __m256i bias = pk[6];
      const __m256i *qa = rows[0] + cb * nt, *qb = rows[1] + cb * nt, *qc = rows[2] + cb * nt;
      const int nc = C - cb * B < B ? C - cb * B : B;
      for (int ox = 0; ox < d->out_w; ox++) {
        __m256i acc0 = _mm256_add_epi32(bias, _mm256_madd_epi16(qa[ox], w01a));
        __m256i acc1 = _mm256_madd_epi16(qa[ox + e2], w2a);
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(qb[ox], w01b));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(qb[ox + e2], w2b));
        acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(qc[ox], w01c));
        acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(qc[ox + e2], w2c));
        const __m256i sum = _mm256_add_epi32(acc0, acc1);
        const __m256i y = per_channel ? rq256_apply(sum, &q_channels) : rq_apply(sum, &q);
        /* values are already in [0, 255]: the saturating packs only narrow */
        const __m128i y16 = _mm_packs_epi32(_mm256_castsi256_si128(y), _mm256_extracti128_si256(y, 1));
        const __m128i y8 = _mm_packus_epi16(y16, y16);
        uint8_t *dst = o + (long)ox * C + cb * B;
        if (nc == B) {
          _mm_storel_epi64((__m128i *)dst, y8);
        } else {
          uint8_t buf[16];
          _mm_storeu_si128((__m128i *)buf, y8);
          memcpy(dst, buf, (size_t)nc);
        }
      }
    }
  }
}

void mnq_dwconv3x3s1_u8__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                              const mnq_work *w) {
  if (L->d.channel_multipliers) dwconv3x3(L, in, out, batch, w, 1, 1);
  else dwconv3x3(L, in, out, batch, w, 1, 0);
}

void mnq_dwconv3x3s2_u8__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                              const mnq_work *w) {
  if (L->d.channel_multipliers) dwconv3x3(L, in, out, batch, w, 2, 1);
  else dwconv3x3(L, in, out, batch, w, 2, 0);
}
