/* Depthwise 3x3 uint8, stride 1 and 2, AVX-512 VNNI (+VBMI for the byte
 * transpose): vpdpbusd applies three taps of one kernel row per instruction.
 *
 * Tile: 32 channels x 2 output pixels. Each input row is transposed once into
 * a 3-row ring of entries; entry t holds, for 32 channels, the 4 input columns
 * 2*stride*t - pad_left .. +3 as 4 bytes per int32 lane (two zmm of 16
 * lanes), and serves outputs 2t and 2t + 1: with stride 1 as taps in bytes
 * 0..2 and 1..3; with stride 2 as bytes 0..2, and bytes 2..3 plus byte 0 of
 * entry t + 1 (one more vpdpbusd, but half the transposes). Columns and
 * rows outside the image hold the input zero point zx, so every output sees 9
 * taps and the inner loop never branches:
 *   acc = bias - zx * sum9(w - zw) + sum9 x (w - zw)       (exact everywhere).
 * vpdpbusd multiplies u8 x s8, and w - zw only fits s8 for most channels: the
 * rest is split at pack time into extra s8 terms (w - zw = sum of parts), one
 * per kernel row and part that needs it, so blocks whose weights fit pay
 * nothing and a lone outlier tap costs 2 (stride 2: 3) vpdpbusd per 64
 * outputs.
 *
 * Requantization is mnq_requantize() rearranged so that it costs ~8 vector
 * ops (rq_apply; derivation at mnq_dw3x3_rq_fits in dwconv3x3_pack.h). Four accumulators (2 pixels x 2 half-blocks) are narrowed
 * with saturating packs, which also clamp to [0, 255]; the lane -> channel
 * order of the transposes is chosen so the packs land channels in order. */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>

#include "../internal.h"
#include "dwconv3x3_pack.h"

enum { CB = 32 }; /* channels per block */

/* s8 weight patterns per lane: [0] (w0,w1,w2,0) for the even pixel; stride 1:
 * [1] (0,w0,w1,w2) for the odd pixel on the same entry; stride 2: [1]
 * (0,0,w0,w1) on the same entry + [2] (w2,0,0,0) on the next one. */
typedef struct {
  __m512i w[3][3][2]; /* [ky][pattern][half] */
  __m512i bias[2];    /* int32 per lane, bias - zx * sum9(w - zw) */
} blk;

typedef struct {
  __m512i w[3][2]; /* like blk.w[ky] */
  int ky;
  int halves; /* bit h: half h has a nonzero weight (outliers are usually in one) */
  char pad[56];
} extra;

typedef struct {
  int nb;
  blk *blocks;      /* nb */
  extra *extras;    /* nextra, grouped by block */
  int *first_extra; /* nb + 1 */
} packed;

/* Lane j of half h holds channel 8*(j/4) + 4*h + j%4 of the block: after
 * packs_epi32(h0, h1) and packus_epi16(pixel0, pixel1) the bytes of 128-bit
 * lane L are [p0 ch 8L..8L+7 | p1 ch 8L..8L+7], and one vpermq puts p0 in the
 * low 32 bytes and p1 in the high 32, channels in order. */
static inline int lane_channel(int h, int j) { return 8 * (j / 4) + 4 * h + j % 4; }

/* per row and block; entry t starts at column 2 * stride * t - pad_left */
static inline int entries(const mnq_layer_desc *d) { return (d->out_w + 1) / 2 + (d->stride_w == 2); }
static inline size_t ring_row_bytes(const mnq_layer_desc *d, int nb) { return (size_t)nb * entries(d) * 128; }

/* Split v = w - zw (in [-255, 255]) into s8 parts: part 0 is v clamped to s8,
 * part p the clamped remainder after parts < p (at most 3 parts). */
static inline int part(int v, int p) {
  for (int i = 0; i < p; i++) v -= v < -128 ? -128 : v > 127 ? 127 : v;
  return v < -128 ? -128 : v > 127 ? 127 : v;
}

