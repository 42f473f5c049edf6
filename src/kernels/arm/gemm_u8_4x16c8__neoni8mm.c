/* uint8 GEMM microkernel, 4 rows x 16 channels, K in blocks of 8 (aarch64 with the
 * 8-bit matrix multiply extension, I8MM: Cortex-A710/X2 and later, Neoverse N2/V1/V2,
 * Graviton 3/4), and the pointwise / conv layers built on it.
 * UMMLA multiplies a 2 x 8 block of rows by an 8 x 2 block of weights into a 2 x 2
 * block of accumulators: 32 MACs an instruction, twice UDOT's. The rows are paired
 * (rows 0-1, 2-3) by interleaving 8-byte halves (ZIP1/ZIP2 of 64-bit lanes), the
 * weights are packed in channel pairs; the 2 x 2 accumulator blocks are put back in
 * row order (ZIP1/ZIP2 again) before the requantization. Raw uint8 weights, the
 * `-zw * sum(row)` term in the accumulators' start value, as in the neondot kernel.
 * Panel order: per k-block of 8, channel pair p's 16 bytes at p * 16 (channel 2p's
 * 8 k, then channel 2p+1's): 128 bytes a block. */
#include <arm_neon.h>

#include "gemm_driver.h"

enum { MR = 4, NR = 16, KR = 16 };

static size_t panel_offset(int j, int k) { return (size_t)(k / 8) * NR * 8 + (size_t)(j / 2) * 16 + (j % 2) * 8 + k % 8; }

/* Accumulators %[c<p><q>]: row pair p (rows 2p, 2p+1) x channel pair q (channels 2q,
 * 2q+1), as [r0c0, r0c1, r1c0, r1c1]. Per 16 k: the four rows in v16..v19, paired
 * into v20..v23 (v20/v21: rows 0-1, k 0-7 / 8-15; v22/v23: rows 2-3), one k-block's
 * eight channel pairs in v24..v31. */
#define MMLA_(p, q, a, w) "ummla %[c" #p #q "].4s, " a ".16b, " w ".16b\n"
#define MMLA_BLOCK(a0, a1)                                                                                 \
  MMLA_(0, 0, a0, "v24") MMLA_(0, 1, a0, "v25") MMLA_(0, 2, a0, "v26") MMLA_(0, 3, a0, "v27")              \
  MMLA_(0, 4, a0, "v28") MMLA_(0, 5, a0, "v29") MMLA_(0, 6, a0, "v30") MMLA_(0, 7, a0, "v31")              \
  MMLA_(1, 0, a1, "v24") MMLA_(1, 1, a1, "v25") MMLA_(1, 2, a1, "v26") MMLA_(1, 3, a1, "v27")              \
  MMLA_(1, 4, a1, "v28") MMLA_(1, 5, a1, "v29") MMLA_(1, 6, a1, "v30") MMLA_(1, 7, a1, "v31")
#define LOAD_BLOCK "ld1 {v24.16b - v27.16b}, [%[w]], #64\n ld1 {v28.16b - v31.16b}, [%[w]], #64\n"
/* start: bias of channel pair q, [b(2q), b(2q+1)] twice, plus row pair p's offsets,
 * [ro(2p), ro(2p), ro(2p+1), ro(2p+1)] */
#define INIT_(p, q, b, r) "add %[c" #p #q "].4s, " b ".4s, " r ".4s\n"
#define INIT_PAIR(q, b) INIT_(0, q, b, "v21") INIT_(1, q, b, "v22")

/* One panel (16 channels) against rows a[0..4): accumulate, requantize, store the first
 * mr rows and nc channels. *wp walks on to the next panel. */
