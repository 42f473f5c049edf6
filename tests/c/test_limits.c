/* Limits the library must hold on every target, 32-bit ones included:
 *   - CPU detection runs once, however many threads ask first;
 *   - arena and scratch sizes that do not fit in size_t are reported as 0 and
 *     mnq_net_run_arena refuses, instead of wrapping (armhf: 32-bit size_t);
 *   - a .mnq file whose output size does not fit an int is rejected.
 * Prints "N passed, M failed"; exit status 1 if anything failed. */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mnq.h"

static int passed, failed;

static void expect(int ok, const char *what) {
  if (ok) passed++;
  else failed++, printf("FAIL %s\n", what);
}

/* ---- first detection from many threads at once ---- */
#define RACERS 8
static pthread_barrier_t g_start;
static const char *g_seen[RACERS];

static void *first_call(void *arg) {
  pthread_barrier_wait(&g_start);
  g_seen[(intptr_t)arg] = mnq_cpu_features();
  return NULL;
}

/* In a fresh process (nothing detected yet): RACERS threads ask at once. Each
 * word of the feature list must appear once, and every thread must see it whole. */
static int race_once(void) {
  pthread_t t[RACERS];
  pthread_barrier_init(&g_start, NULL, RACERS);
  for (intptr_t i = 0; i < RACERS; i++) pthread_create(&t[i], NULL, first_call, (void *)i);
  for (int i = 0; i < RACERS; i++) pthread_join(t[i], NULL);
  char words[256];
  snprintf(words, sizeof(words), "%s", mnq_cpu_features());
  const size_t len = strlen(words);
  for (int i = 0; i < RACERS; i++)
    if (strlen(g_seen[i]) != len) return 1;
  char *seen[32];
  int n = 0;
  for (char *w = strtok(words, " "); w; w = strtok(NULL, " ")) {
    for (int j = 0; j < n; j++)
      if (!strcmp(seen[j], w)) return 1;
    if (n < 32) seen[n++] = w;
  }
  return 0;
}

static void concurrent_detection(int rounds) {
  int bad = 0;
  for (int r = 0; r < rounds; r++) {
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) _exit(race_once());
    int status = 0;
    waitpid(pid, &status, 0);
    bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
  }
  if (bad) printf("  %d of %d fresh processes saw a repeated or torn feature list\n", bad, rounds);
  expect(bad == 0, "CPU detection runs once under concurrent first calls");
}

/* ---- sizes that do not fit in size_t ---- */

/* Two reshapes of a 1 GiB tensor (the largest a layer may have): the arena holds
 * two such intermediates per image of the batch. */
static void arena_overflow(void) {
  mnq_layer_desc layers[2];
  memset(layers, 0, sizeof(layers));
  for (int i = 0; i < 2; i++) {
    mnq_layer_desc *d = &layers[i];
    d->op = MNQ_OP_COPY;
    d->in_h = d->out_h = 1024, d->in_w = d->out_w = 1024, d->in_c = d->out_c = 1024;
    d->act_max = 255;
  }
  char err[256];
  mnq_net *net = mnq_net_create(layers, 2, MNQ_ISA_SCALAR, err, sizeof(err));
  expect(net != NULL, "1 GiB reshape net");
  if (!net) return;
  const int batch = 8;
  const double need = 2.0 * (double)(1u << 30) * batch; /* 16 GiB: wraps a 32-bit size_t to 0 + small parts */
  const size_t bytes = mnq_net_arena_bytes(net, batch, 1);
  if (!(bytes == 0 || (double)bytes >= need)) printf("  arena for batch %d: %zu bytes, needs %.0f\n", batch, bytes, need);
  expect(bytes == 0 || (double)bytes >= need, "arena size is exact or 0 when it does not fit in size_t");
  if ((double)SIZE_MAX < need) {
    /* claim the whole address space: the old size check passed and kernels wrote past the arena */
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
      static uint8_t in[64], out[64], arena[4096];
      _exit(mnq_net_run_arena(net, batch, in, out, arena, SIZE_MAX, 1) == -1 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "mnq_net_run_arena refuses an arena that cannot exist");
  }
  mnq_net_destroy(net);

  /* Per-thread scratch x threads: the channel-sum average pool above the scalar
   * level takes 4 bytes per channel per thread. */
  mnq_layer_desc pool;
  memset(&pool, 0, sizeof(pool));
  pool.op = MNQ_OP_AVGPOOL;
  pool.in_h = pool.in_w = pool.out_h = pool.out_w = 1, pool.in_c = pool.out_c = 1 << 24;
  pool.k_h = pool.k_w = pool.stride_h = pool.stride_w = 1, pool.act_max = 255;
  net = mnq_net_create(&pool, 1, mnq_isa_best(), err, sizeof(err));
  expect(net != NULL, "wide average pool net");
  if (!net) return;
  const size_t one = mnq_net_scratch_bytes(net, 1), many = mnq_net_scratch_bytes(net, 1000);
  const int ok = one == 0 ? many == 0 : (many == 0 || many / 1000 == one);
  if (!ok) printf("  scratch: %zu bytes for 1 thread, %zu for 1000\n", one, many);
  expect(ok, "scratch size is exact or 0 when it does not fit in size_t");
  mnq_net_destroy(net);
}

/* ---- .mnq files ---- */

static uint32_t crc32_of(const uint8_t *data, size_t size) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; i++) {
    crc ^= (i >= 32 && i < 36) ? 0 : data[i]; /* the crc field reads as zero */
    for (int k = 0; k < 8; k++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
  }
  return crc ^ 0xFFFFFFFFu;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* One reshape layer of h x w x c (docs/format.md: 96-byte header, 192-byte layer records). */
static void mnq_file_output_size(void) {
  enum { SIZE = 96 + 192 };
  static uint32_t words[SIZE / 4]; /* 4-byte aligned, as mnq_model_parse requires */
  uint8_t *f = (uint8_t *)words;
  const uint32_t h = 1u << 16, w = 1u << 16, c = 1; /* 2^32 bytes per image */
  memcpy(f, "MNQMODEL", 8);
  put32(f + 8, 1);
  put32(f + 12, 96);
  put32(f + 16, 192);
  put32(f + 20, 1);
  put32(f + 24, SIZE);
  put32(f + 36, h), put32(f + 40, w), put32(f + 44, c);
  const uint32_t dims[10] = {h, w, c, h, w, c, 1, 1, 1, 1};
  for (int k = 0; k < 10; k++) put32(f + 96 + 12 + 4 * k, dims[k]);
  put32(f + 96 + 80, MNQ_OP_COPY);
  put32(f + 96 + 84 + 4 * 5, 255); /* act_max */
  put32(f + 32, crc32_of(f, SIZE));
  char err[256] = "";
  mnq_model *m = mnq_model_parse(f, SIZE, err, sizeof(err));
  if (m) printf("  2^32-byte output parsed, output_size %d\n", m->output_size);
  expect(!m && strstr(err, "output"), ".mnq output size beyond int rejected");
  mnq_model_free(m);
}

/* test_limits [ROUNDS]: fresh processes for the detection race (default 400; each
 * catches the unsynchronized race a few percent of the time) */
int main(int argc, char **argv) {
  printf("size_t: %zu bits; kernels built: %s; not built: %s\n", sizeof(size_t) * CHAR_BIT, mnq_kernels_built(),
         mnq_kernels_not_built());
  concurrent_detection(argc > 1 ? atoi(argv[1]) : 400);
  arena_overflow();
  mnq_file_output_size();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