int mnq_dwconv3x3_u8_prepare__avx512vnni(mnq_layer *L) {
  const mnq_layer_desc *d = &L->d;
  const int C = d->out_c, nb = (C + CB - 1) / CB;
  if (!mnq_dw3x3_rq_fits(d)) return 1;
  /* extra terms: one per (block, row, part >= 1) that has a nonzero weight */
  int nextra = 0;
  for (int b = 0; b < nb; b++)
    for (int ky = 0; ky < 3; ky++)
      for (int p = 1; p < 3; p++) {
        int any = 0;
        for (int c = b * CB; c < C && c < (b + 1) * CB; c++)
          for (int kx = 0; kx < 3; kx++) any |= part(d->weights[(ky * 3 + kx) * C + c] - d->w_zp, p) != 0;
        nextra += any;
      }
  /* one spare extra: packing writes a candidate before knowing it is needed */
  const size_t bytes = sizeof(packed) + 64 + nb * sizeof(blk) + (nextra + 1) * sizeof(extra) + (nb + 1) * sizeof(int);
  uint8_t *mem = NULL;
  if (posix_memalign((void **)&mem, 64, bytes)) return -1;
  memset(mem, 0, bytes);
  packed *P = (packed *)mem;
  P->nb = nb;
  P->blocks = (blk *)(mem + ((sizeof(packed) + 63) & ~(size_t)63));
  P->extras = (extra *)(P->blocks + nb);
  P->first_extra = (int *)(P->extras + nextra + 1);
  int e = 0;
  for (int b = 0; b < nb; b++) {
    P->first_extra[b] = e;
    for (int h = 0; h < 2; h++) {
      int32_t *bias = (int32_t *)&P->blocks[b].bias[h];
      for (int j = 0; j < 16; j++) {
        const int c = b * CB + lane_channel(h, j);
        if (c >= C) continue;
        int32_t wsum = 0;
        for (int t = 0; t < 9; t++) wsum += d->weights[t * C + c] - d->w_zp;
        bias[j] = (d->bias ? d->bias[c] : 0) - d->in_zp * wsum;
      }
    }
    for (int ky = 0; ky < 3; ky++)
      for (int p = 0; p < 3; p++) {
        __m512i(*w)[2] = p ? P->extras[e].w : P->blocks[b].w[ky];
        const int s = d->stride_w;
        int any = 0;
        for (int h = 0; h < 2; h++)
          for (int j = 0; j < 16; j++) {
            const int c = b * CB + lane_channel(h, j);
            for (int kx = 0; kx < 3 && c < C; kx++) {
              const int v = part(d->weights[(ky * 3 + kx) * C + c] - d->w_zp, p);
              ((int8_t *)&w[0][h])[4 * j + kx] = (int8_t)v;
              if (s == 1) ((int8_t *)&w[1][h])[4 * j + kx + 1] = (int8_t)v;
              else if (kx < 2) ((int8_t *)&w[1][h])[4 * j + kx + 2] = (int8_t)v;
              else ((int8_t *)&w[2][h])[4 * j] = (int8_t)v;
              any |= (v != 0) << h;
            }
          }
        if (p && any) {
          P->extras[e].ky = ky;
          P->extras[e++].halves = any;
        } else if (p) {
          memset(&P->extras[e], 0, sizeof(extra));
        }
      }
  }
  P->first_extra[nb] = e;
  L->packed = P;
  /* ring of 3 input rows + one row of zx (rows outside the image) */
  L->scratch_bytes = 64 + 4 * ring_row_bytes(d, nb);
  return 0;
}

/* mnq_requantize in ~8 ops: see mnq_dw3x3_rq_fits in dwconv3x3_pack.h. */
typedef struct {
  __m512i m, nudge, hi_idx, right, left1;
  int left, sign_fix;
} rq;

