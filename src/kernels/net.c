/* The executor: validate layer descriptions, pick a kernel per layer once
 * (dispatch.c), then run the whole network in one OpenMP parallel region. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

/* Defined in dispatch.c. */
int mnq_select_kernel(mnq_layer *L, int isa, char *err, size_t err_len);

struct mnq_net {
  int num_layers;
  int isa;
  size_t scratch_per_thread;
  mnq_layer *layers;
};

/* Bytes of one image's tensor; dims are positive int (validated first), so h*w fits in
 * int64 and the product saturates instead of overflowing (2^24 x 2^24 x C would wrap). */
static int64_t tensor_bytes(int h, int w, int c) {
  const int64_t hw = (int64_t)h * w;
  return hw > ((int64_t)1 << 31) ? INT64_MAX : hw * c;
}

#define MNQ_MAX_THREADS 1024 /* more would only exhaust the OS's thread limit */

static int fail(char *err, size_t err_len, const char *fmt, int layer, const char *what) {
  if (err && err_len) snprintf(err, err_len, fmt, layer, what);
  return -1;
}

/* Shapes must be self-consistent so no kernel can read or write out of bounds. */
static int validate(const mnq_layer_desc *d, int i, char *err, size_t n) {
  if (d->in_h <= 0 || d->in_w <= 0 || d->in_c <= 0 || d->out_h <= 0 || d->out_w <= 0 || d->out_c <= 0)
    return fail(err, n, "layer %d: %s", i, "non-positive tensor dimension");
  if (tensor_bytes(d->in_h, d->in_w, d->in_c) > (1L << 30) || tensor_bytes(d->out_h, d->out_w, d->out_c) > (1L << 30))
    return fail(err, n, "layer %d: %s", i, "tensor larger than 1 GiB");
  if (d->act_min < 0 || d->act_max > 255 || d->act_min > d->act_max)
    return fail(err, n, "layer %d: %s", i, "activation range outside [0, 255]");
  if (d->op == MNQ_OP_CONV || d->op == MNQ_OP_DEPTHWISE || d->op == MNQ_OP_POINTWISE) {
    /* the int32 accumulator bias + sum (x - zx)(w - zw) must not overflow (UB in C, and
     * TFLite has no defined answer either): |bias| + taps * 255^2 <= INT32_MAX */
    if (d->k_h > 0 && d->k_w > 0 && d->in_c > 0) {
      const int64_t taps = (int64_t)d->k_h * d->k_w * (d->op == MNQ_OP_DEPTHWISE ? 1 : d->in_c);
      int64_t max_bias = 0;
      if (taps > INT32_MAX / (255 * 255))
        return fail(err, n, "layer %d: %s", i, "too many taps per output: the int32 accumulator could overflow");
      for (int c = 0; d->bias && c < d->out_c; c++) {
        const int64_t b = d->bias[c] < 0 ? -(int64_t)d->bias[c] : d->bias[c];
        if (b > max_bias) max_bias = b;
      }
      if (max_bias + taps * 255 * 255 > INT32_MAX)
        return fail(err, n, "layer %d: %s", i, "bias too large: the int32 accumulator could overflow");
    }
  } else if (d->op == MNQ_OP_AVGPOOL && d->k_h > 0 && d->k_w > 0) {
    const int64_t th = d->k_h < d->in_h ? d->k_h : d->in_h, tw = d->k_w < d->in_w ? d->k_w : d->in_w;
    if (th * tw > INT32_MAX / 255)
      return fail(err, n, "layer %d: %s", i, "pooling window too large: the int32 sum could overflow");
  }
  switch (d->op) {
    case MNQ_OP_CONV: case MNQ_OP_DEPTHWISE: case MNQ_OP_POINTWISE: case MNQ_OP_AVGPOOL: {
      if (d->k_h <= 0 || d->k_w <= 0 || d->stride_h <= 0 || d->stride_w <= 0 || d->pad_top < 0 || d->pad_left < 0)
        return fail(err, n, "layer %d: %s", i, "bad kernel size, stride or padding");
      /* every output position must see at least one input tap */
      if ((long)(d->out_h - 1) * d->stride_h - d->pad_top >= d->in_h ||
          (long)(d->out_w - 1) * d->stride_w - d->pad_left >= d->in_w ||
          d->pad_top >= d->k_h || d->pad_left >= d->k_w)
        return fail(err, n, "layer %d: %s", i, "output shape inconsistent with input, stride and padding");
      if (d->op != MNQ_OP_AVGPOOL) {
        if (!d->weights) return fail(err, n, "layer %d: %s", i, "missing weights");
        if (d->multiplier < 0 || d->shift > 31 || d->shift < -31)
          return fail(err, n, "layer %d: %s", i, "requantization multiplier out of range");
        if (d->in_zp < 0 || d->in_zp > 255 || d->w_zp < 0 || d->w_zp > 255 || d->out_zp < 0 || d->out_zp > 255)
          return fail(err, n, "layer %d: %s", i, "zero point outside [0, 255]");
      } else if (d->in_c != d->out_c) {
        return fail(err, n, "layer %d: %s", i, "average pool changes the channel count");
      }
      if (d->op == MNQ_OP_DEPTHWISE && d->in_c != d->out_c)
        return fail(err, n, "layer %d: %s", i, "depthwise with depth multiplier other than 1");
      if (d->op == MNQ_OP_POINTWISE &&
          (d->k_h != 1 || d->k_w != 1 || d->stride_h != 1 || d->stride_w != 1 || d->pad_top || d->pad_left ||
           d->in_h != d->out_h || d->in_w != d->out_w))
        return fail(err, n, "layer %d: %s", i, "pointwise layer is not a 1x1 stride-1 conv");
      return 0;
    }
    case MNQ_OP_SOFTMAX:
      if (d->in_h != d->out_h || d->in_w != d->out_w || d->in_c != d->out_c)
        return fail(err, n, "layer %d: %s", i, "softmax changes the shape");
      /* diff * 2^left_shift must fit int32 for every diff >= diff_min (mnq_softmax_exp) */
      if (d->softmax_left_shift < 0 || d->softmax_left_shift > 30 || d->softmax_diff_min > 0 ||
          -(int64_t)d->softmax_diff_min * ((int64_t)1 << d->softmax_left_shift) > INT32_MAX)
        return fail(err, n, "layer %d: %s", i, "softmax scaling out of range");
      return 0;
    case MNQ_OP_COPY:
      if (tensor_bytes(d->in_h, d->in_w, d->in_c) != tensor_bytes(d->out_h, d->out_w, d->out_c))
        return fail(err, n, "layer %d: %s", i, "reshape changes the element count");
      return 0;
    default:
      return fail(err, n, "layer %d: %s", i, "unknown op");
  }
}

