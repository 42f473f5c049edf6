/* uint8 GEMM microkernel, 4 rows x 16 channels, K in groups of 4 (aarch64 with
 * the dot-product extension), and the pointwise / conv layers built on it.
 * UDOT-by-lane multiplies 4 channels x 4 k of raw uint8 weights by 4 k of one row
 * broadcast from a lane: 16 MACs an instruction. Each 32-byte row load feeds 8
 * k-groups; one 4-register load brings a k-group's 16 channels. Accumulators start
 * at bias - zw * sum(row), so the loop has nothing but loads and UDOTs.
 * Panel order: per k-group of 4, channel j's 4 bytes at j * 4 (64 bytes a group). */
#include <arm_neon.h>

#include "gemm_driver.h"

enum { MR = 4, NR = 16, KR = 16 };

static size_t panel_offset(int j, int k) { return (size_t)(k / 4) * NR * 4 + (size_t)j * 4 + k % 4; }

/* The accumulation is inline assembly (compiled from intrinsics, GCC loaded all weight
 * groups of a step up front and spilled accumulators). The 16 accumulators are its
 * outputs, so they go from the loop straight to the requantization: row r, channels
 * 4v..4v+3 in %[c<r><v>]. Rows of a 32-k step in v16..v23 (row r: v(16+2r) k 0-15,
 * v(17+2r) k 16-31); a k-group's weights alternately in v24..v27 and v28..v31, each
 * set loaded one group ahead of its UDOTs. */
#define DOT_(r, w0, w1, w2, w3, row, lane)                                                        \
  "udot %[c" #r "0].4s, " w0 ".16b, " row ".4b[" lane "]\n"                                       \
  "udot %[c" #r "1].4s, " w1 ".16b, " row ".4b[" lane "]\n"                                       \
  "udot %[c" #r "2].4s, " w2 ".16b, " row ".4b[" lane "]\n"                                       \
  "udot %[c" #r "3].4s, " w3 ".16b, " row ".4b[" lane "]\n"
#define GROUP_(w0, w1, w2, w3, r0, r1, r2, r3, lane) \
  DOT_(0, w0, w1, w2, w3, r0, lane) DOT_(1, w0, w1, w2, w3, r1, lane) DOT_(2, w0, w1, w2, w3, r2, lane) \
  DOT_(3, w0, w1, w2, w3, r3, lane)
#define GROUP(weights, rows, lane) GROUP_(weights, rows, lane)
#define DOT(r, weights, row, lane) DOT_(r, weights, row, lane)
#define WA "v24", "v25", "v26", "v27"
#define WB "v28", "v29", "v30", "v31"
#define ROWS_LO "v16", "v18", "v20", "v22"
#define ROWS_HI "v17", "v19", "v21", "v23"
#define LOAD_WA "ld1 {v24.16b - v27.16b}, [%[w]], #64\n"
#define LOAD_WB "ld1 {v28.16b - v31.16b}, [%[w]], #64\n"
#define INIT_ROW(r, off) \
  "add %[c" #r "0].4s, v24.4s, " off ".4s\n add %[c" #r "1].4s, v25.4s, " off ".4s\n" \
  "add %[c" #r "2].4s, v26.4s, " off ".4s\n add %[c" #r "3].4s, v27.4s, " off ".4s\n"

/* A tile of one row (the last row of an image whose pixel count is 1 mod 4, and the
 * classifier): the same panel with one row's UDOTs only, instead of four. */
