/* uint8 GEMM microkernel, 4 rows x 16 channels, K in groups of 4 (aarch64 with
 * the dot-product extension), and the pointwise / conv layers built on it.
 * UDOT-by-lane multiplies 4 channels x 4 k of raw uint8 weights by 4 k of one row
 * broadcast from a lane: 16 MACs an instruction. Each 16-byte row load feeds 4
 * k-groups; one 4-register load brings a k-group's 16 channels. Accumulators start
 * at bias - zw * sum(row), so the loop has nothing but loads and UDOTs.
 * Panel order: per k-group of 4, channel j's 4 bytes at j * 4 (64 bytes a group). */
#include <arm_neon.h>

#include "gemm_driver.h"

enum { MR = 4, NR = 16, KR = 16 };

static size_t panel_offset(int j, int k) { return (size_t)(k / 4) * NR * 4 + (size_t)j * 4 + k % 4; }

static void row_sums(const uint8_t *const *a, int Kp, int32_t *sums) {
  const uint8x16_t ones = vdupq_n_u8(1);
  uint32x4_t s0 = vdupq_n_u32(0), s1 = s0, s2 = s0, s3 = s0;
  for (int k = 0; k < Kp; k += 16) {
    s0 = vdotq_u32(s0, vld1q_u8(a[0] + k), ones);
    s1 = vdotq_u32(s1, vld1q_u8(a[1] + k), ones);
    s2 = vdotq_u32(s2, vld1q_u8(a[2] + k), ones);
    s3 = vdotq_u32(s3, vld1q_u8(a[3] + k), ones);
  }
  /* pairwise adds leave the four totals in one vector */
  vst1q_s32(sums, vreinterpretq_s32_u32(vpaddq_u32(vpaddq_u32(s0, s1), vpaddq_u32(s2, s3))));
}

/* Accumulators: row r, channels 4v..4v+3 in ACC(r, v); rows in v24..v27, one
 * k-group's weights in v28..v31. Only caller-saved vector registers are used. */
#define ACC_0 "v0", "v1", "v2", "v3"
#define ACC_1 "v4", "v5", "v6", "v7"
#define ACC_2 "v16", "v17", "v18", "v19"
#define ACC_3 "v20", "v21", "v22", "v23"
#define DOT(c, w, row, lane) "udot " c ".4s, " w ".16b, " row ".4b[" lane "]\n"
#define DOT_ROW_(row, lane, c0, c1, c2, c3) \
  DOT(c0, "v28", row, lane) DOT(c1, "v29", row, lane) DOT(c2, "v30", row, lane) DOT(c3, "v31", row, lane)
#define DOT_ROW(row, lane, acc) DOT_ROW_(row, lane, acc)
#define DOT_GROUP(lane)                                                                               \
  "ld1 {v28.16b - v31.16b}, [%[wp]], #64\n"                                                           \
  DOT_ROW("v24", lane, ACC_0) DOT_ROW("v25", lane, ACC_1) DOT_ROW("v26", lane, ACC_2) DOT_ROW("v27", lane, ACC_3)
#define INIT_ROW_(r, c0, c1, c2, c3)                                                                  \
  "ld1r {v24.4s}, [%[roff]], #4\n"                                                                    \
  "add " c0 ".4s, v28.4s, v24.4s\n add " c1 ".4s, v29.4s, v24.4s\n"                                   \
  "add " c2 ".4s, v30.4s, v24.4s\n add " c3 ".4s, v31.4s, v24.4s\n"
#define INIT_ROW(acc) INIT_ROW_(0, acc)
#define STORE_ROW_(c0, c1, c2, c3) "st1 {" c0 ".4s - " c3 ".4s}, [%[acc]], #64\n"
#define STORE_ROW(acc) STORE_ROW_(acc)

static void gemm_u8_4x16c4__neondot(int mr, int N, int Kp, const uint8_t *const *a, const void *panels,
                                    const int32_t *bias, const int32_t *row_offset, const mnq_arm_rq *rq,
                                    uint8_t *out, long out_stride) {
  const uint8_t *wp = (const uint8_t *)panels; /* the asm walks it from panel to panel */
  int32_t acc[MR][NR];
  for (int n0 = 0; n0 < N; n0 += NR) {
    const uint8_t *x0 = a[0], *x1 = a[1], *x2 = a[2], *x3 = a[3];
    const int32_t *roff = row_offset, *bp = bias + n0;
    int32_t *accp = &acc[0][0];
    int steps = Kp / KR;
    /* Assembly: compiled from intrinsics, GCC loads all four weight groups of a step up
     * front and spills accumulators. Per 16 k: 4 row loads, 4 group loads, 64 UDOTs and
     * 2 loop instructions (1024 MACs in 74 instructions). */
    __asm__ volatile(
        "ld1 {v28.4s - v31.4s}, [%[bias]]\n"
        INIT_ROW(ACC_0) INIT_ROW(ACC_1) INIT_ROW(ACC_2) INIT_ROW(ACC_3)
        "1:\n"
        "ldr q24, [%[x0]], #16\n"
        "ldr q25, [%[x1]], #16\n"
        "ldr q26, [%[x2]], #16\n"
        "ldr q27, [%[x3]], #16\n"
        DOT_GROUP("0") DOT_GROUP("1") DOT_GROUP("2") DOT_GROUP("3")
        "subs %w[steps], %w[steps], #1\n"
        "b.ne 1b\n"
        STORE_ROW(ACC_0) STORE_ROW(ACC_1) STORE_ROW(ACC_2) STORE_ROW(ACC_3)
        : [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [x3] "+r"(x3), [wp] "+r"(wp), [steps] "+r"(steps),
          [roff] "+r"(roff), [acc] "+r"(accp)
        : [bias] "r"(bp)
        : "cc", "memory", "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v16", "v17", "v18", "v19", "v20", "v21",
          "v22", "v23", "v24", "v25", "v26", "v27", "v28", "v29", "v30", "v31");
    const int nc = N - n0 < NR ? N - n0 : NR;
    if (rq->right_only) mnq_arm_requant_tile_x16(&acc[0][0], MR, mr, nc, rq, n0, out + n0, out_stride, 1);
    else mnq_arm_requant_tile_x16(&acc[0][0], MR, mr, nc, rq, n0, out + n0, out_stride, 0);
  }
}

/* Pointwise and general conv layers (the dispatcher picks by op). */
int mnq_gemm_u8_prepare__neondot(mnq_layer *L) {
  return mnq_arm_gemm_prepare(L, MR, NR, KR, 1, panel_offset);
}

void mnq_gemm_u8_4x16c4__neondot(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w) {
  mnq_arm_gemm_layer(L, in, out, batch, w, MR, gemm_u8_4x16c4__neondot, row_sums);
}
