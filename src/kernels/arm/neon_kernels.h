/* The NEON kernels dispatch.c selects (plain C declarations: dispatch.c is not
 * compiled with NEON flags). prepare: pack weights, 0 or -1 when out of memory.
 * The kernel files include it too, so each definition is checked against it. */
#ifndef MNQ_ARM_NEON_KERNELS_H
#define MNQ_ARM_NEON_KERNELS_H

#include "../internal.h"

/* arm/gemm_driver.h: one GEMM per level serves pointwise layers and (through im2col) convs */
int mnq_gemm_u8_prepare__neon(mnq_layer *L);
#ifdef __aarch64__
#define MNQ_ARM_NEON_GEMM mnq_gemm_u8_4x16__neon
#else
#define MNQ_ARM_NEON_GEMM mnq_gemm_u8_4x8__neon
#endif
void MNQ_ARM_NEON_GEMM(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
int mnq_dwconv_u8_prepare__neon(mnq_layer *L);
void mnq_dwconv_u8_16c__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
#ifdef __aarch64__
int mnq_gemm_u8_prepare__neondot(mnq_layer *L);
void mnq_gemm_u8_4x16c4__neondot(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
int mnq_gemm_u8_prepare__neoni8mm(mnq_layer *L);
void mnq_gemm_u8_4x16c8__neoni8mm(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
#endif

#endif