static int fold_pointwise_bias(mnq_layer *L) {
  const mnq_layer_desc *d = &L->d;
  L->bias_folded = malloc(sizeof(int32_t) * (size_t)d->out_c);
  if (!L->bias_folded) return -1;
  for (int n = 0; n < d->out_c; n++) {
    int32_t wsum = 0;
    for (int k = 0; k < d->in_c; k++) wsum += (int32_t)d->weights[(long)n * d->in_c + k] - d->w_zp;
    L->bias_folded[n] = (d->bias ? d->bias[n] : 0) - d->in_zp * wsum;
  }
  return 0;
}

mnq_net *mnq_net_create(const mnq_layer_desc *layers, int num_layers, int isa, char *err, size_t err_len) {
  if (err && err_len) err[0] = 0;
  if (!layers || num_layers <= 0) {
    fail(err, err_len, "layer %d: %s", 0, "no layers");
    return NULL;
  }
  if (isa < 0 || isa >= MNQ_ISA_COUNT || !(mnq_isa_supported_mask() & (1u << isa))) {
    if (err && err_len) snprintf(err, err_len, "instruction set '%s' is not supported by this CPU/OS", mnq_isa_name(isa));
    return NULL;
  }
  for (int i = 0; i < num_layers; i++) {
    if (validate(&layers[i], i, err, err_len)) return NULL;
    if (i > 0 && tensor_bytes(layers[i - 1].out_h, layers[i - 1].out_w, layers[i - 1].out_c) !=
                     tensor_bytes(layers[i].in_h, layers[i].in_w, layers[i].in_c)) {
      fail(err, err_len, "layer %d: %s", i, "input size differs from the previous layer's output");
      return NULL;
    }
  }
  mnq_net *net = calloc(1, sizeof(*net));
  if (!net || !(net->layers = calloc((size_t)num_layers, sizeof(mnq_layer)))) {
    free(net);
    fail(err, err_len, "layer %d: %s", 0, "out of memory");
    return NULL;
  }
  net->num_layers = num_layers;
  net->isa = isa;
  for (int i = 0; i < num_layers; i++) {
    mnq_layer *L = &net->layers[i];
    L->d = layers[i];
    if (L->d.op == MNQ_OP_POINTWISE && fold_pointwise_bias(L)) {
      mnq_net_destroy(net);
      fail(err, err_len, "layer %d: %s", i, "out of memory");
      return NULL;
    }
    if (mnq_select_kernel(L, isa, err, err_len)) {
      mnq_net_destroy(net);
      return NULL;
    }
    if (L->scratch_bytes > net->scratch_per_thread) net->scratch_per_thread = L->scratch_bytes;
  }
  /* keep each thread's scratch on its own cache lines */
  net->scratch_per_thread = (net->scratch_per_thread + 63) & ~(size_t)63;
  return net;
}

void mnq_net_destroy(mnq_net *net) {
  if (!net) return;
  for (int i = 0; i < net->num_layers; i++) {
    free(net->layers[i].bias_folded);
    free(net->layers[i].packed);
  }
  free(net->layers);
  free(net);
}

int mnq_net_num_layers(const mnq_net *net) { return net->num_layers; }
int mnq_net_isa(const mnq_net *net) { return net->isa; }

