/* Portable fast paths for average pool and softmax: plain C shaped so the compiler
 * vectorizes it, exact by construction (same integer steps as the scalar oracle). */
#include <stdlib.h>

#include "../internal.h"

/* The softmax input differences max - x take only 256 values, so every
 * exp(-d) is computed once per layer at plan time. */
int mnq_softmax_u8_lut_pack(mnq_layer *L) {
  int32_t *table = malloc(256 * sizeof(int32_t));
  if (!table) return -1;
  for (int d = 0; d < 256; d++)
    table[d] = -d >= L->d.softmax_diff_min ? mnq_softmax_exp(&L->d, -d) : 0;
  L->packed = table;
  return 0;
}

void mnq_softmax_u8_lut(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                        const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int32_t *table = L->packed;
  const int depth = d->out_c;
  const int cutoff = -d->softmax_diff_min;  /* differences above this give 0 */
  long r0, r1;
  mnq_partition((long)batch * d->out_h * d->out_w, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const uint8_t *x = in + r * depth;
    uint8_t *y = out + r * depth;
    int max_in_row = 0;
    for (int c = 0; c < depth; c++) max_in_row = x[c] > max_in_row ? x[c] : max_in_row;
    /* histogram of differences: the Q12 sum then needs 256 terms, not depth */
    int32_t count[256] = {0};
    for (int c = 0; c < depth; c++) count[max_in_row - x[c]]++;
    uint32_t sum_of_exps = 0;  /* wraps like gemmlowp's int32 adds */
    for (int k = 0; k < 256 && k <= cutoff; k++)
      if (count[k]) sum_of_exps += (uint32_t)count[k] * (uint32_t)mnq_rdpot(table[k], MNQ_SOFTMAX_ACCUM_INT_BITS);
    int32_t shifted_scale;
    int exponent;
    mnq_softmax_reciprocal((int32_t)sum_of_exps, &shifted_scale, &exponent);
    uint8_t value[256];
    for (int k = 0; k < 256; k++) {
      int32_t v = k <= cutoff ? mnq_rdpot(mnq_srdhm(shifted_scale, table[k]), exponent) : 0;
      value[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    for (int c = 0; c < depth; c++) y[c] = value[max_in_row - x[c]];
  }
}

/* Channel-innermost sums so the adds run across contiguous NHWC channels. */
void mnq_avgpool_u8_channels(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                             const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->in_c;
  int32_t *sum = (int32_t *)w->scratch;  /* C entries, see select in dispatch.c */
  long r0, r1;
  mnq_partition((long)batch * d->out_h, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int y0 = (int)(r % d->out_h) * d->stride_h - d->pad_top;
    const int ky0 = y0 < 0 ? -y0 : 0, ky1 = d->in_h - y0 < d->k_h ? d->in_h - y0 : d->k_h;
    for (int ox = 0; ox < d->out_w; ox++) {
      const int x0 = ox * d->stride_w - d->pad_left;
      const int kx0 = x0 < 0 ? -x0 : 0, kx1 = d->in_w - x0 < d->k_w ? d->in_w - x0 : d->k_w;
      const int32_t count = (ky1 - ky0) * (kx1 - kx0);
      for (int c = 0; c < C; c++) sum[c] = 0;
      for (int ky = ky0; ky < ky1; ky++)
        for (int kx = kx0; kx < kx1; kx++) {
          const uint8_t *px = in + ((n * d->in_h + y0 + ky) * d->in_w + x0 + kx) * C;
          for (int c = 0; c < C; c++) sum[c] += px[c];
        }
      uint8_t *o = out + (r * d->out_w + ox) * C;
      for (int c = 0; c < C; c++) {
        int32_t v = mnq_pool_average(sum[c], count, d->pool_center);
        v = v < d->act_min ? d->act_min : v;
        o[c] = (uint8_t)(v > d->act_max ? d->act_max : v);
      }
    }
  }
}
