/* im2col on AVX-512 for the conv-as-GEMM kernels (VNNI and AMX).
 * Included only by files compiled with AVX-512 flags. */
#ifndef MNQ_X86_IM2COL_AVX512_H
#define MNQ_X86_IM2COL_AVX512_H

#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__)
#error "im2col_avx512.h needs AVX-512 F/BW/VL flags: include it only from *__avx512vnni.c / *__amx.c"
#endif

#include <immintrin.h>

#include "../internal.h"
#include "im2col_walk.h"

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

static inline void fill512_byte(uint8_t *dst, long n, uint8_t v) { fill512(dst, n, _mm512_set1_epi8((char)v)); }

/* mnq_im2col_rows with masked vector moves, not memcpy (the runs are a few bytes long,
 * 9 for the RGB stem, and libc calls dominated): each row is the K taps, then zeros up to lda. */
static inline void mnq_im2col512(const mnq_layer_desc *d, const uint8_t *in, long r0, long rows, uint8_t *buf, int lda) {
  const long K = (long)d->k_h * d->k_w * d->in_c;
  mnq_im2col_rows(d, in, r0, rows, buf, lda, lda - K, fill512_byte, copy512);
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
  mnq_im2col_pos p = mnq_im2col_before(d, r0);
  for (long r = 0; r < rows; r++) {
    mnq_im2col_next(d, &p);
    const uint64_t run = ((1ull << ((p.kx1 - p.kx0) * C)) - 1) << (p.kx0 * C);
    __m256i v = zp;
    for (int ky = 0; ky < d->k_h; ky++) {
      const int iy = p.oy * d->stride_h - d->pad_top + ky;
      if (iy < 0 || iy >= d->in_h) continue;
      /* byte j of the row <- address base + j. The base may lie before `in` (ix0 < 0,
       * ky > 0); only the masked-in bytes, inside the image, are read. Integer arithmetic:
       * forming that pointer with `in + offset` would be undefined behaviour. */
      const uintptr_t base = (uintptr_t)in + (uintptr_t)(mnq_im2col_offset(d, &p, iy, p.ix0) - (long)ky * kwc);
      v = _mm256_mask_loadu_epi8(v, (__mmask32)(run << (ky * kwc)), (const void *)base);
    }
    _mm256_store_si256((__m256i *)(buf + r * 32), v);
    const __m256i s4 = _mm256_sad_epu8(v, _mm256_setzero_si256());
    const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
    rowsum[r] = _mm_cvtsi128_si32(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2)));
  }
}

#endif
