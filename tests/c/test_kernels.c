/* Every fast kernel this build has vs the scalar oracle, byte for byte, on single-
 * layer nets with swept shapes, zero points, multipliers, activation ranges,
 * batches and thread counts (the C twin of tests/test_depthwise_kernels.py, so it
 * runs under qemu without Python). On NEON builds it also checks the vector
 * requantization against mnq_mul_by_multiplier on edge values.
 * Prints "N passed, M failed"; exit status 1 if anything failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#ifdef __ARM_NEON
#include "arm/requant_neon.h"
#endif

static int passed, failed;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void) { /* xorshift64*: reproducible on every target */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint32_t)(hi - lo + 1)); }

/* TFLite QuantizeMultiplier */
static void quantize_multiplier(double real, int32_t *m, int32_t *shift) {
  int e;
  const double q = frexp(real, &e);
  int64_t qm = llround(q * (double)(1ll << 31));
  if (qm == (1ll << 31)) qm /= 2, e++;
  *m = (int32_t)qm;
  *shift = e;
}

/* TensorFlow SAME/VALID: output size and padding before */
static void pad_rule(int same, int in, int k, int s, int *out, int *before) {
  if (same) {
    *out = (in + s - 1) / s;
    const int total = (*out - 1) * s + k - in;
    *before = total > 0 ? total / 2 : 0;
  } else {
    *out = (in - k) / s + 1;
    *before = 0;
  }
}

typedef struct {
  mnq_layer_desc d;
  uint8_t *weights;
  int32_t *bias;
  int32_t *channel_multipliers, *channel_shifts; /* NULL: per-tensor */
} case_t;

static const double requant_reals[] = {0.99, 0.02, 1e-6, 0.5, 1.0 / 1024, 1.7, 3.0e-3};

static void random_multiplier(int32_t *m, int32_t *shift) {
  quantize_multiplier(requant_reals[rnd() % 7] * (rnd() % 2 ? 1.0 : 0.5 + (rnd() % 1000) / 1000.0), m, shift);
}

static void random_quant(mnq_layer_desc *d) {
  static const int zps[] = {0, 128, 255};
  d->in_zp = rnd() % 3 ? zps[rnd() % 3] : rnd_in(0, 255);
  d->w_zp = rnd() % 3 ? zps[rnd() % 3] : rnd_in(0, 255);
  d->out_zp = rnd() % 3 ? zps[rnd() % 3] : rnd_in(0, 255);
  random_multiplier(&d->multiplier, &d->shift);
  switch (rnd() % 3) {
    case 0: d->act_min = 0, d->act_max = 255; break;
    case 1: d->act_min = d->out_zp, d->act_max = d->out_zp + 40 > 255 ? 255 : d->out_zp + 40; break; /* ReLU6-like */
    default: d->act_min = 100, d->act_max = 140;
  }
}

static case_t make_case(int op, int h, int w, int cin, int cout, int k, int stride, int same) {
  case_t t;
  memset(&t, 0, sizeof(t));
  mnq_layer_desc *d = &t.d;
  d->op = op;
  d->in_h = h, d->in_w = w, d->in_c = cin, d->out_c = cout;
  d->k_h = d->k_w = k;
  d->stride_h = d->stride_w = stride;
  pad_rule(same, h, k, stride, &d->out_h, &d->pad_top);
  pad_rule(same, w, k, stride, &d->out_w, &d->pad_left);
  random_quant(d);
  const size_t nw = op == MNQ_OP_DEPTHWISE ? (size_t)k * k * cout : (size_t)cout * k * k * cin;
  t.weights = malloc(nw);
  for (size_t i = 0; i < nw; i++) t.weights[i] = (uint8_t)rnd();
  if (rnd() % 8) {
    t.bias = malloc(sizeof(int32_t) * (size_t)cout);
    for (int i = 0; i < cout; i++) t.bias[i] = rnd_in(-20000, 20000);
  }
  d->weights = t.weights;
  d->bias = t.bias;
  return t;
}

/* The same case with its own multiplier and shift for every output channel (int8
 * models' per-channel weight scales). */