static inline __attribute__((always_inline)) void panel(int mr, int nc, int Kp, const uint8_t *const *a,
                                                       const uint8_t **wp, const int32_t *bias,
                                                       const int32_t *row_offset, const mnq_arm_rq *rq, int n0,
                                                       uint8_t *out, long out_stride, const int form) {
  int32x4_t c00, c01, c02, c03, c04, c05, c06, c07, c10, c11, c12, c13, c14, c15, c16, c17;
  const uint8_t *x0 = a[0], *x1 = a[1], *x2 = a[2], *x3 = a[3], *w = *wp;
  /* Per 16 k: 4 row loads, 4 ZIPs, 4 block loads, 32 UMMLAs and 2 loop instructions
   * (1024 MACs in 46 instructions). */
  __asm__ volatile(
      "ld1 {v16.4s - v19.4s}, [%[bias]]\n"
      "ld1 {v20.4s}, [%[roff]]\n"
      "zip1 v21.4s, v20.4s, v20.4s\n zip2 v22.4s, v20.4s, v20.4s\n"
      "zip1 v24.2d, v16.2d, v16.2d\n zip2 v25.2d, v16.2d, v16.2d\n"
      "zip1 v26.2d, v17.2d, v17.2d\n zip2 v27.2d, v17.2d, v17.2d\n"
      "zip1 v28.2d, v18.2d, v18.2d\n zip2 v29.2d, v18.2d, v18.2d\n"
      "zip1 v30.2d, v19.2d, v19.2d\n zip2 v31.2d, v19.2d, v19.2d\n"
      INIT_PAIR(0, "v24") INIT_PAIR(1, "v25") INIT_PAIR(2, "v26") INIT_PAIR(3, "v27")
      INIT_PAIR(4, "v28") INIT_PAIR(5, "v29") INIT_PAIR(6, "v30") INIT_PAIR(7, "v31")
      "mov w16, %w[steps]\n"
      "1:\n"
      "ldr q16, [%[x0]], #16\n ldr q17, [%[x1]], #16\n ldr q18, [%[x2]], #16\n ldr q19, [%[x3]], #16\n"
      "zip1 v20.2d, v16.2d, v17.2d\n zip1 v22.2d, v18.2d, v19.2d\n"
      "zip2 v21.2d, v16.2d, v17.2d\n zip2 v23.2d, v18.2d, v19.2d\n"
      LOAD_BLOCK MMLA_BLOCK("v20", "v22")
      LOAD_BLOCK MMLA_BLOCK("v21", "v23")
      "subs w16, w16, #1\n"
      "b.ne 1b\n"
      : [c00] "=&w"(c00), [c01] "=&w"(c01), [c02] "=&w"(c02), [c03] "=&w"(c03), [c04] "=&w"(c04),
        [c05] "=&w"(c05), [c06] "=&w"(c06), [c07] "=&w"(c07), [c10] "=&w"(c10), [c11] "=&w"(c11),
        [c12] "=&w"(c12), [c13] "=&w"(c13), [c14] "=&w"(c14), [c15] "=&w"(c15), [c16] "=&w"(c16),
        [c17] "=&w"(c17), [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [x3] "+r"(x3), [w] "+r"(w)
      : [steps] "r"(Kp / 16), [bias] "r"(bias), [roff] "r"(row_offset)
      : "cc", "memory", "x16", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27",
        "v28", "v29", "v30", "v31");
  *wp = w;
  /* back to row order: rows 2p and 2p+1, channels 4v..4v+3, from pairs 2v and 2v+1 */
#define ROW_LO(x, y) vreinterpretq_s32_s64(vzip1q_s64(vreinterpretq_s64_s32(x), vreinterpretq_s64_s32(y)))
#define ROW_HI(x, y) vreinterpretq_s32_s64(vzip2q_s64(vreinterpretq_s64_s32(x), vreinterpretq_s64_s32(y)))
  const mnq_arm_rq16 q = mnq_arm_rq16_load(rq, n0, form);
  const uint8x16_t y0 = mnq_arm_rq16_apply(&q, ROW_LO(c00, c01), ROW_LO(c02, c03), ROW_LO(c04, c05), ROW_LO(c06, c07), form);
  const uint8x16_t y1 = mnq_arm_rq16_apply(&q, ROW_HI(c00, c01), ROW_HI(c02, c03), ROW_HI(c04, c05), ROW_HI(c06, c07), form);
  const uint8x16_t y2 = mnq_arm_rq16_apply(&q, ROW_LO(c10, c11), ROW_LO(c12, c13), ROW_LO(c14, c15), ROW_LO(c16, c17), form);
  const uint8x16_t y3 = mnq_arm_rq16_apply(&q, ROW_HI(c10, c11), ROW_HI(c12, c13), ROW_HI(c14, c15), ROW_HI(c16, c17), form);
#undef ROW_LO
#undef ROW_HI
  mnq_arm_store_rows_x16(out, out_stride, mr, nc, y0, y1, y2, y3);
}

static inline __attribute__((always_inline)) void panels(int mr, int N, int Kp, const uint8_t *const *a,
                                                        const void *weights, const int32_t *bias,
                                                        const int32_t *row_offset, const mnq_arm_rq *rq, uint8_t *out,
                                                        long out_stride, const int form) {
  const uint8_t *wp = (const uint8_t *)weights;
  for (int n0 = 0; n0 < N; n0 += NR)
    panel(mr, N - n0 < NR ? N - n0 : NR, Kp, a, &wp, bias + n0, row_offset, rq, n0, out + n0, out_stride, form);
}

static void gemm_u8_4x16c8__neoni8mm(int mr, int N, int Kp, const uint8_t *const *a, const void *weights,
                                     const int32_t *bias, const int32_t *row_offset, const mnq_arm_rq *rq,
                                     uint8_t *out, long out_stride) {
  MNQ_ARM_WITH_FORM(rq->form, panels(mr, N, Kp, a, weights, bias, row_offset, rq, out, out_stride, rq_form));
}

/* Pointwise and general conv layers (the dispatcher picks by op). */
int mnq_gemm_u8_prepare__neoni8mm(mnq_layer *L) {
  return mnq_arm_gemm_prepare(L, MR, NR, KR, 1, panel_offset);
}

void mnq_gemm_u8_4x16c8__neoni8mm(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  mnq_arm_gemm_layer(L, in, out, batch, w, MR, gemm_u8_4x16c8__neoni8mm, mnq_arm_row_sums_udot);
}