int mnq_net_reads_layer_data(const mnq_net *net) {
  for (int i = 0; i < net->num_layers; i++)
    if (!net->layers[i].packed_only) return 1;
  return 0;
}

const char *mnq_net_kernel_name(const mnq_net *net, int layer) {
  return (layer >= 0 && layer < net->num_layers) ? net->layers[layer].kernel_name : NULL;
}

size_t mnq_net_scratch_bytes(const mnq_net *net, int num_threads) {
  return net->scratch_per_thread * (size_t)(num_threads > 0 ? num_threads : 1);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* libgomp's thread pool does not survive fork(): a child that enters a parallel
 * region after its parent used one hangs. Such children run single-threaded. */
static int g_pool_started, g_pool_lost;
static pthread_once_t g_fork_hook_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) { g_pool_lost = g_pool_started; }
static void install_fork_hook(void) { pthread_atfork(NULL, NULL, on_fork_child); }

int mnq_net_threads_usable(int requested) {
  pthread_once(&g_fork_hook_once, install_fork_hook);
  if (requested > MNQ_MAX_THREADS) requested = MNQ_MAX_THREADS;
  return g_pool_lost ? 1 : (requested > 0 ? requested : 1);
}

static void run_layers(const mnq_net *net, int batch, uint8_t *const *tensors, const mnq_work *w,
                       double *layer_seconds) {
  for (int i = 0; i < net->num_layers; i++) {
    const mnq_layer *L = &net->layers[i];
    const double t0 = (layer_seconds && w->part == 0) ? now_seconds() : 0.0;
    L->kernel(L, tensors[i], tensors[i + 1], batch, w);
#ifdef _OPENMP
    if (w->nparts > 1) {
#pragma omp barrier
    }
#endif
    if (layer_seconds && w->part == 0) layer_seconds[i] = now_seconds() - t0;
  }
}

int mnq_net_run(const mnq_net *net, int batch, uint8_t *const *tensors, uint8_t *scratch,
                int num_threads, double *layer_seconds) {
  if (!net || batch <= 0 || !tensors) return -1;
  if (net->scratch_per_thread && !scratch) return -1;
  for (int i = 0; i <= net->num_layers; i++)
    if (!tensors[i]) return -1;
  const int threads = mnq_net_threads_usable(num_threads);
  if (threads == 1) {
    const mnq_work w = {0, 1, scratch};
    run_layers(net, batch, tensors, &w, layer_seconds);
    return 0;
  }
#ifdef _OPENMP
  __atomic_store_n(&g_pool_started, 1, __ATOMIC_RELAXED);
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    const mnq_work w = {tid, omp_get_num_threads(), scratch ? scratch + (size_t)tid * net->scratch_per_thread : NULL};
    run_layers(net, batch, tensors, &w, layer_seconds);
  }
#else
  const mnq_work w = {0, 1, scratch};
  run_layers(net, batch, tensors, &w, layer_seconds);
#endif
  return 0;
}

/* Arena layout, each part 64-byte aligned: tensor pointer table, two ping-pong
 * buffers of the largest intermediate tensor, per-thread scratch. Layer i writes
 * buffer i % 2, so no layer reads and writes the same buffer. */
static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

static size_t largest_intermediate(const mnq_net *net, int batch) {
  size_t most = 0;
  for (int i = 0; i + 1 < net->num_layers; i++) {
    const mnq_layer_desc *d = &net->layers[i].d;
    const size_t bytes = (size_t)tensor_bytes(d->out_h, d->out_w, d->out_c) * (size_t)batch;
    if (bytes > most) most = bytes;
  }
  return align64(most);
}

size_t mnq_net_arena_bytes(const mnq_net *net, int batch, int num_threads) {
  if (!net || batch <= 0) return 0;
  return align64(sizeof(uint8_t *) * (size_t)(net->num_layers + 1)) + 2 * largest_intermediate(net, batch) +
         mnq_net_scratch_bytes(net, num_threads) + 63; /* 63: room to align the arena's start */
}

int mnq_net_run_arena(const mnq_net *net, int batch, const uint8_t *input, uint8_t *output, void *arena,
                      size_t arena_bytes, int num_threads) {
  if (!net || batch <= 0 || !input || !output || !arena) return -1;
  if (arena_bytes < mnq_net_arena_bytes(net, batch, num_threads)) return -1;
  uint8_t *p = (uint8_t *)(((uintptr_t)arena + 63) & ~(uintptr_t)63);
  uint8_t **tensors = (uint8_t **)p;
  p += align64(sizeof(uint8_t *) * (size_t)(net->num_layers + 1));
  const size_t buf = largest_intermediate(net, batch);
  /* kernels never write their input, so dropping const here is safe */
  tensors[0] = (uint8_t *)input;
  for (int i = 1; i < net->num_layers; i++) tensors[i] = p + (size_t)((i - 1) % 2) * buf;
  tensors[net->num_layers] = output;
  return mnq_net_run(net, batch, tensors, p + 2 * buf, num_threads, NULL);
}
