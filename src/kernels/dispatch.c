/* Runtime CPU detection (cpuid, XCR0, the Linux AMX permission; HWCAP on ARM)
 * and the one place that maps (op, shape, ISA level) to a kernel. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#ifdef MNQ_X86_KERNELS
#include "x86/gemm.h"
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static uint64_t read_xcr0(void) {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((uint64_t)edx << 32) | eax;
}

/* Linux refuses AMX tile data until the process asks for it once. */
static int request_amx_permission(void) {
#if defined(__linux__) && defined(SYS_arch_prctl)
  const int ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
  return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
  return 0;
#endif
}
#endif

#if defined(MNQ_ARM_KERNELS)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20) /* aarch64 AT_HWCAP: dot product */
#endif
#ifndef HWCAP_ARM_NEON
#define HWCAP_ARM_NEON (1 << 12) /* 32-bit ARM AT_HWCAP */
#endif
#endif

static unsigned g_mask;
static int g_avx512vbmi; /* the depthwise VNNI kernel's byte transposes need it */
static int g_avxvnni;    /* the AVX2 level's GEMMs use it; env MNQ_NO_AVXVNNI=1 turns it off (tests the plain AVX2 kernels) */
static char g_features[256];
static int g_detected;

static void add_feature(const char *name) {
  size_t len = strlen(g_features);
  snprintf(g_features + len, sizeof(g_features) - len, "%s%s", len ? " " : "", name);
}

static void detect(void) {
  unsigned mask = 1u << MNQ_ISA_SCALAR;
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  unsigned b7 = 0, c7 = 0, d7 = 0, a7_1 = 0;
  int osxsave = 0;
  if (__get_cpuid(1, &a, &b, &c, &d)) osxsave = (c >> 27) & 1;
  const int has_fma = __get_cpuid(1, &a, &b, &c, &d) && ((c >> 12) & 1);
  if (__get_cpuid_max(0, NULL) >= 7) {
    __cpuid_count(7, 0, a, b7, c7, d7);
    __cpuid_count(7, 1, a7_1, b, c, d);
  }
  const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  const int os_avx = (xcr0 & 0x6) == 0x6;
  const int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
  const int os_amx = (xcr0 & 0x60000) == 0x60000;
  const int avx2 = os_avx && ((b7 >> 5) & 1) && has_fma;
  const int avx_vnni = avx2 && ((a7_1 >> 4) & 1);
  const int avx512 = os_avx512 && ((b7 >> 16) & 1) && ((b7 >> 17) & 1) && ((b7 >> 30) & 1) && ((b7 >> 31) & 1);
  const int avx512vnni = avx512 && ((c7 >> 11) & 1);
  const int amx = avx512vnni && os_amx && ((d7 >> 24) & 1) && ((d7 >> 25) & 1) && request_amx_permission();
  if (avx2) { add_feature("avx2"); add_feature("fma"); mask |= 1u << MNQ_ISA_AVX2; }
  const char *no_vnni = getenv("MNQ_NO_AVXVNNI");
  g_avxvnni = avx_vnni && !(no_vnni && no_vnni[0] == '1');
  if (g_avxvnni) add_feature("avx-vnni"); /* listed only when kernels may use it */
  if (avx512) add_feature("avx512f/bw/dq/vl");
  if (avx512vnni) { add_feature("avx512-vnni"); mask |= 1u << MNQ_ISA_AVX512VNNI; }
  g_avx512vbmi = avx512vnni && ((c7 >> 1) & 1);
  if (amx) { add_feature("amx-int8"); mask |= 1u << MNQ_ISA_AMX; }
#endif
#if defined(MNQ_ARM_KERNELS) && defined(__aarch64__)
  /* Advanced SIMD is part of every aarch64 Linux system; the dot product is optional */
  const unsigned long hwcap = getauxval(AT_HWCAP);
  add_feature("asimd");
  mask |= 1u << MNQ_ISA_NEON;
  if (hwcap & HWCAP_ASIMDDP) { add_feature("asimddp"); mask |= 1u << MNQ_ISA_NEONDOT; }
#elif defined(MNQ_ARM_KERNELS) && defined(__arm__)
  if (getauxval(AT_HWCAP) & HWCAP_ARM_NEON) { add_feature("neon"); mask |= 1u << MNQ_ISA_NEON; }
#endif
  if (!g_features[0]) add_feature("none beyond scalar");
  g_mask = mask;
}