static inline rq rq_init(const mnq_layer_desc *d) {
  const mnq_dw3x3_rq_plan p = mnq_dw3x3_rq_plan_of(d);
  const rq q = {.m = _mm512_set1_epi64(p.multiplier), .nudge = _mm512_set1_epi64(p.nudge),
                .hi_idx = _mm512_set_epi32(31, 15, 29, 13, 27, 11, 25, 9, 23, 7, 21, 5, 19, 3, 17, 1),
                .right = _mm512_set1_epi32(p.right), .left1 = _mm512_set1_epi32(p.left + 1),
                .left = p.left, .sign_fix = p.sign_fix};
  return q;
}

/* acc -> output + out_zp before clamping, int32 lanes */
static inline __m512i rq_apply(__m512i acc, const rq *q) {
  const __m512i a2 = q->left ? _mm512_sllv_epi32(acc, q->left1) : _mm512_add_epi32(acc, acc);
  const __m512i pe = _mm512_add_epi64(_mm512_mul_epi32(a2, q->m), q->nudge);
  const __m512i po = _mm512_add_epi64(_mm512_mul_epi32(_mm512_shuffle_epi32(a2, _MM_PERM_DDBB), q->m), q->nudge);
  __m512i t = _mm512_permutex2var_epi32(pe, q->hi_idx, po);
  if (q->sign_fix) t = _mm512_add_epi32(t, _mm512_srai_epi32(a2, 31));
  return _mm512_srav_epi32(t, q->right);
}

/* ymm of 32 channels of column col (n valid), zx outside the image or channels */
static inline __m256i load_col(const uint8_t *x, int col, const mnq_layer_desc *d, __mmask32 m, __m256i zx) {
  return (col >= 0 && col < d->in_w) ? _mm256_mask_loadu_epi8(zx, m, x + (long)col * d->out_c) : zx;
}

/* One input row -> ring entries (see the top comment). Only this function
 * needs VBMI (vpermt2b); dispatch checks the CPU has it. */
__attribute__((target("avx512vbmi"))) static void transpose_row(const mnq_layer_desc *d, const uint8_t *x, __m512i *q, long cb0, long cb1, int ne) {
  const int C = d->out_c;
  const __m256i zx = _mm256_set1_epi8((char)d->in_zp);
  /* lane j, byte s <- column s, channel lane_channel(h, j): table = [c0|c1] [c2|c3] */
  __m512i idx[2];
  for (int h = 0; h < 2; h++) {
    uint8_t b[64];
    for (int j = 0; j < 16; j++)
      for (int s = 0; s < 4; s++) b[4 * j + s] = (uint8_t)((s >> 1) * 64 + (s & 1) * 32 + lane_channel(h, j));
    idx[h] = _mm512_loadu_si512(b);
  }
  for (long cb = cb0; cb < cb1; cb++) {
    const int n = C - cb * CB < CB ? C - cb * CB : CB;
    const __mmask32 m = n == CB ? 0xFFFFFFFFu : (1u << n) - 1;
    const uint8_t *xc = x + cb * CB;
    for (int t = 0; t < ne; t++) {
      const int col = 2 * d->stride_w * t - d->pad_left;
      __m512i z01, z23;
      if (col >= 0 && col + 3 < d->in_w && n == CB) {
        if (C == CB) {
          z01 = _mm512_loadu_si512(xc + (long)col * C);
          z23 = _mm512_loadu_si512(xc + (long)(col + 2) * C);
        } else {
          const uint8_t *p = xc + (long)col * C;
          z01 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)p)),
                                   _mm256_loadu_si256((const __m256i *)(p + C)), 1);
          z23 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2 * C))),
                                   _mm256_loadu_si256((const __m256i *)(p + 3 * C)), 1);
        }
      } else {
        z01 = _mm512_inserti64x4(_mm512_castsi256_si512(load_col(xc, col, d, m, zx)), load_col(xc, col + 1, d, m, zx), 1);
        z23 = _mm512_inserti64x4(_mm512_castsi256_si512(load_col(xc, col + 2, d, m, zx)), load_col(xc, col + 3, d, m, zx), 1);
      }
      q[(cb * ne + t) * 2] = _mm512_permutex2var_epi8(z01, idx[0], z23);
      q[(cb * ne + t) * 2 + 1] = _mm512_permutex2var_epi8(z01, idx[1], z23);
    }
  }
}

