/* The C API on a real .mnq file: load, run through a caller-supplied arena,
 * agree with mnq_net_run on separate buffers and with every ISA level, and
 * reject damaged files with a message that names the problem.
 *   test_api MODEL.mnq        prints "N passed, M failed" */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnq.h"

static int passed, failed;

static void expect(int ok, const char *what) {
  if (ok) passed++;
  else failed++, printf("FAIL %s\n", what);
}

/* Parsing a damaged copy must fail with a message containing `needle`. */
static void expect_rejected(const uint8_t *image, size_t size, const char *needle, const char *what) {
  char err[256] = "";
  void *copy = malloc(size ? size : 1);
  memcpy(copy, image, size);
  mnq_model *m = mnq_model_parse(copy, size, err, sizeof(err));
  const int ok = !m && strstr(err, needle);
  if (!ok) printf("  %s: got '%s'\n", what, err);
  expect(ok, what);
  mnq_model_free(m);
  free(copy);
}

/* Several application threads share one net, each asking for its own thread count;
 * the pool runs their jobs one at a time and every output must be the reference. */
typedef struct {
  const mnq_net *net;
  const uint8_t *x, *ref;
  size_t out_bytes;
  int first_threads, mismatches;
} caller_args;

static void *concurrent_caller(void *arg) {
  caller_args *a = arg;
  uint8_t *out = malloc(a->out_bytes);
  for (int k = 0; k < 6; k++) {
    const int threads = 1 + (a->first_threads + k) % 4;
    const size_t bytes = mnq_net_arena_bytes(a->net, 1, threads);
    void *arena = malloc(bytes);
    if (mnq_net_run_arena(a->net, 1, a->x, out, arena, bytes, threads) || memcmp(out, a->ref, a->out_bytes))
      a->mismatches++;
    free(arena);
  }
  free(out);
  return NULL;
}

/* A batch long enough that the executor runs it in sub-batches at 1 thread and image by
 * image at 2 (net.c): every image must come out as it does alone, through the arena, and
 * with layouts that must make it run the whole batch layer by layer instead (the input
 * sharing memory with an intermediate tensor; a layer's input and output in one group of
 * shared buffers). */