static case_t per_channel(case_t t) {
  const int C = t.d.out_c;
  t.channel_multipliers = malloc(sizeof(int32_t) * (size_t)C);
  t.channel_shifts = malloc(sizeof(int32_t) * (size_t)C);
  for (int c = 0; c < C; c++) random_multiplier(&t.channel_multipliers[c], &t.channel_shifts[c]);
  t.d.channel_multipliers = t.channel_multipliers;
  t.d.channel_shifts = t.channel_shifts;
  return t;
}

/* Run one layer at `isa`; returns the output (caller frees) or NULL. */
static uint8_t *run(const mnq_layer_desc *d, const uint8_t *x, int batch, int isa, int threads, const char **kernel) {
  char err[256];
  mnq_net *net = mnq_net_create(d, 1, isa, err, sizeof(err));
  if (!net) {
    printf("FAIL create at %s: %s\n", mnq_isa_name(isa), err);
    return NULL;
  }
  mnq_net_set_adapt_threads(net, 0); /* the tiling of exactly `threads`, whatever else the machine runs */
  const size_t out_bytes = (size_t)batch * d->out_h * d->out_w * d->out_c;
  uint8_t *out = malloc(out_bytes), *scratch = malloc(mnq_net_scratch_bytes(net, threads) + 1);
  uint8_t *tensors[2] = {(uint8_t *)x, out};
  *kernel = mnq_net_kernel_name(net, 0);
  const int rc = mnq_net_run(net, batch, tensors, scratch, threads, NULL);
  free(scratch);
  mnq_net_destroy(net);
  if (rc) free(out);
  return rc ? NULL : out;
}

/* Scalar vs every other supported level on one case. */
static void check(case_t t, int batch, int threads, const char *what) {
  const mnq_layer_desc *d = &t.d;
  const size_t in_bytes = (size_t)batch * d->in_h * d->in_w * d->in_c;
  const size_t out_bytes = (size_t)batch * d->out_h * d->out_w * d->out_c;
  uint8_t *x = malloc(in_bytes);
  const int extreme = rnd() % 10; /* now and then all-0 or all-255 inputs */
  for (size_t i = 0; i < in_bytes; i++) x[i] = extreme == 0 ? 0 : extreme == 1 ? 255 : (uint8_t)rnd();
  const char *ref_name, *name;
  uint8_t *ref = run(d, x, batch, MNQ_ISA_SCALAR, 1, &ref_name);
  const unsigned mask = mnq_isa_supported_mask();
  for (int isa = 1; isa < MNQ_ISA_COUNT; isa++) {
    if (!(mask & (1u << isa))) continue;
    uint8_t *got = ref ? run(d, x, batch, isa, threads, &name) : NULL;
    size_t bad = 0, first = 0;
    for (size_t i = 0; got && i < out_bytes; i++)
      if (got[i] != ref[i] && !bad++) first = i;
    if (!got || bad) {
      failed++;
      printf("FAIL %s %s: %dx%dx%d->%dx%dx%d k%d s%d batch %d threads %d zp %d/%d/%d M %d shift %d act [%d,%d]: ",
             what, mnq_isa_name(isa), d->in_h, d->in_w, d->in_c, d->out_h, d->out_w, d->out_c, d->k_h, d->stride_h,
             batch, threads, d->in_zp, d->w_zp, d->out_zp, d->multiplier, d->shift, d->act_min, d->act_max);
      if (got) printf("%zu of %zu bytes differ, first at %zu: scalar %d vs %s %d\n", bad, out_bytes, first,
                      ref[first], name, got[first]);
      else printf("did not run\n");
    } else {
      passed++;
    }
    free(got);
  }
  free(ref);
  free(x);
  free(t.weights);
  free(t.bias);
  free(t.channel_multipliers);
  free(t.channel_shifts);
}

/* Output zero point 0, clamp [0, 255], a right shift: the form of MobileNet's ReLU6
 * layers, which the NEON kernels requantize without the zero point and clamp steps. */
static case_t relu6_zp0(case_t t) {
  t.d.out_zp = 0, t.d.act_min = 0, t.d.act_max = 255;
  quantize_multiplier(0.02, &t.d.multiplier, &t.d.shift);
  return t;
}