/* One output row of one 32-channel block; r[ky] = its ring entries of kernel row ky. */
static inline __attribute__((always_inline)) void block_row(const mnq_layer_desc *d, const blk *B, const extra *x0,
                                                            const extra *x1, const __m512i *const r[3], uint8_t *o,
                                                            int cb, const rq *q, const int s) {
  const int C = d->out_c, ow = d->out_w, n = C - cb * CB < CB ? C - cb * CB : CB;
  const __mmask32 m = n == CB ? 0xFFFFFFFFu : (1u << n) - 1;
  const __m512i perm = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);
  const __m512i lo = _mm512_set1_epi8((char)d->act_min), hi = _mm512_set1_epi8((char)d->act_max);
  const __m512i *ra = r[0], *rb = r[1], *rc = r[2];
  const __m512i wa0 = B->w[0][0][0], wa1 = B->w[0][0][1], wb0 = B->w[1][0][0], wb1 = B->w[1][0][1];
  const __m512i wc0 = B->w[2][0][0], wc1 = B->w[2][0][1];
  const __m512i va0 = B->w[0][1][0], va1 = B->w[0][1][1], vb0 = B->w[1][1][0], vb1 = B->w[1][1][1];
  const __m512i vc0 = B->w[2][1][0], vc1 = B->w[2][1][1];
  for (int ox = 0; ox < ow; ox += 2) {
    const int t = ox; /* this pair's entry: vectors t (half 0) and t + 1 (half 1) */
    __m512i e0 = _mm512_dpbusd_epi32(B->bias[0], ra[t], wa0);
    __m512i e1 = _mm512_dpbusd_epi32(B->bias[1], ra[t + 1], wa1);
    __m512i o0 = _mm512_dpbusd_epi32(B->bias[0], ra[t], va0);
    __m512i o1 = _mm512_dpbusd_epi32(B->bias[1], ra[t + 1], va1);
    e0 = _mm512_dpbusd_epi32(e0, rb[t], wb0);
    e1 = _mm512_dpbusd_epi32(e1, rb[t + 1], wb1);
    o0 = _mm512_dpbusd_epi32(o0, rb[t], vb0);
    o1 = _mm512_dpbusd_epi32(o1, rb[t + 1], vb1);
    e0 = _mm512_dpbusd_epi32(e0, rc[t], wc0);
    e1 = _mm512_dpbusd_epi32(e1, rc[t + 1], wc1);
    o0 = _mm512_dpbusd_epi32(o0, rc[t], vc0);
    o1 = _mm512_dpbusd_epi32(o1, rc[t + 1], vc1);
    if (s == 2) {
      o0 = _mm512_dpbusd_epi32(o0, ra[t + 2], B->w[0][2][0]);
      o1 = _mm512_dpbusd_epi32(o1, ra[t + 3], B->w[0][2][1]);
      o0 = _mm512_dpbusd_epi32(o0, rb[t + 2], B->w[1][2][0]);
      o1 = _mm512_dpbusd_epi32(o1, rb[t + 3], B->w[1][2][1]);
      o0 = _mm512_dpbusd_epi32(o0, rc[t + 2], B->w[2][2][0]);
      o1 = _mm512_dpbusd_epi32(o1, rc[t + 3], B->w[2][2][1]);
    }
    for (const extra *x = x0; x < x1; x++) {
      const __m512i *rx = r[x->ky];
      if (x->halves & 1) {
        e0 = _mm512_dpbusd_epi32(e0, rx[t], x->w[0][0]);
        o0 = _mm512_dpbusd_epi32(o0, rx[t], x->w[1][0]);
        if (s == 2) o0 = _mm512_dpbusd_epi32(o0, rx[t + 2], x->w[2][0]);
      }
      if (x->halves & 2) {
        e1 = _mm512_dpbusd_epi32(e1, rx[t + 1], x->w[0][1]);
        o1 = _mm512_dpbusd_epi32(o1, rx[t + 1], x->w[1][1]);
        if (s == 2) o1 = _mm512_dpbusd_epi32(o1, rx[t + 3], x->w[2][1]);
      }
    }
    /* packs saturate monotonically, so packs + packus clamp to [0, 255] exactly */
    const __m512i pe = _mm512_packs_epi32(rq_apply(e0, q), rq_apply(e1, q));
    const __m512i pod = _mm512_packs_epi32(rq_apply(o0, q), rq_apply(o1, q));
    __m512i y = _mm512_permutexvar_epi64(perm, _mm512_packus_epi16(pe, pod));
    y = _mm512_min_epu8(_mm512_max_epu8(y, lo), hi);
    uint8_t *dst = o + (long)ox * C + cb * CB;
    if (C == CB && ox + 1 < ow) {
      _mm512_storeu_si512(dst, y);
    } else {
      _mm256_mask_storeu_epi8(dst, m, _mm512_castsi512_si256(y));
      if (ox + 1 < ow) _mm256_mask_storeu_epi8(dst + C, m, _mm512_extracti64x4_epi64(y, 1));
    }
  }
}

