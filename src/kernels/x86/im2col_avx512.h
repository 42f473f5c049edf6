/* im2col on AVX-512 for the conv-as-GEMM kernels (VNNI and AMX).
 * Included only by files compiled with AVX-512 flags. */
#ifndef MNQ_X86_IM2COL_AVX512_H
#define MNQ_X86_IM2COL_AVX512_H

#include <immintrin.h>

#include "../internal.h"

static inline __mmask64 first_bytes(long n) { return n >= 64 ? ~0ull : (1ull << n) - 1; }

static inline void fill512(uint8_t *dst, long n, __m512i v) {
  for (long i = 0; i < n; i += 64) _mm512_mask_storeu_epi8(dst + i, first_bytes(n - i), v);
}

static inline void copy512(uint8_t *dst, const uint8_t *src, long n) {
  for (long i = 0; i < n; i += 64) {
    const __mmask64 m = first_bytes(n - i);
    _mm512_mask_storeu_epi8(dst + i, m, _mm512_maskz_loadu_epi8(m, src + i));
  }
}

/* im2col for output pixels [r0, r0 + rows) (batch folded in): each row holds
 * the k_h*k_w*in_c taps in weight order, then zeros up to lda. Taps outside the
 * image get in_zp, adding in_zp * (w - w_zp), which the conv's folded bias
 * (taken over all taps) cancels exactly. Masked vector moves, not memcpy: the
 * runs are a few bytes long (9 for the RGB stem) and libc calls dominated. */
static inline void mnq_im2col512(const mnq_layer_desc *d, const uint8_t *in, long r0, long rows, uint8_t *buf, int lda) {
  const int C = d->in_c, kwc = d->k_w * C;
  const __m512i zp = _mm512_set1_epi8((char)d->in_zp);
  /* walk (image, oy, ox) incrementally: a division per row cost more than the copies */
  long img = r0 / ((long)d->out_h * d->out_w);
  int oy = (int)(r0 / d->out_w % d->out_h), ox = (int)(r0 % d->out_w) - 1;
  for (long r = r0; r < r0 + rows; r++) {
    if (++ox == d->out_w) {
      ox = 0;
      if (++oy == d->out_h) oy = 0, img++;
    }
    uint8_t *row = buf + (r - r0) * lda;
    const int ix0 = ox * d->stride_w - d->pad_left;
    /* in-image taps of one kernel row are contiguous in NHWC */
    const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = d->in_w - ix0 < d->k_w ? d->in_w - ix0 : d->k_w;
    for (int ky = 0; ky < d->k_h; ky++) {
      uint8_t *dst = row + ky * kwc;
      const int iy = oy * d->stride_h - d->pad_top + ky;
      if (iy < 0 || iy >= d->in_h || kx0 > 0 || kx1 < d->k_w) fill512(dst, kwc, zp);
      if (iy >= 0 && iy < d->in_h)
        copy512(dst + kx0 * C, in + ((img * d->in_h + iy) * d->in_w + ix0 + kx0) * C, (long)(kx1 - kx0) * C);
    }
    fill512(row + d->k_h * kwc, lda - d->k_h * kwc, _mm512_setzero_si512());
  }
}

/* im2col for K = k_h*k_w*in_c <= 32 (the RGB stem: 27): each row is built in one
 * ymm (zero point, then one merging masked load per kernel row whose base is
 * offset so its bytes land in place; masked-off bytes are never touched), stored
 * with one plain 32-byte store (lda = 32), and summed while still in a register:
 * masked stores then reloads of the same row stalled on store forwarding. */
static inline void mnq_im2col512_k32(const mnq_layer_desc *d, const uint8_t *in, long r0, long rows, uint8_t *buf,
                                     int32_t *rowsum) {
  const int C = d->in_c, kwc = d->k_w * C, K = d->k_h * kwc;
  const __m256i zp = _mm256_maskz_set1_epi8((__mmask32)((1ull << K) - 1), (char)d->in_zp);
  long img = r0 / ((long)d->out_h * d->out_w);
  int oy = (int)(r0 / d->out_w % d->out_h), ox = (int)(r0 % d->out_w) - 1;
  for (long r = 0; r < rows; r++) {
    if (++ox == d->out_w) {
      ox = 0;
      if (++oy == d->out_h) oy = 0, img++;
    }
    const int ix0 = ox * d->stride_w - d->pad_left;
    const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = d->in_w - ix0 < d->k_w ? d->in_w - ix0 : d->k_w;
    const uint64_t run = ((1ull << ((kx1 - kx0) * C)) - 1) << (kx0 * C);
    __m256i v = zp;
    for (int ky = 0; ky < d->k_h; ky++) {
      const int iy = oy * d->stride_h - d->pad_top + ky;
      if (iy < 0 || iy >= d->in_h) continue;
      /* byte j of the row <- address base + j */
      const uintptr_t base = (uintptr_t)(in + ((img * d->in_h + iy) * d->in_w + ix0) * C) - (uintptr_t)(ky * kwc);
      v = _mm256_mask_loadu_epi8(v, (__mmask32)(run << (ky * kwc)), (const void *)base);
    }
    _mm256_store_si256((__m256i *)(buf + r * 32), v);
    const __m256i s4 = _mm256_sad_epu8(v, _mm256_setzero_si256());
    const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
    rowsum[r] = _mm_cvtsi128_si32(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2)));
  }
}

#endif