static void ensure_detected(void) {
  /* cpuid is idempotent, so a race between first callers only repeats work */
  if (!__atomic_load_n(&g_detected, __ATOMIC_ACQUIRE)) {
    detect();
    __atomic_store_n(&g_detected, 1, __ATOMIC_RELEASE);
  }
}

unsigned mnq_isa_supported_mask(void) { ensure_detected(); return g_mask; }
const char *mnq_cpu_features(void) { ensure_detected(); return g_features; }

int mnq_isa_best(void) {
  const unsigned mask = mnq_isa_supported_mask();
  int best = MNQ_ISA_SCALAR;
  for (int i = 0; i < MNQ_ISA_COUNT; i++)
    if (mask & (1u << i)) best = i;
  return best;
}

const char *mnq_isa_name(int isa) {
  static const char *names[MNQ_ISA_COUNT] = {"scalar", "avx2", "avx512vnni", "amx", "neon", "neondot"};
  return (isa >= 0 && isa < MNQ_ISA_COUNT) ? names[isa] : "unknown";
}

#define USE(fn) (L->kernel = fn, L->kernel_name = #fn)
#define USE_EXPANDED(fn) USE(fn) /* fn a macro naming the kernel */

/* Each op's choice lives in its own function: the fastest kernel at or below
 * `isa` that handles this layer's shape, else the scalar oracle. A kernel that
 * needs packed weights or scratch sets L->packed / L->scratch_bytes here. */

#ifdef MNQ_X86_KERNELS
/* A conv as a GEMM over im2col rows needs the zero-point term folded over
 * every tap, padding taps included (im2col fills them with in_zp). */
static int fold_conv_bias(mnq_layer *L) {
  const mnq_layer_desc *d = &L->d;
  const long k = (long)d->k_h * d->k_w * d->in_c;
  L->bias_folded = malloc(sizeof(int32_t) * (size_t)d->out_c);
  if (!L->bias_folded) return -1;
  for (int n = 0; n < d->out_c; n++) {
    int32_t wsum = 0;
    for (long i = 0; i < k; i++) wsum += (int32_t)d->weights[n * k + i] - d->w_zp;
    L->bias_folded[n] = (d->bias ? d->bias[n] : 0) - d->in_zp * wsum;
  }
  return 0;
}
#endif

#ifdef MNQ_ARM_KERNELS
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
#endif

/* The ARM kernels run from their packed copy alone (weights, bias, requantization). */
static int arm_packed(mnq_layer *L, int prepare_rc) {
  L->packed_only = prepare_rc == 0;
  return prepare_rc;
}
#endif