static inline __attribute__((always_inline)) void panel_row(int nc, int Kp, const uint8_t *x0, const uint8_t **wp,
                                                           const int32_t *bias, const int32_t *row_offset,
                                                           const mnq_arm_rq *rq, int n0, uint8_t *out,
                                                           const int form) {
  int32x4_t c00, c01, c02, c03;
  const uint8_t *w = *wp;
  __asm__ volatile(
      "ldp %q[c00], %q[c01], [%[bias]]\n ldp %q[c02], %q[c03], [%[bias], #32]\n"
      "ld1r {v28.4s}, [%[roff]]\n"
      "add %[c00].4s, %[c00].4s, v28.4s\n add %[c01].4s, %[c01].4s, v28.4s\n"
      "add %[c02].4s, %[c02].4s, v28.4s\n add %[c03].4s, %[c03].4s, v28.4s\n"
      "lsr w16, %w[steps], #1\n"
      "cbz w16, 2f\n"
      "1:\n"
      "ldp q16, q17, [%[x0]], #32\n"
      LOAD_WA LOAD_WB DOT(0, WA, "v16", "0") LOAD_WA DOT(0, WB, "v16", "1") LOAD_WB
      DOT(0, WA, "v16", "2") LOAD_WA DOT(0, WB, "v16", "3") LOAD_WB
      DOT(0, WA, "v17", "0") LOAD_WA DOT(0, WB, "v17", "1") LOAD_WB
      DOT(0, WA, "v17", "2") DOT(0, WB, "v17", "3")
      "subs w16, w16, #1\n"
      "b.ne 1b\n"
      "2:\n"
      "tbz %w[steps], #0, 3f\n"
      "ldr q16, [%[x0]]\n"
      LOAD_WA LOAD_WB DOT(0, WA, "v16", "0") LOAD_WA DOT(0, WB, "v16", "1") LOAD_WB
      DOT(0, WA, "v16", "2") DOT(0, WB, "v16", "3")
      "3:\n"
      : [c00] "=&w"(c00), [c01] "=&w"(c01), [c02] "=&w"(c02), [c03] "=&w"(c03), [x0] "+r"(x0), [w] "+r"(w)
      : [steps] "r"(Kp / 16), [bias] "r"(bias), [roff] "r"(row_offset)
      : "cc", "memory", "x16", "v16", "v17", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");
  *wp = w;
  const mnq_arm_rq16 q = mnq_arm_rq16_load(rq, n0, form);
  mnq_arm_store_u8x16(out, mnq_arm_rq16_apply(&q, c00, c01, c02, c03, form), nc);
}

/* One panel (16 channels) against rows a[0..4): accumulate, requantize, store the first
 * mr rows and nc channels. *wp walks on to the next panel. */
static inline __attribute__((always_inline)) void panel(int mr, int nc, int Kp, const uint8_t *const *a,
                                                       const uint8_t **wp, const int32_t *bias,
                                                       const int32_t *row_offset, const mnq_arm_rq *rq, int n0,
                                                       uint8_t *out, long out_stride, const int form) {
  int32x4_t c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33;
  const uint8_t *x0 = a[0], *x1 = a[1], *x2 = a[2], *x3 = a[3], *w = *wp;
  /* Per 32 k: 4 two-register row loads, 8 group loads, 128 UDOTs and 2 loop
   * instructions (2048 MACs in 142 instructions); an odd 16 k at the end. */
  __asm__ volatile(
      "ld1 {v24.4s - v27.4s}, [%[bias]]\n"
      "ld4r {v28.4s - v31.4s}, [%[roff]]\n"
      INIT_ROW(0, "v28") INIT_ROW(1, "v29") INIT_ROW(2, "v30") INIT_ROW(3, "v31")
      "lsr w16, %w[steps], #1\n"
      "cbz w16, 2f\n"
      "1:\n"
      "ldp q16, q17, [%[x0]], #32\n ldp q18, q19, [%[x1]], #32\n"
      "ldp q20, q21, [%[x2]], #32\n ldp q22, q23, [%[x3]], #32\n"
      LOAD_WA LOAD_WB
      GROUP(WA, ROWS_LO, "0") LOAD_WA GROUP(WB, ROWS_LO, "1") LOAD_WB
      GROUP(WA, ROWS_LO, "2") LOAD_WA GROUP(WB, ROWS_LO, "3") LOAD_WB
      GROUP(WA, ROWS_HI, "0") LOAD_WA GROUP(WB, ROWS_HI, "1") LOAD_WB
      GROUP(WA, ROWS_HI, "2") GROUP(WB, ROWS_HI, "3")
      "subs w16, w16, #1\n"
      "b.ne 1b\n"
      "2:\n"
      "tbz %w[steps], #0, 3f\n"
      "ldr q16, [%[x0]]\n ldr q18, [%[x1]]\n ldr q20, [%[x2]]\n ldr q22, [%[x3]]\n"
      LOAD_WA LOAD_WB
      GROUP(WA, ROWS_LO, "0") LOAD_WA GROUP(WB, ROWS_LO, "1") LOAD_WB
      GROUP(WA, ROWS_LO, "2") GROUP(WB, ROWS_LO, "3")
      "3:\n"
      : [c00] "=w"(c00), [c01] "=w"(c01), [c02] "=w"(c02), [c03] "=w"(c03), [c10] "=w"(c10), [c11] "=w"(c11),
        [c12] "=w"(c12), [c13] "=w"(c13), [c20] "=w"(c20), [c21] "=w"(c21), [c22] "=w"(c22), [c23] "=w"(c23),
        [c30] "=w"(c30), [c31] "=w"(c31), [c32] "=w"(c32), [c33] "=w"(c33), [x0] "+r"(x0), [x1] "+r"(x1),
        [x2] "+r"(x2), [x3] "+r"(x3), [w] "+r"(w)
      : [steps] "r"(Kp / 16), [bias] "r"(bias), [roff] "r"(row_offset)
      : "cc", "memory", "x16", "v16", "v17", "v18", "v19", "v20", "v21", "v22", "v23", "v24", "v25", "v26", "v27",
        "v28", "v29", "v30", "v31");
  *wp = w;
  const mnq_arm_rq16 q = mnq_arm_rq16_load(rq, n0, form);
  const uint8x16_t y0 = mnq_arm_rq16_apply(&q, c00, c01, c02, c03, form);
  const uint8x16_t y1 = mnq_arm_rq16_apply(&q, c10, c11, c12, c13, form);
  const uint8x16_t y2 = mnq_arm_rq16_apply(&q, c20, c21, c22, c23, form);
  const uint8x16_t y3 = mnq_arm_rq16_apply(&q, c30, c31, c32, c33, form);
  mnq_arm_store_rows_x16(out, out_stride, mr, nc, y0, y1, y2, y3);
}

static inline __attribute__((always_inline)) void panels(int mr, int N, int Kp, const uint8_t *const *a,
                                                        const void *weights, const int32_t *bias,
                                                        const int32_t *row_offset, const mnq_arm_rq *rq, uint8_t *out,
                                                        long out_stride, const int form) {
  const uint8_t *wp = (const uint8_t *)weights;
  for (int n0 = 0; n0 < N; n0 += NR) {
    const int nc = N - n0 < NR ? N - n0 : NR;
    if (mr == 1) panel_row(nc, Kp, a[0], &wp, bias + n0, row_offset, rq, n0, out + n0, form);
    else panel(mr, nc, Kp, a, &wp, bias + n0, row_offset, rq, n0, out + n0, out_stride, form);
  }
}

static void gemm_u8_4x16c4__neondot(int mr, int N, int Kp, const uint8_t *const *a, const void *weights,
                                    const int32_t *bias, const int32_t *row_offset, const mnq_arm_rq *rq,
                                    uint8_t *out, long out_stride) {
  MNQ_ARM_WITH_FORM(rq->form, panels(mr, N, Kp, a, weights, bias, row_offset, rq, out, out_stride, rq_form));
}

/* Pointwise and general conv layers (the dispatcher picks by op). */
int mnq_gemm_u8_prepare__neondot(mnq_layer *L) {
  return mnq_arm_gemm_prepare(L, MR, NR, KR, 1, panel_offset);
}

void mnq_gemm_u8_4x16c4__neondot(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  mnq_arm_gemm_layer(L, in, out, batch, w, MR, gemm_u8_4x16c4__neondot, mnq_arm_row_sums_udot);
}
