/* Runtime CPU detection (cpuid, XCR0, the Linux AMX permission; HWCAP on ARM)
 * and the one place that maps (op, shape, ISA level) to a kernel. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#ifdef MNQ_X86_KERNELS
#include "x86/dwconv3x3_pack.h"
#include "x86/gemm.h"
#endif
#ifdef MNQ_ARM_KERNELS
#include "arm/neon_kernels.h"
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
#ifndef HWCAP2_I8MM
#define HWCAP2_I8MM (1 << 13) /* aarch64 AT_HWCAP2: 8-bit matrix multiply */
#endif
#ifndef HWCAP_ARM_NEON
#define HWCAP_ARM_NEON (1 << 12) /* 32-bit ARM AT_HWCAP */
#endif
#endif

/* CPU features that change a kernel choice. Each kernel states the ones it needs;
 * each ISA level (the user-facing knob) permits a set of them; a kernel runs when
 * its level permits, and the CPU has, every feature it needs. So a new level
 * inherits only what its table row grants, not whatever sorts below it. */
enum {
  CPU_AVX2 = 1u << 0,        /* with FMA */
  CPU_AVX_VNNI = 1u << 1,    /* VEX vpdpbusd; env MNQ_NO_AVXVNNI=1 hides it (tests the plain AVX2 kernels) */
  CPU_AVX512 = 1u << 2,      /* F, BW, DQ, VL */
  CPU_AVX512_VNNI = 1u << 3,
  CPU_AVX512_VBMI = 1u << 4, /* the depthwise VNNI kernel's byte permutes */
  CPU_AMX_INT8 = 1u << 5,    /* with the OS's tile-data permission */
  CPU_NEON = 1u << 6,        /* ARMv7 NEON or aarch64 Advanced SIMD */
  CPU_NEON_DOT = 1u << 7,    /* aarch64 SDOT/UDOT */
  CPU_NEON_I8MM = 1u << 8,   /* aarch64 SMMLA/UMMLA */
  CPU_FEATURE_COUNT = 9
};
/* as mnq_cpu_features() lists them */
static const char *const CPU_FEATURE_NAMES[CPU_FEATURE_COUNT] = {
    "avx2 fma", "avx-vnni", "avx512f/bw/dq/vl", "avx512-vnni", "avx512-vbmi", "amx-int8", "asimd", "asimddp", "i8mm"};

#define X86_AVX2_LEVEL (CPU_AVX2 | CPU_AVX_VNNI)
#define X86_AVX512_LEVEL (X86_AVX2_LEVEL | CPU_AVX512 | CPU_AVX512_VNNI | CPU_AVX512_VBMI)
/* features each level may use */
static const unsigned LEVEL_PERMITS[MNQ_ISA_COUNT] = {
    [MNQ_ISA_SCALAR] = 0,
    [MNQ_ISA_AVX2] = X86_AVX2_LEVEL,
    [MNQ_ISA_AVX512VNNI] = X86_AVX512_LEVEL,
    [MNQ_ISA_AMX] = X86_AVX512_LEVEL | CPU_AMX_INT8,
    [MNQ_ISA_NEON] = CPU_NEON,
    [MNQ_ISA_NEONDOT] = CPU_NEON | CPU_NEON_DOT,
    [MNQ_ISA_NEONI8MM] = CPU_NEON | CPU_NEON_DOT | CPU_NEON_I8MM,
};
/* features a level needs to be offered at all (its baseline kernels' needs) */
static const unsigned LEVEL_REQUIRES[MNQ_ISA_COUNT] = {
    [MNQ_ISA_SCALAR] = 0,
    [MNQ_ISA_AVX2] = CPU_AVX2,
    [MNQ_ISA_AVX512VNNI] = CPU_AVX2 | CPU_AVX512 | CPU_AVX512_VNNI,
    [MNQ_ISA_AMX] = CPU_AVX2 | CPU_AVX512 | CPU_AVX512_VNNI | CPU_AMX_INT8,
    [MNQ_ISA_NEON] = CPU_NEON,
    [MNQ_ISA_NEONDOT] = CPU_NEON | CPU_NEON_DOT,
    [MNQ_ISA_NEONI8MM] = CPU_NEON | CPU_NEON_DOT | CPU_NEON_I8MM,
};

