/* The NEON kernels dispatch.c selects (plain C declarations: dispatch.c is not
 * compiled with NEON flags). prepare: pack weights, 0 or -1 when out of memory. */
#ifndef MNQ_ARM_NEON_KERNELS_H
#define MNQ_ARM_NEON_KERNELS_H

#include "../internal.h"

int mnq_pwconv_u8_prepare__neon(mnq_layer *L);
void mnq_pwconv_u8__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
int mnq_dwconv_u8_prepare__neon(mnq_layer *L);
void mnq_dwconv_u8__neon(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
#ifdef __aarch64__
int mnq_pwconv_u8_prepare__neondot(mnq_layer *L);
void mnq_pwconv_u8__neondot(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
#endif

#endif