static int select_conv(mnq_layer *L, int isa) {
#ifdef MNQ_X86_KERNELS
  const mnq_layer_desc *d = &L->d;
  const int k = d->k_h * d->k_w * d->in_c;
  if (isa >= MNQ_ISA_AMX) {
    if (fold_conv_bias(L) || !(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, k, d->w_zp,
                                                         MNQ_AMX_KALIGN(k), 32)))
      return -1;
    L->scratch_bytes = MNQ_AMX_SCRATCH(k, MNQ_IM2COL_ROWS);
    USE(mnq_conv_u8_im2col_32x32__amx);
    return 0;
  }
  if (isa >= MNQ_ISA_AVX512VNNI) {
    if (fold_conv_bias(L) || !(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, k, d->w_zp, 4, 16)))
      return -1;
    L->scratch_bytes = (size_t)MNQ_IM2COL_ROWS * ((k + 3) & ~3);
    USE(mnq_conv_u8_im2col_6x64__avx512vnni);
    return 0;
  }
  ensure_detected();
  if (isa >= MNQ_ISA_AVX2 && g_avxvnni) {
    if (fold_conv_bias(L) || !(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, k, d->w_zp, 4, 16)))
      return -1;
    L->scratch_bytes = MNQ_AVXVNNI_CONV_SCRATCH(k);
    USE(mnq_conv_u8_im2col_5x16__avxvnni);
    return 0;
  }
  if (isa >= MNQ_ISA_AVX2) {
    if (fold_conv_bias(L) || !(L->packed = mnq_gemm_pack_i16(d->weights, L->bias_folded, d->out_c, k, d->w_zp)))
      return -1;
    L->scratch_bytes = MNQ_AVX2_CONV_SCRATCH(k);
    USE(mnq_conv_u8_im2col_6x16__avx2);
    return 0;
  }
#endif
#if defined(MNQ_ARM_KERNELS) && defined(__aarch64__)
  if (isa >= MNQ_ISA_NEONDOT) {
    USE(mnq_gemm_u8_4x16c4__neondot); /* im2col rows through the GEMM */
    return arm_packed(L, mnq_gemm_u8_prepare__neondot(L));
  }
#endif
#ifdef MNQ_ARM_KERNELS
  if (isa >= MNQ_ISA_NEON) {
    USE_EXPANDED(MNQ_ARM_NEON_GEMM);
    return arm_packed(L, mnq_gemm_u8_prepare__neon(L));
  }
#endif
  (void)isa;
  USE(mnq_conv_u8__scalar);
  return 0;
}

static int select_pointwise(mnq_layer *L, int isa) {
#if defined(MNQ_ARM_KERNELS) && defined(__aarch64__)
  if (isa >= MNQ_ISA_NEONDOT) {
    USE(mnq_gemm_u8_4x16c4__neondot);
    return arm_packed(L, mnq_gemm_u8_prepare__neondot(L));
  }
#endif
#ifdef MNQ_ARM_KERNELS
  if (isa >= MNQ_ISA_NEON) {
    USE_EXPANDED(MNQ_ARM_NEON_GEMM);
    return arm_packed(L, mnq_gemm_u8_prepare__neon(L));
  }
#endif
#ifdef MNQ_X86_KERNELS
  const mnq_layer_desc *d = &L->d;
  /* AMX with a K-wide tile beats VNNI from K=32 (first pointwise of MobileNet V1 1.0) */
  if (isa >= MNQ_ISA_AMX && d->in_c >= 32) {
    if (!(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, d->in_c, d->w_zp,
                                    MNQ_AMX_KALIGN(d->in_c), 32)))
      return -1;
    L->scratch_bytes = MNQ_AMX_SCRATCH(d->in_c, 32);
    USE(mnq_pwconv_u8_32x32__amx);
    return 0;
  }
  if (isa >= MNQ_ISA_AVX512VNNI) {
    if (!(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, d->in_c, d->w_zp, 4, 16))) return -1;
    USE(mnq_pwconv_u8_6x64__avx512vnni);
    return 0;
  }
  ensure_detected();
  if (isa >= MNQ_ISA_AVX2 && g_avxvnni) {
    if (!(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, d->in_c, d->w_zp, 4, 16))) return -1;
    USE(mnq_pwconv_u8_5x16__avxvnni);
    return 0;
  }
  if (isa >= MNQ_ISA_AVX2) {
    if (!(L->packed = mnq_gemm_pack_i16(d->weights, L->bias_folded, d->out_c, d->in_c, d->w_zp))) return -1;
    L->scratch_bytes = MNQ_AVX2_SCRATCH(d->in_c);
    USE(mnq_pwconv_u8_6x16__avx2);
    return 0;
  }
#endif
  (void)isa;
  USE(mnq_pwconv_u8__scalar);
  return 0;
}