static unsigned g_mask;
static unsigned g_cpu; /* CPU_* bits this CPU and OS have */
static char g_features[256];
static pthread_once_t g_detect_once = PTHREAD_ONCE_INIT;

/* The build defines MNQ_HAVE_<GROUP> for each kernel group its compiler could build
 * (isa_levels.txt); a level is offered only when its kernels are in the library. */
#ifndef MNQ_KERNELS_BUILT
#define MNQ_KERNELS_BUILT ""
#endif
#ifndef MNQ_KERNELS_NOT_BUILT
#define MNQ_KERNELS_NOT_BUILT ""
#endif
const char *mnq_kernels_built(void) { return MNQ_KERNELS_BUILT; }
const char *mnq_kernels_not_built(void) { return MNQ_KERNELS_NOT_BUILT; }

/* A level is offered when the kernel group of its name was built. */
static int group_built(const char *name) {
  const char *list = MNQ_KERNELS_BUILT;
  const size_t n = strlen(name);
  for (const char *p = list; (p = strstr(p, name)); p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == 0)) return 1;
  return 0;
}

static unsigned built_levels(void) {
  unsigned mask = 1u << MNQ_ISA_SCALAR;
  for (int i = MNQ_ISA_SCALAR + 1; i < MNQ_ISA_COUNT; i++)
    if (group_built(mnq_isa_name(i))) mask |= 1u << i;
  return mask;
}

static void detect(void) {
  unsigned cpu = 0;
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
  const int avx512 = os_avx512 && ((b7 >> 16) & 1) && ((b7 >> 17) & 1) && ((b7 >> 30) & 1) && ((b7 >> 31) & 1);
  const char *no_vnni = getenv("MNQ_NO_AVXVNNI");
  if (avx2) cpu |= CPU_AVX2;
#ifdef MNQ_HAVE_AVXVNNI /* else this build has no AVX-VNNI kernels: the feature changes nothing */
  if (avx2 && ((a7_1 >> 4) & 1) && !(no_vnni && no_vnni[0] == '1')) cpu |= CPU_AVX_VNNI;
#else
  (void)a7_1, (void)no_vnni;
#endif
  if (avx512) cpu |= CPU_AVX512;
  if (avx512 && ((c7 >> 11) & 1)) cpu |= CPU_AVX512_VNNI;
  if (avx512 && ((c7 >> 1) & 1)) cpu |= CPU_AVX512_VBMI;
  if (os_amx && ((d7 >> 24) & 1) && ((d7 >> 25) & 1) && request_amx_permission()) cpu |= CPU_AMX_INT8;
#endif
#if defined(MNQ_ARM_KERNELS) && defined(__aarch64__)
  /* Advanced SIMD is part of every aarch64 Linux system; the dot product is optional */
  cpu |= CPU_NEON;
  if (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) cpu |= CPU_NEON_DOT;
  if ((cpu & CPU_NEON_DOT) && (getauxval(AT_HWCAP2) & HWCAP2_I8MM)) cpu |= CPU_NEON_I8MM;
#elif defined(MNQ_ARM_KERNELS) && defined(__arm__)
  if (getauxval(AT_HWCAP) & HWCAP_ARM_NEON) cpu |= CPU_NEON;
#endif
  size_t len = 0;
  for (int f = 0; f < CPU_FEATURE_COUNT; f++) {
    const char *name = CPU_FEATURE_NAMES[f];
#if defined(MNQ_ARM_KERNELS) && defined(__arm__)
    if (1u << f == CPU_NEON) name = "neon";
#endif
    if (cpu & (1u << f)) len += snprintf(g_features + len, sizeof(g_features) - len, "%s%s", len ? " " : "", name);
  }
  if (!len) snprintf(g_features, sizeof(g_features), "none beyond scalar");
  unsigned mask = 0;
  for (int isa = 0; isa < MNQ_ISA_COUNT; isa++)
    if ((LEVEL_REQUIRES[isa] & ~cpu) == 0) mask |= 1u << isa;
  g_cpu = cpu;
  g_mask = mask & built_levels();
}

