/* im2col into uint8 rows for the AVX2-level conv kernels (AVX2, AVX-VNNI).
 * Included only by files compiled with AVX2 flags. */
#ifndef MNQ_X86_IM2COL_AVX2_H
#define MNQ_X86_IM2COL_AVX2_H

#ifndef __AVX2__
#error "im2col_avx2.h needs AVX2 flags (-mavx2): include it only from *__avx2.c / *__avxvnni.c"
#endif

#include <immintrin.h>

#include "../internal.h"
#include "im2col_walk.h"

/* n bytes, any n, as two overlapping loads/stores of the widest fitting size:
 * the runs are a few bytes long (9 for the RGB stem) and memcpy calls dominated.
 * Reads and writes only [0, n). */
static inline void mnq_copy_small(uint8_t *dst, const uint8_t *src, long n) {
  if (n >= 32) {
    long i = 0;
    for (; i + 32 <= n; i += 32) _mm256_storeu_si256((__m256i *)(dst + i), _mm256_loadu_si256((const __m256i *)(src + i)));
    if (i < n)
      _mm256_storeu_si256((__m256i *)(dst + n - 32), _mm256_loadu_si256((const __m256i *)(src + n - 32)));
  } else if (n >= 16) {
    const __m128i a = _mm_loadu_si128((const __m128i *)src), b = _mm_loadu_si128((const __m128i *)(src + n - 16));
    _mm_storeu_si128((__m128i *)dst, a);
    _mm_storeu_si128((__m128i *)(dst + n - 16), b);
  } else if (n >= 8) {
    uint64_t a, b;
    memcpy(&a, src, 8), memcpy(&b, src + n - 8, 8);
    memcpy(dst, &a, 8), memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, src, 4), memcpy(&b, src + n - 4, 4);
    memcpy(dst, &a, 4), memcpy(dst + n - 4, &b, 4);
  } else {
    for (long i = 0; i < n; i++) dst[i] = src[i];
  }
}

/* n bytes of v's byte, written as whole 32-byte stores: callers leave at least
 * 31 bytes of room past dst + n (the row padding, later runs overwrite it). */
static inline void mnq_fill_over(uint8_t *dst, long n, __m256i v) {
  for (long i = 0; i < n; i += 32) _mm256_storeu_si256((__m256i *)(dst + i), v);
}

static inline void mnq_fill_byte_over(uint8_t *dst, long n, uint8_t v) { mnq_fill_over(dst, n, _mm256_set1_epi8((char)v)); }

/* mnq_im2col_rows with whole-vector moves: each row is the K taps, then 32 zeros that clear
 * the fills' overshoot (lda = MNQ_IM2COL_AVX2_LDA(K), so fills never leave the row). */
static inline void mnq_im2col_avx2(const mnq_layer_desc *d, const uint8_t *in, long r0, long rows, uint8_t *buf,
                                   long lda) {
  mnq_im2col_rows(d, in, r0, rows, buf, lda, 32, mnq_fill_byte_over, mnq_copy_small);
}

#endif
