/* Scalar conv, depthwise and pointwise kernels: the definition of TFLite's
 * reference uint8 arithmetic, written for clarity. Taps outside the image
 * (SAME padding) contribute nothing, exactly as in TFLite. */
#include "../internal.h"

void mnq_conv_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                         const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  long r0, r1;
  mnq_partition((long)batch * d->out_h, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int oy = (int)(r % d->out_h);
    for (int ox = 0; ox < d->out_w; ox++) {
      uint8_t *o = out + (r * d->out_w + ox) * d->out_c;
      for (int oc = 0; oc < d->out_c; oc++) {
        int32_t acc = d->bias ? d->bias[oc] : 0;
        for (int ky = 0; ky < d->k_h; ky++) {
          const int iy = oy * d->stride_h - d->pad_top + ky;
          if (iy < 0 || iy >= d->in_h) continue;
          for (int kx = 0; kx < d->k_w; kx++) {
            const int ix = ox * d->stride_w - d->pad_left + kx;
            if (ix < 0 || ix >= d->in_w) continue;
            const uint8_t *x = in + ((n * d->in_h + iy) * d->in_w + ix) * d->in_c;
            const uint8_t *k = d->weights + (((long)oc * d->k_h + ky) * d->k_w + kx) * d->in_c;
            for (int ic = 0; ic < d->in_c; ic++)
              acc += ((int32_t)x[ic] - d->in_zp) * ((int32_t)k[ic] - d->w_zp);
          }
        }
        o[oc] = mnq_requantize_channel(acc, d, oc);
      }
    }
  }
}

void mnq_dwconv_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                           const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c;
  long r0, r1;
  mnq_partition((long)batch * d->out_h, w, &r0, &r1);
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int oy = (int)(r % d->out_h);
    for (int ox = 0; ox < d->out_w; ox++) {
      uint8_t *o = out + (r * d->out_w + ox) * C;
      for (int c = 0; c < C; c++) {
        int32_t acc = d->bias ? d->bias[c] : 0;
        for (int ky = 0; ky < d->k_h; ky++) {
          const int iy = oy * d->stride_h - d->pad_top + ky;
          if (iy < 0 || iy >= d->in_h) continue;
          for (int kx = 0; kx < d->k_w; kx++) {
            const int ix = ox * d->stride_w - d->pad_left + kx;
            if (ix < 0 || ix >= d->in_w) continue;
            const int32_t x = in[((n * d->in_h + iy) * d->in_w + ix) * C + c];
            const int32_t k = d->weights[((long)ky * d->k_w + kx) * C + c];
            acc += (x - d->in_zp) * (k - d->w_zp);
          }
        }
        o[c] = mnq_requantize_channel(acc, d, c);
      }
    }
  }
}

/* 1x1 stride-1 conv as a GEMM over pixels, using the plan's folded bias:
 * sum (x - zx)(w - zw) = sum x (w - zw) - zx * sum (w - zw). */
void mnq_pwconv_u8__scalar(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                           const mnq_work *w) {
  const mnq_layer_desc *d = &L->d;
  const int K = d->in_c, N = d->out_c;
  long m0, m1;
  mnq_partition((long)batch * d->out_h * d->out_w, w, &m0, &m1);
  for (long m = m0; m < m1; m++) {
    const uint8_t *x = in + m * K;
    for (int n = 0; n < N; n++) {
      const uint8_t *k = d->weights + (long)n * K;
      int32_t acc = L->bias_folded[n];
      for (int i = 0; i < K; i++) acc += (int32_t)x[i] * ((int32_t)k[i] - d->w_zp);
      out[m * N + n] = mnq_requantize_channel(acc, d, n);
    }
  }
}