/* Once per process: two first callers racing through detect() would both append to g_features. */
static void ensure_detected(void) { pthread_once(&g_detect_once, detect); }

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
  static const char *names[MNQ_ISA_COUNT] = {"scalar", "avx2", "avx512vnni", "amx", "neon", "neondot", "neoni8mm"};
  return (isa >= 0 && isa < MNQ_ISA_COUNT) ? names[isa] : "unknown";
}

/* CPU features each peak probe's instructions need (enum mnq_peak order) */
static const unsigned PEAK_NEEDS[MNQ_PEAK_COUNT] = {CPU_AVX2, CPU_AVX2, CPU_AVX2 | CPU_AVX_VNNI,
                                                   CPU_AVX2 | CPU_AVX512 | CPU_AVX512_VNNI,
                                                   CPU_AVX2 | CPU_AVX512 | CPU_AVX512_VNNI | CPU_AMX_INT8};

/* the kernel group (isa_levels.txt) each probe's loop is compiled in */
static const char *const PEAK_GROUP[MNQ_PEAK_COUNT] = {"avx2", "avx2", "avxvnni", "avx512vnni", "amx"};

int mnq_peak_available(int which) {
  ensure_detected();
#ifdef MNQ_X86_KERNELS
  return which >= 0 && which < MNQ_PEAK_COUNT && (PEAK_NEEDS[which] & ~g_cpu) == 0 && group_built(PEAK_GROUP[which]);
#else
  (void)which, (void)PEAK_NEEDS, (void)PEAK_GROUP;
  return 0;
#endif
}

int mnq_peak_of_isa(int isa) {
  ensure_detected();
  if (isa < 0 || isa >= MNQ_ISA_COUNT || !(g_mask & (1u << isa))) return -1;
  switch (isa) {
    case MNQ_ISA_AVX2: return (g_cpu & CPU_AVX_VNNI) ? MNQ_PEAK_VPDPBUSD_YMM : MNQ_PEAK_VPMADDWD_YMM;
    case MNQ_ISA_AVX512VNNI: return MNQ_PEAK_VPDPBUSD_ZMM;
    case MNQ_ISA_AMX: return MNQ_PEAK_TDPBUSD;
    default: return -1;
  }
}

#define USE(fn) (L->kernel = fn, L->kernel_name = #fn)
#define USE_EXPANDED(fn) USE(fn) /* fn a macro naming the kernel */

/* Whether a kernel needing `needs` (CPU_* bits) may run at this level on this CPU. */
static inline int level_allows(int isa, unsigned needs) {
  ensure_detected();
  return isa >= 0 && isa < MNQ_ISA_COUNT && (needs & ~(LEVEL_PERMITS[isa] & g_cpu)) == 0;
}

/* Each op's choice lives in its own function: the fastest kernel the level allows
 * (level_allows with the features it needs) that handles this layer's shape, else the scalar oracle. A kernel that
 * needs packed weights or scratch sets L->packed / L->scratch_bytes here.
 *
 * Per-channel requantization (int8 models, channel_multipliers != NULL) is read by
 * the scalar oracle, the AVX2 and the NEON kernels; the AVX-512 VNNI, AMX and AVX-VNNI
 * kernels requantize per tensor, so on those levels a per-channel layer takes the
 * AVX2 kernels (every such CPU has AVX2). */
static int per_channel(const mnq_layer *L) { return L->d.channel_multipliers != NULL; }
static int level_for(const mnq_layer *L, int isa) {
  return per_channel(L) && (isa == MNQ_ISA_AVX512VNNI || isa == MNQ_ISA_AMX) ? MNQ_ISA_AVX2 : isa;
}

#ifdef MNQ_X86_KERNELS
/* What each family of x86 kernels needs (the AMX kernels run the AVX-512 VNNI
 * microkernel on products of few rows). */
