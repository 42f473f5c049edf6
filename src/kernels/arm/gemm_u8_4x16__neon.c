/* uint8 GEMM microkernel, 4 rows x 16 channels, plain aarch64 Advanced SIMD (no dot
 * product: Cortex-A53/A55/A72), and the pointwise / conv layers built on it.
 * Weights are packed as int16 (w - zw), rows widened to int16 (x, not x - zx: the
 * folded bias carries -zx * sum(w - zw)); SMLAL/SMLAL2 by element multiply 4
 * channels by one row's x[k] into int32 (4 MACs an instruction; every product
 * fits, the sum wraps exactly like the scalar int32 sum).
 * Panel order: for each k, the 16 channels' int16 weights. ARMv7: gemm_u8_4x8__neon.c. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "gemm_driver.h"

enum { MR = 4, NR = 16, KR = 8 };

static size_t panel_offset(int j, int k) { return (size_t)k * NR + j; }

/* Registers: rows x (widened) in v0..v3 (by-element 16-bit operands must be in
 * v0..v15), accumulators row r in ACC_r (4 x 4 channels), weights v28..v31 (two k). */
#define ACC_0 "v4", "v5", "v6", "v7"
#define ACC_1 "v16", "v17", "v18", "v19"
#define ACC_2 "v20", "v21", "v22", "v23"
#define ACC_3 "v24", "v25", "v26", "v27"
/* one k (lane of the widened rows) with channels 0-7 in wa and 8-15 in wb */
#define MAC_ROW_(row, lane, wa, wb, c0, c1, c2, c3)                                           \
  "smlal " c0 ".4s, " wa ".4h, " row ".h[" lane "]\n smlal2 " c1 ".4s, " wa ".8h, " row ".h[" lane "]\n" \
  "smlal " c2 ".4s, " wb ".4h, " row ".h[" lane "]\n smlal2 " c3 ".4s, " wb ".8h, " row ".h[" lane "]\n"
#define MAC_ROW(row, lane, wa, wb, acc) MAC_ROW_(row, lane, wa, wb, acc)
#define MAC_K(lane, wa, wb)                                                                     \
  MAC_ROW("v0", lane, wa, wb, ACC_0) MAC_ROW("v1", lane, wa, wb, ACC_1)                         \
  MAC_ROW("v2", lane, wa, wb, ACC_2) MAC_ROW("v3", lane, wa, wb, ACC_3)
#define MAC_2K(lane0, lane1)                                                                    \
  "ld1 {v28.8h - v31.8h}, [%[wp]], #64\n" MAC_K(lane0, "v28", "v29") MAC_K(lane1, "v30", "v31")
#define INIT_ROW_(c0, c1, c2, c3) \
  "mov " c0 ".16b, v28.16b\n mov " c1 ".16b, v29.16b\n mov " c2 ".16b, v30.16b\n mov " c3 ".16b, v31.16b\n"
#define INIT_ROW(acc) INIT_ROW_(acc)
#define STORE_ROW_(c0, c1, c2, c3) "st1 {" c0 ".4s - " c3 ".4s}, [%[acc]], #64\n"
#define STORE_ROW(acc) STORE_ROW_(acc)

static void gemm_u8_4x16__neon(int mr, int N, int Kp, const uint8_t *const *a, const void *panels,
                               const int32_t *bias, const int32_t *row_offset, const mnq_arm_rq *rq, uint8_t *out,
                               long out_stride) {
  (void)row_offset; /* int16 (w - zw) weights: no per-row term */
  const int16_t *wp = (const int16_t *)panels; /* the asm walks it from panel to panel */
  int32_t acc[MR][NR];
  for (int n0 = 0; n0 < N; n0 += NR) {
    const uint8_t *x0 = a[0], *x1 = a[1], *x2 = a[2], *x3 = a[3];
    int32_t *accp = &acc[0][0];
    int steps = Kp / KR;
    /* Assembly, as in the neondot kernel, so that no accumulator is spilled. Per 8 k:
     * 4 row loads + 4 widenings, 4 weight loads, 128 SMLAL(2), 2 loop instructions. */
    __asm__ volatile(
        "ld1 {v28.4s - v31.4s}, [%[bias]]\n"
        INIT_ROW(ACC_0) INIT_ROW(ACC_1) INIT_ROW(ACC_2) INIT_ROW(ACC_3)
        "1:\n"
        "ldr d0, [%[x0]], #8\n uxtl v0.8h, v0.8b\n"
        "ldr d1, [%[x1]], #8\n uxtl v1.8h, v1.8b\n"
        "ldr d2, [%[x2]], #8\n uxtl v2.8h, v2.8b\n"
        "ldr d3, [%[x3]], #8\n uxtl v3.8h, v3.8b\n"
        MAC_2K("0", "1") MAC_2K("2", "3") MAC_2K("4", "5") MAC_2K("6", "7")
        "subs %w[steps], %w[steps], #1\n"
        "b.ne 1b\n"
        STORE_ROW(ACC_0) STORE_ROW(ACC_1) STORE_ROW(ACC_2) STORE_ROW(ACC_3)
        : [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [x3] "+r"(x3), [wp] "+r"(wp), [steps] "+r"(steps),
          [acc] "+r"(accp)
        : [bias] "r"(bias + n0)
        : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", "v20", "v21",
          "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");
    const int nc = N - n0 < NR ? N - n0 : NR;
    MNQ_ARM_WITH_FORM(rq->form, mnq_arm_requant_tile_4x16(&acc[0][0], mr, nc, rq, n0, out + n0, out_stride, rq_form));
  }
}

/* Pointwise and general conv layers (the dispatcher picks by op). */
int mnq_gemm_u8_prepare__neon(mnq_layer *L) {
  return mnq_arm_gemm_prepare(L, MR, NR, KR, 2, panel_offset);
}

void mnq_gemm_u8_4x16__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  mnq_arm_gemm_layer(L, in, out, batch, w, MR, gemm_u8_4x16__neon, NULL);
}
#endif
