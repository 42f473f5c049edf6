/* Leak check of the C library alone (no Python): thousands of create / run / destroy
 * cycles of a small MobileNet-shaped net on every ISA the CPU has, plus nets that fail
 * validation or kernel selection part-way. Built with -fsanitize=address, so
 * LeakSanitizer reports any block still allocated at exit; the process also checks
 * that every run gives the same bytes as the first (scalar) one.
 *   leakcheck [cycles]     (default 3000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnq.h"

#define H 9
#define W 9
enum { C0 = 3, C1 = 8, C2 = 16, CLASSES = 10, NL = 7 };

static uint8_t w_conv[C1 * 3 * 3 * C0], w_dw[3 * 3 * C1], w_pw[C2 * C1], w_fc[CLASSES * C2];
static int32_t b_conv[C1], b_dw[C1], b_pw[C2], b_fc[CLASSES];

static mnq_layer_desc layer(int op, int ih, int iw, int ic, int oh, int ow, int oc, int k, int s, int pad,
                            const uint8_t *w, const int32_t *b) {
  mnq_layer_desc d;
  memset(&d, 0, sizeof d);
  d.op = op;
  d.in_h = ih, d.in_w = iw, d.in_c = ic, d.out_h = oh, d.out_w = ow, d.out_c = oc;
  d.k_h = d.k_w = k, d.stride_h = d.stride_w = s, d.pad_top = d.pad_left = pad;
  d.in_zp = 128, d.w_zp = 120, d.out_zp = 3;
  d.multiplier = 1518500250, d.shift = -7; /* ~0.0055 */
  d.act_min = 3, d.act_max = 255;
  d.weights = w, d.bias = b;
  return d;
}

static void make_net(mnq_layer_desc *L) {
  L[0] = layer(MNQ_OP_CONV, H, W, C0, 5, 5, C1, 3, 2, 1, w_conv, b_conv);
  L[1] = layer(MNQ_OP_DEPTHWISE, 5, 5, C1, 5, 5, C1, 3, 1, 1, w_dw, b_dw);
  L[2] = layer(MNQ_OP_POINTWISE, 5, 5, C1, 5, 5, C2, 1, 1, 0, w_pw, b_pw);
  L[3] = layer(MNQ_OP_AVGPOOL, 5, 5, C2, 1, 1, C2, 5, 1, 0, NULL, NULL);
  L[4] = layer(MNQ_OP_POINTWISE, 1, 1, C2, 1, 1, CLASSES, 1, 1, 0, w_fc, b_fc);
  L[5] = layer(MNQ_OP_COPY, 1, 1, CLASSES, 1, 1, CLASSES, 1, 1, 0, NULL, NULL);
  L[6] = layer(MNQ_OP_SOFTMAX, 1, 1, CLASSES, 1, 1, CLASSES, 1, 1, 0, NULL, NULL);
  L[6].softmax_multiplier = 1677721600, L[6].softmax_left_shift = 23, L[6].softmax_diff_min = -124;
}

int main(int argc, char **argv) {
  const int cycles = argc > 1 ? atoi(argv[1]) : 3000;
  enum { batch = 2 };
  unsigned seed = 1;
  for (size_t i = 0; i < sizeof w_conv; i++) w_conv[i] = (uint8_t)(seed = seed * 1103515245 + 12345) >> 3;
  for (size_t i = 0; i < sizeof w_dw; i++) w_dw[i] = (uint8_t)((seed = seed * 1103515245 + 12345) >> 9);
  for (size_t i = 0; i < sizeof w_pw; i++) w_pw[i] = (uint8_t)((seed = seed * 1103515245 + 12345) >> 11);
  for (size_t i = 0; i < sizeof w_fc; i++) w_fc[i] = (uint8_t)((seed = seed * 1103515245 + 12345) >> 13);
  for (int i = 0; i < C1; i++) b_conv[i] = 100 * i - 300, b_dw[i] = 50 - 20 * i;
  for (int i = 0; i < C2; i++) b_pw[i] = 7 * i;
  for (int i = 0; i < CLASSES; i++) b_fc[i] = 1000 - 100 * i;

  mnq_layer_desc descs[NL];
  make_net(descs);
  static uint8_t t[NL + 1][batch * H * W * C2];
  uint8_t *tensors[NL + 1];
  for (int i = 0; i <= NL; i++) tensors[i] = t[i];
  for (int i = 0; i < batch * H * W * C0; i++) t[0][i] = (uint8_t)(i * 37 + 11);
  uint8_t expected[batch * CLASSES];
  int have_expected = 0;
  const unsigned mask = mnq_isa_supported_mask();
  char err[256];
  long runs = 0, refused = 0;

  for (int cycle = 0; cycle < cycles; cycle++) {
    const int isa = cycle % MNQ_ISA_COUNT;
    if (!(mask & (1u << isa))) continue;
    /* every 4th cycle: a net that fails part-way (bad layer near the end) */
    if (cycle % 4 == 3) {
      mnq_layer_desc bad[NL];
      memcpy(bad, descs, sizeof bad);
      bad[NL - 1 - cycle % 3].act_max = 300;
      if (mnq_net_create(bad, NL, isa, err, sizeof err)) { fprintf(stderr, "bad net accepted\n"); return 1; }
      refused++;
      continue;
    }
    mnq_net *net = mnq_net_create(descs, NL, isa, err, sizeof err);
    if (!net) { fprintf(stderr, "create (%s): %s\n", mnq_isa_name(isa), err); return 1; }
    const int threads = 1 + cycle % 2;
    uint8_t *scratch = malloc(mnq_net_scratch_bytes(net, threads) + 1);
    if (mnq_net_run(net, batch, tensors, scratch, threads, NULL)) { fprintf(stderr, "run failed\n"); return 1; }
    runs++;
    if (!have_expected) {
      memcpy(expected, t[NL], sizeof expected);
      have_expected = 1;
    } else if (memcmp(expected, t[NL], sizeof expected)) {
      fprintf(stderr, "cycle %d (%s, %d threads): output differs\n", cycle, mnq_isa_name(isa), threads);
      return 1;
    }
    free(scratch);
    mnq_net_destroy(net);
  }
  printf("leakcheck: %ld create/run/destroy cycles, %ld refused nets, isas mask 0x%x: ok\n", runs, refused, mask);
  return 0;
}