#ifdef MNQ_X86_KERNELS
#include "x86/dwconv3x3_pack.h"
int mnq_dwconv3x3_u8_prepare__avx2(mnq_layer *L);
void mnq_dwconv3x3s1_u8__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_dwconv3x3s2_u8__avx2(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
int mnq_dwconv3x3_u8_prepare__avx512vnni(mnq_layer *L);
void mnq_dwconv3x3s1_u8_32x2__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
void mnq_dwconv3x3s2_u8_32x2__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w);
#endif

static int select_depthwise(mnq_layer *L, int isa) {
#ifdef MNQ_X86_KERNELS
  ensure_detected();
  if (mnq_dw3x3_fits(&L->d) && isa >= MNQ_ISA_AVX512VNNI && g_avx512vbmi) {
    /* > 0: accumulators too large for the 3x3 requantization (absurd multipliers) */
    const int rc = mnq_dwconv3x3_u8_prepare__avx512vnni(L);
    if (rc < 0) return -1;
    if (rc == 0) {
      if (L->d.stride_h == 1) USE(mnq_dwconv3x3s1_u8_32x2__avx512vnni);
      else USE(mnq_dwconv3x3s2_u8_32x2__avx512vnni);
      return 0;
    }
  }
  if (mnq_dw3x3_fits(&L->d) && isa >= MNQ_ISA_AVX2) {
    const int rc = mnq_dwconv3x3_u8_prepare__avx2(L);
    if (rc < 0) return -1;
    if (rc == 0) {
      if (L->d.stride_h == 1) USE(mnq_dwconv3x3s1_u8__avx2);
      else USE(mnq_dwconv3x3s2_u8__avx2);
      return 0;
    }
  }
#endif
#ifdef MNQ_ARM_KERNELS
  /* depthwise gains nothing from the dot product: one NEON kernel serves both levels */
  if (isa >= MNQ_ISA_NEON) {
    USE(mnq_dwconv_u8_16c__neon);
    return arm_packed(L, mnq_dwconv_u8_prepare__neon(L));
  }
#endif
  (void)isa;
  USE(mnq_dwconv_u8__scalar);
  return 0;
}

/* Pooling and softmax are a sliver of the time: one portable fast path each. */
static int select_avgpool(mnq_layer *L, int isa) {
  if (isa == MNQ_ISA_SCALAR) {
    USE(mnq_avgpool_u8__scalar);
  } else {
    USE(mnq_avgpool_u8_channels);
    L->scratch_bytes = sizeof(int32_t) * (size_t)L->d.in_c;
  }
  return 0;
}

static int select_softmax(mnq_layer *L, int isa) {
  if (isa == MNQ_ISA_SCALAR) {
    USE(mnq_softmax_u8__scalar);
    return 0;
  }
  USE(mnq_softmax_u8_lut);
  return mnq_softmax_u8_lut_pack(L);
}

int mnq_select_kernel(mnq_layer *L, int isa, char *err, size_t err_len) {
  int rc = 0;
  switch (L->d.op) {
    case MNQ_OP_CONV: rc = select_conv(L, isa); break;
    case MNQ_OP_POINTWISE: rc = select_pointwise(L, isa); break;
    case MNQ_OP_DEPTHWISE: rc = select_depthwise(L, isa); break;
    case MNQ_OP_AVGPOOL: rc = select_avgpool(L, isa); break;
    case MNQ_OP_SOFTMAX: rc = select_softmax(L, isa); break;
    case MNQ_OP_COPY: USE(mnq_copy_u8); break;
    default: rc = -1;
  }
  /* these ops have no weight, bias or per-channel arrays */
  if (L->d.op == MNQ_OP_AVGPOOL || L->d.op == MNQ_OP_SOFTMAX || L->d.op == MNQ_OP_COPY) L->packed_only = 1;
  if (rc && err && err_len) snprintf(err, err_len, "no kernel for layer (op %d): out of memory or unknown op", L->d.op);
  return rc;
}