static inline void dwconv3x3(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch, const mnq_work *w,
                             const int s) {
  const mnq_layer_desc *d = &L->d;
  const packed *P = L->packed;
  const int C = d->out_c, nb = P->nb, ne = entries(d);
  const size_t row_vecs = ring_row_bytes(d, nb) / sizeof(__m512i);
  __m512i *ring = (__m512i *)(((uintptr_t)w->scratch + 63) & ~(uintptr_t)63);
  __m512i *pad = ring + 3 * row_vecs;
  long held[3] = {-1, -1, -1}; /* which (image, input row) each ring slot holds */
  const rq q = rq_init(d);
  /* Few rows (5x5 layers) split 3/2 and repeat halo transposes: split the
   * channel blocks instead. With many rows the row split measured faster. */
  long r0 = 0, r1 = (long)batch * d->out_h, cb0 = 0, cb1 = nb;
  if (r1 < 4 * w->nparts && nb % w->nparts == 0) mnq_partition(nb, w, &cb0, &cb1);
  else mnq_partition(r1, w, &r0, &r1);
  if (r0 < r1 && cb0 < cb1) memset(pad, d->in_zp, row_vecs * sizeof(__m512i));
  for (long r = r0; r < r1; r++) {
    const long n = r / d->out_h;
    const int oy = (int)(r % d->out_h);
    const __m512i *rows[3];
    for (int ky = 0; ky < 3; ky++) {
      const int iy = oy * s - d->pad_top + ky;
      rows[ky] = pad;
      if (iy < 0 || iy >= d->in_h) continue;
      const long g = n * d->in_h + iy;
      __m512i *slot = ring + (g % 3) * row_vecs;
      if (held[g % 3] != g) {
        transpose_row(d, in + g * d->in_w * C, slot, cb0, cb1, ne);
        held[g % 3] = g;
      }
      rows[ky] = slot;
    }
    uint8_t *o = out + r * d->out_w * C;
    for (long cb = cb0; cb < cb1; cb++) {
      const __m512i *const b[3] = {rows[0] + cb * ne * 2, rows[1] + cb * ne * 2, rows[2] + cb * ne * 2};
      block_row(d, &P->blocks[cb], P->extras + P->first_extra[cb], P->extras + P->first_extra[cb + 1], b, o, cb,
                &q, s);
    }
  }
}

void mnq_dwconv3x3s1_u8_32x2__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                         const mnq_work *w) {
  dwconv3x3(L, in, out, batch, w, 1);
}

void mnq_dwconv3x3s2_u8_32x2__avx512vnni(const mnq_layer *L, const uint8_t *in, uint8_t *out, int batch,
                                         const mnq_work *w) {
  dwconv3x3(L, in, out, batch, w, 2);
}
