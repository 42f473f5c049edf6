/* Scalar average pool, softmax and reshape-copy. Pooling and softmax are a
 * sliver of the run time, so these also serve as the fast path on every ISA. */
#include "../internal.h"

void mnq_avgpool_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                            const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->in_c;
  long r0, r1;
  mnq_partition((long)batch * d->out_h, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int oy = (int)(r % d->out_h);
    const int y0 = oy * d->stride_h - d->pad_top, x_pad = d->pad_left;
    const int ky0 = y0 < 0 ? -y0 : 0;
    const int ky1 = d->in_h - y0 < d->k_h ? d->in_h - y0 : d->k_h;
    for (int ox = 0; ox < d->out_w; ox++) {
      const int x0 = ox * d->stride_w - x_pad;
      const int kx0 = x0 < 0 ? -x0 : 0;
      const int kx1 = d->in_w - x0 < d->k_w ? d->in_w - x0 : d->k_w;
      const int32_t count = (ky1 - ky0) * (kx1 - kx0);
      for (int c = 0; c < C; c++) {
        int32_t sum = 0;
        for (int ky = ky0; ky < ky1; ky++)
          for (int kx = kx0; kx < kx1; kx++)
            sum += in[((n * d->in_h + y0 + ky) * d->in_w + x0 + kx) * C + c];
        int32_t y = mnq_pool_average(sum, count, d->pool_center);
        if (y < d->act_min) y = d->act_min;
        if (y > d->act_max) y = d->act_max;
        out[(r * d->out_w + ox) * C + c] = (uint8_t)y;
      }
    }
  }
}

/* ---- gemmlowp fixed-point arithmetic used by the uint8 softmax ----
 * A "Qn" value has n integer bits and 31-n fractional bits in an int32.
 * Additions wrap as in gemmlowp (computed unsigned to stay defined C). */
static inline int32_t fx_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t fx_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* x * 2^e with saturation (e > 0), or rounded x / 2^-e (e < 0). */
static int32_t fx_mul_pot(int32_t x, int e) {
  if (e < 0) return mnq_rdpot(x, -e);
  const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return (int32_t)((uint32_t)x << e);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0. */
static int32_t fx_exp_quarter_interval(int32_t a) {
  const int32_t constant_term = 1895147668;     /* exp(-1/8) */
  const int32_t one_third = 715827883;
  const int32_t x = fx_add(a, 1 << 28);         /* a + 1/8 */
  const int32_t x2 = mnq_srdhm(x, x);
  const int32_t x3 = mnq_srdhm(x2, x);
  const int32_t x4 = mnq_srdhm(x2, x2);
  const int32_t x4_over_4 = fx_mul_pot(x4, -2);
  const int32_t poly = fx_mul_pot(fx_add(mnq_srdhm(fx_add(x4_over_4, x3), one_third), x2), -1);
  return fx_add(constant_term, mnq_srdhm(constant_term, fx_add(x, poly)));
}

/* exp(a) for a <= 0; a in Q5, result in Q0. */
static int32_t fx_exp_on_negative_values(int32_t a) {
  const int frac_bits = 26;
  const int32_t one_quarter = 1 << (frac_bits - 2);
  const int32_t a_mod_quarter_minus_quarter = fx_sub(a & (one_quarter - 1), one_quarter);
  int32_t result = fx_exp_quarter_interval(fx_mul_pot(a_mod_quarter_minus_quarter, 5));
  const int32_t remainder = fx_sub(a_mod_quarter_minus_quarter, a);
  /* exp(-2^k) for k = -2..4, applied for each set bit of the remainder */
  static const int32_t exp_neg_pot[7] = {1672461947, 1302514674, 790015084, 290630308,
                                         39332535,   720401,     242};
  for (int k = -2; k <= 4; k++)
    if (remainder & (1 << (frac_bits + k))) result = mnq_srdhm(result, exp_neg_pot[k + 2]);
  return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1); a in Q0, result in Q0 (Newton-Raphson on Q2). */
static int32_t fx_one_over_one_plus_x(int32_t a) {
  int64_t sum = (int64_t)a + INT32_MAX;
  const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
  const int32_t c48_over_17 = 1515870810, cneg32_over_17 = -1010580540;
  const int32_t one_q2 = 1 << 29;
  int32_t x = fx_add(c48_over_17, mnq_srdhm(half_denominator, cneg32_over_17));
  for (int i = 0; i < 3; i++) {
    const int32_t one_minus = fx_sub(one_q2, mnq_srdhm(half_denominator, x));
    x = fx_add(x, fx_mul_pot(mnq_srdhm(x, one_minus), 2));
  }
  return fx_mul_pot(x, 1);  /* x/2 reinterpreted from Q2 to Q1, rescaled to Q0 */
}

static int count_leading_zeros(uint32_t x) { return x ? __builtin_clz(x) : 32; }

int32_t mnq_softmax_exp(const mnq_layer_desc *d, int32_t diff) {
  return fx_exp_on_negative_values(mnq_srdhm(diff * (1 << d->softmax_left_shift), d->softmax_multiplier));
}

void mnq_softmax_reciprocal(int32_t sum_of_exps, int32_t *shifted_scale, int *exponent) {
  const int headroom_plus_one = count_leading_zeros((uint32_t)sum_of_exps);
  const int num_bits_over_unit = MNQ_SOFTMAX_ACCUM_INT_BITS - headroom_plus_one;
  const int32_t shifted_sum_minus_one =
      (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31));
  *shifted_scale = fx_one_over_one_plus_x(shifted_sum_minus_one);
  *exponent = num_bits_over_unit + 31 - 8;
}

void mnq_softmax_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                            const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int depth = d->out_c;
  long r0, r1;
  mnq_partition((long)batch * d->out_h * d->out_w, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const uint8_t *x = in + r * depth;
    uint8_t *y = out + r * depth;
    int32_t max_in_row = 0;
    for (int c = 0; c < depth; c++) if (x[c] > max_in_row) max_in_row = x[c];

    int32_t sum_of_exps = 0;  /* Q12 */
    for (int c = 0; c < depth; c++) {
      const int32_t diff = (int32_t)x[c] - max_in_row;
      if (diff >= d->softmax_diff_min)
        sum_of_exps = fx_add(sum_of_exps, fx_mul_pot(mnq_softmax_exp(d, diff), -MNQ_SOFTMAX_ACCUM_INT_BITS));
    }
    int32_t shifted_scale;
    int exponent;
    mnq_softmax_reciprocal(sum_of_exps, &shifted_scale, &exponent);

    for (int c = 0; c < depth; c++) {
      const int32_t diff = (int32_t)x[c] - max_in_row;
      int32_t v = 0;
      if (diff >= d->softmax_diff_min) {
        v = mnq_rdpot(mnq_srdhm(shifted_scale, mnq_softmax_exp(d, diff)), exponent);
        if (v > 255) v = 255;
        if (v < 0) v = 0;
      }
      y[c] = (uint8_t)v;
    }
  }
}

void mnq_copy_u8(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                 const mnq_work *w) {
  const long per_image = (long)L->d.out_h * L->d.out_w * L->d.out_c;
  long b0, b1;
  mnq_partition(batch, w, &b0, &b1);
  if (b1 > b0) memcpy(out + b0 * per_image, in + b0 * per_image, (size_t)((b1 - b0) * per_image));
}