static void pointwise_sweep(void) {
  for (int i = 0; i < 120; i++) { /* channel tails both sides, small pixel counts */
    const int h = rnd_in(1, 9), w = rnd_in(1, 9);
    check(make_case(MNQ_OP_POINTWISE, h, w, rnd_in(1, 67), rnd_in(1, 67), 1, 1, 0), rnd_in(1, 2), 1, "pointwise");
  }
  const int big[][4] = {{1, 1, 1024, 1001}, {5, 5, 1024, 1024}, {10, 10, 512, 512}, {40, 40, 32, 64},
                        {100, 100, 3, 16}, {7, 11, 16, 16}, {3, 3, 17, 1}};
  for (int i = 0; i < 7; i++)
    check(make_case(MNQ_OP_POINTWISE, big[i][0], big[i][1], big[i][2], big[i][3], 1, 1, 0), 1 + i % 2, 1 + i % 2,
          "pointwise");
  check(relu6_zp0(make_case(MNQ_OP_POINTWISE, 5, 5, 80, 48, 1, 1, 0)), 1, 1, "pointwise relu6");
  check(relu6_zp0(make_case(MNQ_OP_CONV, 9, 11, 3, 32, 3, 2, 1)), 1, 2, "conv relu6");
}

static void conv_sweep(void) {
  /* MobileNet's first layer and its strided / odd-sized relatives */
  check(make_case(MNQ_OP_CONV, 32, 32, 3, 32, 3, 2, 1), 1, 1, "conv");
  check(make_case(MNQ_OP_CONV, 17, 13, 3, 32, 3, 2, 1), 2, 2, "conv");
  for (int i = 0; i < 60; i++) { /* kernel, stride, channels, SAME/VALID, K tails of every k-step */
    const int k = rnd_in(1, 5), stride = rnd_in(1, 3), h = rnd_in(k, 12), w = rnd_in(k, 12);
    check(make_case(MNQ_OP_CONV, h, w, rnd_in(1, 20), rnd_in(1, 40), k, stride, rnd() % 2), rnd_in(1, 2),
          rnd_in(1, 3), "conv");
  }
}

/* int8-style layers: per-output-channel multipliers and shifts on every op. */
static void per_channel_sweep(void) {
  for (int i = 0; i < 30; i++) {
    const int h = rnd_in(1, 9), w = rnd_in(1, 9), c = rnd_in(1, 70);
    check(per_channel(make_case(MNQ_OP_POINTWISE, h, w, rnd_in(1, 70), c, 1, 1, 0)), rnd_in(1, 2), 1,
          "pointwise per-channel");
    check(per_channel(make_case(MNQ_OP_DEPTHWISE, h + 2, w + 2, c, c, 3, rnd_in(1, 2), 1)), 1, rnd_in(1, 2),
          "depthwise per-channel");
    check(per_channel(make_case(MNQ_OP_CONV, h + 2, w + 2, rnd_in(1, 8), c, 3, rnd_in(1, 2), 1)), 1, 1,
          "conv per-channel");
  }
  check(per_channel(make_case(MNQ_OP_POINTWISE, 10, 10, 512, 512, 1, 1, 0)), 1, 2, "pointwise per-channel");
}

static void depthwise_sweep(void) {
  for (int c = 1; c <= 67; c++) /* every channel count, 3x3 stride 1 and 2, SAME and VALID */
    for (int stride = 1; stride <= 2; stride++) {
      const int h = rnd_in(1, 12), w = rnd_in(1, 12), same = (c % 3 != 0) || h < 3 || w < 3;
      check(make_case(MNQ_OP_DEPTHWISE, h, w, c, c, 3, stride, same), 1, 1, "depthwise");
    }
  const int sizes[][2] = {{1, 1}, {2, 2}, {3, 3}, {1, 7}, {7, 1}, {4, 5}, {9, 16}, {33, 20}, {80, 80}};
  for (int i = 0; i < 9; i++)
    for (int stride = 1; stride <= 2; stride++)
      check(make_case(MNQ_OP_DEPTHWISE, sizes[i][0], sizes[i][1], (int[]){8, 33, 16, 3}[i % 4],
                      (int[]){8, 33, 16, 3}[i % 4], 3, stride, 1),
            1 + i % 2, 1 + (i % 3 == 2), "depthwise");
  for (int stride = 1; stride <= 2; stride++)
    check(relu6_zp0(make_case(MNQ_OP_DEPTHWISE, 12, 11, 48, 48, 3, stride, 1)), 1, stride, "depthwise relu6");
  /* other kernel sizes and strides take the same NEON kernel */
  check(make_case(MNQ_OP_DEPTHWISE, 11, 13, 24, 24, 5, 1, 1), 1, 1, "depthwise");
  check(make_case(MNQ_OP_DEPTHWISE, 11, 13, 21, 21, 1, 3, 0), 1, 1, "depthwise");
  check(make_case(MNQ_OP_DEPTHWISE, 9, 9, 16, 16, 3, 3, 1), 2, 1, "depthwise");
}