static void check_long_batch(const mnq_model *m, mnq_net *net, size_t in_bytes) {
  enum { BATCH = 9 };
  const size_t out_bytes = (size_t)m->output_size;
  uint8_t *xs = malloc(BATCH * in_bytes), *alone = malloc(BATCH * out_bytes), *out = malloc(BATCH * out_bytes);
  for (size_t i = 0; i < BATCH * in_bytes; i++) xs[i] = (uint8_t)(i * 13 + i / 777);
  for (int b = 0; b < BATCH; b++) {
    const size_t bytes = mnq_net_arena_bytes(net, 1, 1);
    void *arena = malloc(bytes);
    mnq_net_run_arena(net, 1, xs + b * in_bytes, alone + b * out_bytes, arena, bytes, 1);
    free(arena);
  }
  for (int threads = 1; threads <= 2; threads++) {
    const size_t bytes = mnq_net_arena_bytes(net, BATCH, threads);
    void *arena = malloc(bytes);
    memset(out, 0xAA, BATCH * out_bytes);
    expect(mnq_net_run_arena(net, BATCH, xs, out, arena, bytes, threads) == 0 &&
               !memcmp(out, alone, BATCH * out_bytes),
           "a long batch through the arena equals its images run alone");
    free(arena);
  }
  /* tensors[0] and every even tensor in one buffer, the odd ones in another */
  size_t largest = in_bytes;
  for (int i = 0; i < m->num_layers; i++) {
    const size_t t = (size_t)m->layers[i].out_h * m->layers[i].out_w * m->layers[i].out_c;
    if (t > largest) largest = t;
  }
  uint8_t *even = malloc(BATCH * largest), *odd = malloc(BATCH * largest);
  uint8_t **tensors = calloc((size_t)m->num_layers + 1, sizeof(uint8_t *));
  memcpy(even, xs, BATCH * in_bytes);
  for (int i = 0; i < m->num_layers; i++) tensors[i] = i % 2 ? odd : even;
  tensors[m->num_layers] = out;
  uint8_t *scratch = malloc(mnq_net_scratch_bytes(net, 2) + 1);
  memset(out, 0xAA, BATCH * out_bytes);
  expect(mnq_net_run(net, BATCH, tensors, scratch, 2, NULL) == 0 && !memcmp(out, alone, BATCH * out_bytes),
         "a long batch whose input shares memory with an intermediate tensor");
  /* layer 2's input and output side by side in one buffer, and layer 4's output across both:
   * one group of shared memory holding a layer's input and output (so not chained) */
  const size_t s2 = (size_t)m->layers[1].out_h * m->layers[1].out_w * m->layers[1].out_c;
  const size_t s3 = (size_t)m->layers[2].out_h * m->layers[2].out_w * m->layers[2].out_c;
  const size_t s5 = (size_t)m->layers[4].out_h * m->layers[4].out_w * m->layers[4].out_c;
  uint8_t *both = malloc(BATCH * (s2 + s3 + largest));
  tensors[0] = xs;
  for (int i = 1; i < m->num_layers; i++) tensors[i] = i % 2 ? both : odd;
  tensors[1] = odd, tensors[2] = both, tensors[3] = both + BATCH * s2, tensors[4] = odd;
  tensors[5] = both + BATCH * (s2 - s5 / 2);
  memset(out, 0xAA, BATCH * out_bytes);
  expect(mnq_net_run(net, BATCH, tensors, scratch, 2, NULL) == 0 && !memcmp(out, alone, BATCH * out_bytes),
         "a long batch where one layer's input and output share a group of buffers");
  free(both), free(scratch), free(tensors), free(even), free(odd), free(xs), free(alone), free(out);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: test_api MODEL.mnq\n");
    return 2;
  }
  char err[512];
  mnq_model *m = mnq_model_load(argv[1], err, sizeof(err));
  if (!m) {
    printf("FAIL load: %s\n", err);
    return 1;
  }
  expect(m->num_layers > 0 && m->input_c == 3 && m->output_size > 0, "model header");
  expect(m->num_labels == 0 || m->num_labels == m->output_size, "label count");

  const size_t in_bytes = (size_t)m->input_h * m->input_w * m->input_c;
  uint8_t *x = malloc(in_bytes), *out = malloc((size_t)m->output_size), *ref = malloc((size_t)m->output_size);
  for (size_t i = 0; i < in_bytes; i++) x[i] = (uint8_t)(i * 7 + i / 480);

  /* reference: scalar net on separately allocated tensors */
  mnq_net *scalar = mnq_net_create(m->layers, m->num_layers, 0, err, sizeof(err));
  expect(scalar != NULL, "scalar net");
  if (!scalar) return 1;
  uint8_t **tensors = calloc((size_t)m->num_layers + 1, sizeof(uint8_t *));
  tensors[0] = x;
  for (int i = 0; i < m->num_layers; i++)
    tensors[i + 1] = malloc((size_t)m->layers[i].out_h * m->layers[i].out_w * m->layers[i].out_c);
  uint8_t *scratch = malloc(mnq_net_scratch_bytes(scalar, 1) + 1);
  expect(mnq_net_run(scalar, 1, tensors, scratch, 1, NULL) == 0, "mnq_net_run");
  memcpy(ref, tensors[m->num_layers], (size_t)m->output_size);

  /* per-layer times from a 2-thread run: every layer timed, none negative */
  double *seconds = calloc((size_t)m->num_layers, sizeof(double));
  uint8_t *scratch2 = malloc(mnq_net_scratch_bytes(scalar, 2) + 1);
  for (int i = 0; i < m->num_layers; i++) seconds[i] = -1.0;
  expect(mnq_net_run(scalar, 1, tensors, scratch2, 2, seconds) == 0, "mnq_net_run, 2 threads, timed");
  int timed = 1;
  for (int i = 0; i < m->num_layers; i++) timed &= seconds[i] >= 0.0;
  expect(timed && !memcmp(ref, tensors[m->num_layers], (size_t)m->output_size), "timed 2-thread run");
  free(seconds), free(scratch2);

  /* every level this CPU has, through the arena, 1 to 3 threads (3 > cores here: oversubscribed) */
  for (int isa = 0; isa < MNQ_ISA_COUNT; isa++) {
    if (!(mnq_isa_supported_mask() & (1u << isa))) continue;
    mnq_net *net = mnq_net_create(m->layers, m->num_layers, isa, err, sizeof(err));
    expect(net != NULL, "net at every supported level");
    expect(!net || mnq_net_adapts_threads(net), "a net adapts its threads by default");
    /* adapting (as many threads as the CPUs left free) and fixed (exactly as asked) */
    for (int threads = 1; net && threads <= 3; threads++)
      for (int adapt = 0; adapt <= 1; adapt++) {
        mnq_net_set_adapt_threads(net, adapt);
        const size_t bytes = mnq_net_arena_bytes(net, 1, threads);
        void *arena = malloc(bytes);
        memset(out, 0xAA, (size_t)m->output_size);
        expect(mnq_net_run_arena(net, 1, x, out, arena, bytes, threads) == 0, "run with arena");
        const int same = !memcmp(out, ref, (size_t)m->output_size);
        if (!same)
          printf("  %s, %d threads%s: output differs from scalar\n", mnq_isa_name(isa), threads,
                 adapt ? " (adapting)" : "");
        expect(same, "arena output equals the scalar output");
        expect(mnq_net_run_arena(net, 1, x, out, arena, bytes - 64, threads) == -1, "short arena rejected");
        free(arena);
      }
    if (net && isa == mnq_isa_best()) {
      check_long_batch(m, net, in_bytes);
      pthread_t callers[4];
      caller_args args[4];
      for (int c = 0; c < 4; c++) {
        args[c] = (caller_args){net, x, ref, (size_t)m->output_size, c, 0};
        pthread_create(&callers[c], NULL, concurrent_caller, &args[c]);
      }
      int mismatches = 0;
      for (int c = 0; c < 4; c++) pthread_join(callers[c], NULL), mismatches += args[c].mismatches;
      expect(mismatches == 0, "4 concurrent callers sharing a net get the reference output");
    }
    mnq_net_destroy(net);
  }
  const int free4 = mnq_threads_free(4);
  expect(mnq_threads_free(0) == 1 && mnq_threads_free(1) == 1 && free4 >= 1 && free4 <= 4,
         "threads free: at least one, at most those asked for");
  expect(mnq_net_create(m->layers, m->num_layers, MNQ_ISA_COUNT, err, sizeof(err)) == NULL && err[0],
         "unknown level rejected");

  /* damaged files */
  FILE *f = fopen(argv[1], "rb");
  fseek(f, 0, SEEK_END);
  const size_t size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *image = malloc(size);
  expect(fread(image, 1, size, f) == size, "read model file");
  fclose(f);
  expect_rejected(image, size - 1, "truncated", "truncated file");
  expect_rejected(image, 50, "bad magic", "shorter than a header");
  image[size / 2] ^= 0x10;
  expect_rejected(image, size, "checksum", "flipped byte");
  image[size / 2] ^= 0x10;
  image[0] = 'X';
  expect_rejected(image, size, "bad magic", "bad magic");
  image[0] = 'M';
  image[8] = 3; /* files are version 2 */
  expect_rejected(image, size, "version", "future version");
  image[8] = 2;
  mnq_model *again = mnq_model_parse(image, size, err, sizeof(err));
  expect(again != NULL, "the restored image parses");
  mnq_model_free(again);
  expect(mnq_model_load("/nonexistent/model.mnq", err, sizeof(err)) == NULL && strstr(err, "/nonexistent/model.mnq"),
         "missing file named in the error");
  expect(mnq_model_load("/dev/zero", err, sizeof(err)) == NULL && strstr(err, "/dev/zero: a character device"),
         "a device is refused unread");

  for (int i = 0; i < m->num_layers; i++) free(tensors[i + 1]);
  free(tensors), free(scratch), free(image), free(x), free(out), free(ref);
  mnq_net_destroy(scalar);
  mnq_model_free(m);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