#define NEEDS_AVX2 CPU_AVX2
#define NEEDS_AVXVNNI (CPU_AVX2 | CPU_AVX_VNNI)
#define NEEDS_AVX512VNNI (CPU_AVX2 | CPU_AVX512 | CPU_AVX512_VNNI)
#define NEEDS_AMX (NEEDS_AVX512VNNI | CPU_AMX_INT8)
#endif

/* Pointwise layers, and convs as a GEMM over im2col rows: the zero-point term is folded
 * over every tap, padding taps included (im2col fills them with in_zp). */
int mnq_fold_bias(mnq_layer *L) {
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

#ifdef MNQ_ARM_KERNELS
/* The ARM kernels run from their packed copy alone (weights, bias, requantization). */
static int arm_packed(mnq_layer *L, int prepare_rc) {
  L->packed_only = prepare_rc == 0;
  return prepare_rc;
}

/* Pointwise layers and convs (im2col rows) share one GEMM per ARM level: 1 when the
 * level has one (*rc: its prepare's result), 0 when the layer goes on to another kernel. */
static int select_arm_gemm(mnq_layer *L, int isa, int *rc) {
#ifdef MNQ_HAVE_NEONI8MM
  if (isa >= MNQ_ISA_NEONI8MM) {
    USE(mnq_gemm_u8_4x16c8__neoni8mm);
    *rc = arm_packed(L, mnq_gemm_u8_prepare__neoni8mm(L));
    return 1;
  }
#endif
#ifdef MNQ_HAVE_NEONDOT
  if (isa >= MNQ_ISA_NEONDOT) {
    USE(mnq_gemm_u8_4x16c4__neondot);
    *rc = arm_packed(L, mnq_gemm_u8_prepare__neondot(L));
    return 1;
  }
#endif
#ifdef MNQ_HAVE_NEON
  if (isa >= MNQ_ISA_NEON) {
    USE_EXPANDED(MNQ_ARM_NEON_GEMM);
    *rc = arm_packed(L, mnq_gemm_u8_prepare__neon(L));
    return 1;
  }
#endif
  (void)L, (void)isa, (void)rc;
  return 0;
}
#endif

static int select_conv(mnq_layer *L, int isa) {
#ifdef MNQ_X86_KERNELS
  const mnq_layer_desc *d = &L->d;
  const int k = d->k_h * d->k_w * d->in_c;
  isa = level_for(L, isa);
#ifdef MNQ_HAVE_AMX
  if (level_allows(isa, NEEDS_AMX)) {
    if (mnq_fold_bias(L) || !(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, k, d->w_zp,
                                                         MNQ_AMX_KALIGN(k), 32)))
      return -1;
    L->scratch_bytes = MNQ_AMX_SCRATCH(k, MNQ_IM2COL_ROWS);
    USE(mnq_conv_u8_im2col_32x32__amx);
    return 0;
  }
#endif
#ifdef MNQ_HAVE_AVX512VNNI
  if (level_allows(isa, NEEDS_AVX512VNNI)) {
    if (mnq_fold_bias(L) || !(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, k, d->w_zp, 4, 16)))
      return -1;
    L->scratch_bytes = (size_t)MNQ_IM2COL_ROWS * ((k + 3) & ~3);
    USE(mnq_conv_u8_im2col_6x64__avx512vnni);
    return 0;
  }
#endif
#ifdef MNQ_HAVE_AVXVNNI
  if (level_allows(isa, NEEDS_AVXVNNI) && !per_channel(L)) {
    if (mnq_fold_bias(L) || !(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, k, d->w_zp, 4, 16)))
      return -1;
    L->scratch_bytes = MNQ_AVXVNNI_CONV_SCRATCH(k);
    USE(mnq_conv_u8_im2col_5x16__avxvnni);
    return 0;
  }
#endif
#ifdef MNQ_HAVE_AVX2
  if (level_allows(isa, NEEDS_AVX2)) {
    if (mnq_fold_bias(L) || !(L->packed = mnq_gemm_pack_i16(d->weights, L->bias_folded, d->out_c, k, d->w_zp,
                                                             d->channel_multipliers, d->channel_shifts)))
      return -1;
    L->scratch_bytes = MNQ_AVX2_CONV_SCRATCH(k);
    USE(mnq_conv_u8_im2col_6x16c2__avx2);
    return 0;
  }