#ifdef __ARM_NEON
/* The vector requantization vs the scalar definition on rounding ties,
 * saturation and shift extremes. */
static void requant_edges(void) {
  static const int32_t accs[] = {0, 1, -1, 2, -2, 3, -3, 1 << 20, -(1 << 20), (1 << 20) + 1, INT32_MAX, INT32_MIN,
                                 INT32_MIN + 1, INT32_MAX - 1, 65535, -65535, 1 << 30, -(1 << 30), 12345678, -12345678};
  static const int32_t mults[] = {1 << 30, INT32_MAX, 1518500250, 1073741825, 1, 0, (1 << 30) + 12345};
  static const int32_t shifts[] = {0, -1, -2, -5, -13, -30, -31, 1, 2, 7};
  int bad = 0, total = 0;
  for (int m = 0; m < 7; m++)
    for (int s = 0; s < 10; s++) {
      mnq_layer_desc d;
      memset(&d, 0, sizeof(d));
      d.multiplier = mults[m], d.shift = shifts[s], d.act_min = INT32_MIN, d.act_max = INT32_MAX;
      d.out_c = 4;
      mnq_arm_rq arm_rq;
      int32_t arm_rq_mem[3 * 4];
      mnq_arm_rq_fill(&arm_rq, arm_rq_mem, &d, 4);
      for (int a = 0; a < 20 + 400; a += 4) {
        int32_t v[4];
        for (int j = 0; j < 4; j++) v[j] = a + j < 20 ? accs[a + j] : (int32_t)rnd() >> (rnd() % 31);
        /* the prepared per-channel form, general and (where the shift allows it) right-shift-only */
        int32_t got[2][4];
        const int32x4_t m = vld1q_s32(arm_rq.multiplier), l = vld1q_s32(arm_rq.left_shift);
        const int32x4_t r = vld1q_s32(arm_rq.right_shift_neg);
        vst1q_s32(got[0], mnq_arm_rq_scale(vld1q_s32(v), m, l, r, MNQ_RQ_GENERAL));
        vst1q_s32(got[1], mnq_arm_rq_scale(vld1q_s32(v), m, l, r, MNQ_RQ_RIGHT));
        for (int form = 0; form < (arm_rq.form != MNQ_RQ_GENERAL ? 2 : 1); form++)
          for (int j = 0; j < 4; j++) {
            total++;
            if (got[form][j] != mnq_mul_by_multiplier(v[j], d.multiplier, d.shift) && bad++ < 5)
              printf("FAIL requant form %d acc %d M %d shift %d: scalar %d vs neon %d\n", form, v[j], d.multiplier,
                     d.shift, mnq_mul_by_multiplier(v[j], d.multiplier, d.shift), got[form][j]);
          }
      }
    }
  if (bad) failed++;
  else passed++;
  printf("requantization edge values: %d of %d differ\n", bad, total);
}
#endif

int main(int argc, char **argv) {
  if (argc > 1) rng_state ^= strtoull(argv[1], NULL, 0);
  printf("cpu: %s; levels:", mnq_cpu_features());
  for (int isa = 0; isa < MNQ_ISA_COUNT; isa++)
    if (mnq_isa_supported_mask() & (1u << isa)) printf(" %s", mnq_isa_name(isa));
  printf("\n");
#ifdef __ARM_NEON
  requant_edges();
#endif
  pointwise_sweep();
  conv_sweep();
  depthwise_sweep();
  per_channel_sweep();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