#endif
#endif
#ifdef MNQ_ARM_KERNELS
  int rc;
  if (select_arm_gemm(L, isa, &rc)) return rc;
#endif
  (void)isa;
  USE(mnq_conv_u8__scalar);
  return 0;
}

static int select_pointwise(mnq_layer *L, int isa) {
  isa = level_for(L, isa);
#ifdef MNQ_ARM_KERNELS
  int rc;
  if (select_arm_gemm(L, isa, &rc)) return rc;
#endif
#ifdef MNQ_X86_KERNELS
  const mnq_layer_desc *d = &L->d;
  /* AMX with a K-wide tile beats VNNI from K=32 (first pointwise of MobileNet V1 1.0) */
#ifdef MNQ_HAVE_AMX
  if (level_allows(isa, NEEDS_AMX) && d->in_c >= 32) {
    if (!(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, d->in_c, d->w_zp,
                                    MNQ_AMX_KALIGN(d->in_c), 32)))
      return -1;
    L->scratch_bytes = MNQ_AMX_SCRATCH(d->in_c, 32);
    USE(mnq_pwconv_u8_32x32__amx);
    return 0;
  }
#endif
#ifdef MNQ_HAVE_AVX512VNNI
  if (level_allows(isa, NEEDS_AVX512VNNI)) {
    if (!(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, d->in_c, d->w_zp, 4, 16))) return -1;
    USE(mnq_pwconv_u8_6x64__avx512vnni);
    return 0;
  }
#endif
#ifdef MNQ_HAVE_AVXVNNI
  if (level_allows(isa, NEEDS_AVXVNNI) && !per_channel(L)) {
    if (!(L->packed = mnq_gemm_pack(d->weights, L->bias_folded, d->out_c, d->in_c, d->w_zp, 4, 16))) return -1;
    USE(mnq_pwconv_u8_5x16__avxvnni);
    return 0;
  }
#endif
#ifdef MNQ_HAVE_AVX2
  if (level_allows(isa, NEEDS_AVX2)) {
    if (!(L->packed = mnq_gemm_pack_i16(d->weights, L->bias_folded, d->out_c, d->in_c, d->w_zp,
                                        d->channel_multipliers, d->channel_shifts)))
      return -1;
    L->scratch_bytes = MNQ_AVX2_SCRATCH(d->in_c);
    USE(mnq_pwconv_u8_6x16c2__avx2);
    return 0;
  }
#endif
#endif
  (void)isa;
  USE(mnq_pwconv_u8__scalar);
  return 0;
}

static int select_depthwise(mnq_layer *L, int isa) {
  isa = level_for(L, isa);
#ifdef MNQ_X86_KERNELS
#ifdef MNQ_HAVE_AVX512VNNI
  if (mnq_dw3x3_fits(&L->d) && level_allows(isa, NEEDS_AVX512VNNI | CPU_AVX512_VBMI)) {
    /* > 0: accumulators too large for the 3x3 requantization (absurd multipliers) */
    const int rc = mnq_dwconv3x3_u8_prepare__avx512vnni(L);
    if (rc < 0) return -1;
    if (rc == 0) {
      if (L->d.stride_h == 1) USE(mnq_dwconv3x3s1_u8_32x2__avx512vnni);
      else USE(mnq_dwconv3x3s2_u8_32x2__avx512vnni);
      return 0;
    }
  }
#endif
#ifdef MNQ_HAVE_AVX2
  if (mnq_dw3x3_fits(&L->d) && level_allows(isa, NEEDS_AVX2)) {
    const int rc = mnq_dwconv3x3_u8_prepare__avx2(L);
    if (rc < 0) return -1;
    if (rc == 0) {
      if (L->d.stride_h == 1) USE(mnq_dwconv3x3s1_u8__avx2);
      else USE(mnq_dwconv3x3s2_u8__avx2);
      return 0;
    }
  }
#endif
#endif
#ifdef MNQ_HAVE_NEON
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
