/* The executor: validate layer descriptions, pick a kernel per layer once
 * (dispatch.c), then run the whole network as one job on the worker pool
 * (threadpool.c): each layer cut into tiles that threads claim. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

#include "internal.h"
#include "threadpool.h"

struct mnq_net {
  int num_layers;
  int isa;
  int holds_pool;
  int adapt_threads;
  size_t scratch_per_thread;
  mnq_layer *layers;
};

/* Bytes of one image's tensor; dims are positive int (validated first), so h*w fits in
 * int64 and the product saturates instead of overflowing (2^24 x 2^24 x C would wrap). */
static int64_t tensor_bytes(int h, int w, int c) {
  const int64_t hw = (int64_t)h * w;
  return hw > ((int64_t)1 << 31) ? INT64_MAX : hw * c;
}

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
        if (!d->channel_multipliers != !d->channel_shifts)
          return fail(err, n, "layer %d: %s", i, "per-channel multipliers without shifts (or the reverse)");
        for (int c = 0; d->channel_multipliers && c < d->out_c; c++)
          if (d->channel_multipliers[c] < 0 || d->channel_shifts[c] > 31 || d->channel_shifts[c] < -31)
            return fail(err, n, "layer %d: %s", i, "per-channel requantization multiplier out of range");
        if (d->in_zp < 0 || d->in_zp > 255 || d->w_zp < 0 || d->w_zp > 255 || d->out_zp < 0 || d->out_zp > 255)
          return fail(err, n, "layer %d: %s", i, "zero point outside [0, 255]");
      } else if (d->in_c != d->out_c) {
        return fail(err, n, "layer %d: %s", i, "average pool changes the channel count");
      } else if (d->pool_center != 0 && d->pool_center != 128) {
        return fail(err, n, "layer %d: %s", i, "average pool rounding centre is neither 0 (uint8) nor 128 (int8)");
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
    if (L->d.op == MNQ_OP_POINTWISE && mnq_fold_bias(L)) {
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
  net->holds_pool = mnq_pool_acquire() == 0;
  net->adapt_threads = 1;
  return net;
}

void mnq_net_destroy(mnq_net *net) {
  if (!net) return;
  if (net->holds_pool) mnq_pool_release();
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
  size_t bytes;
  if (__builtin_mul_overflow(net->scratch_per_thread, (size_t)(num_threads > 0 ? num_threads : 1), &bytes)) return 0;
  return bytes;
}

int mnq_net_threads_usable(int requested) {
  return requested > MNQ_MAX_THREADS ? MNQ_MAX_THREADS : requested > 0 ? requested : 1;
}

/* atomic: a setting changed beside another thread's run takes effect from its next job */
void mnq_net_set_adapt_threads(mnq_net *net, int adapt) {
  __atomic_store_n(&net->adapt_threads, adapt != 0, __ATOMIC_RELAXED);
}
int mnq_net_adapts_threads(const mnq_net *net) { return __atomic_load_n(&net->adapt_threads, __ATOMIC_RELAXED); }

int mnq_threads_free(int requested) { return mnq_pool_threads_free(mnq_net_threads_usable(requested)); }

/* Bytes of one image of tensor i (0: the input, num_layers: the output). */
static size_t image_bytes(const mnq_net *net, int i) {
  const mnq_layer_desc *d = &net->layers[i < net->num_layers ? i : i - 1].d;
  return i < net->num_layers ? (size_t)tensor_bytes(d->in_h, d->in_w, d->in_c)
                             : (size_t)tensor_bytes(d->out_h, d->out_w, d->out_c);
}

static int overlap(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
  return (uintptr_t)a < (uintptr_t)b + b_len && (uintptr_t)b < (uintptr_t)a + a_len;
}

/* Tiles per thread for the layers worth splitting: enough that a thread the OS
 * holds up leaves little of a layer undone, few enough that per-tile set-up
 * (row sums, requantization constants) stays small. */
#define TILES_PER_THREAD 4
/* Multiply-accumulates below which a conv-like tile costs more to hand out than to run. */
#define MIN_TILE_MACS (64L * 1024)
#define MIN_TILE_ROWS 4

/* Where image b of tensor i lives in a chained run: base + b * stride. */
typedef struct {
  uint8_t *base;
  size_t stride;
} image_slot;

typedef struct {
  const mnq_net *net;
  int batch, first; /* images [first, first + batch) of the tensors */
  uint8_t *const *tensors;
  uint8_t *scratch;
  const image_slot *slots; /* chained runs: [num_layers + 1] */
} run_ctx;

static int layer_tiles(void *ctx, int layer, int threads) {
  const run_ctx *r = ctx;
  const mnq_layer_desc *d = &r->net->layers[layer].d;
  if (threads == 1) return 1; /* each layer whole, in the kernel's own loop order */
  const long most = (long)threads * TILES_PER_THREAD;
  if (d->op == MNQ_OP_CONV || d->op == MNQ_OP_DEPTHWISE || d->op == MNQ_OP_POINTWISE) {
    /* int64: on 32-bit targets a large batch's MACs overflow long */
    const int64_t taps = (int64_t)d->k_h * d->k_w * (d->op == MNQ_OP_DEPTHWISE ? 1 : d->in_c);
    const int64_t macs = (int64_t)r->batch * d->out_h * d->out_w * d->out_c * taps;
    int64_t tiles = macs / MIN_TILE_MACS;
    /* fewer pixels than output channels (the late pointwise layers): the x86 kernels split
     * column blocks, and every such tile prepares all the rows again (AVX2 widens them to
     * int16, VNNI sums them); Arm's kernels split rows, and every tile streams all the
     * weights. One tile per thread does that once per thread. */
    if (d->op == MNQ_OP_POINTWISE && (int64_t)r->batch * d->out_h * d->out_w < d->out_c && tiles > threads)
      tiles = threads;
    if (d->op == MNQ_OP_DEPTHWISE) {
      /* a depthwise tile split by output rows re-reads (widens) the input rows above its
       * first one (the AVX2 kernel splits channel blocks first, the others rows): tiles of
       * at least MIN_TILE_ROWS rows, a whole number per thread */
      const int64_t per_thread = (int64_t)r->batch * d->out_h / ((int64_t)MIN_TILE_ROWS * threads);
      const int64_t rows_cap = (int64_t)threads * (per_thread < 1 ? 1 : per_thread);
      if (tiles > rows_cap) tiles = rows_cap;
    }
    return tiles < 1 ? 1 : tiles > most ? (int)most : (int)tiles;
  }
  /* pooling, softmax and reshape split by image: one tile per image up to the cap */
  return r->batch < most ? r->batch : (int)most;
}

static uint8_t *participant_scratch(const run_ctx *r, int participant) {
  return r->scratch ? r->scratch + (size_t)participant * r->net->scratch_per_thread : NULL;
}

static void run_tile(void *ctx, int layer, int tile, int ntiles, int participant) {
  const run_ctx *r = ctx;
  const mnq_layer *L = &r->net->layers[layer];
  const mnq_work w = {tile, ntiles, participant_scratch(r, participant)};
  L->kernel(L, r->tensors[layer] + (size_t)r->first * image_bytes(r->net, layer),
            r->tensors[layer + 1] + (size_t)r->first * image_bytes(r->net, layer + 1), r->batch, &w);
}

/* A batch runs as consecutive sub-batches of about this many bytes of a layer's input and
 * output: a whole batch of 32 streams every layer's tensors (13 MB for the main model's
 * largest) through memory, where a sub-batch's stay in the last-level cache. */
#define SUB_BATCH_BYTES (4L << 20)

/* 1 when the input and the output share memory with no other tensor: only then may part
 * of a batch run ahead of the rest (a later image would overwrite an input an earlier one
 * still needs, or an output it has written). */
static int edges_apart(const mnq_net *net, int batch, uint8_t *const *tensors) {
  const int last = net->num_layers;
  const size_t in_len = image_bytes(net, 0) * batch, out_len = image_bytes(net, last) * batch;
  if (overlap(tensors[0], in_len, tensors[last], out_len)) return 0;
  for (int i = 1; i < last; i++) {
    const size_t len = image_bytes(net, i) * batch;
    if (overlap(tensors[i], len, tensors[0], in_len) || overlap(tensors[i], len, tensors[last], out_len)) return 0;
  }
  return 1;
}

/* Images per sub-batch: at least two per thread, so every layer still has tiles for all. */
static int sub_batch_images(const mnq_net *net, int batch, int threads) {
  size_t widest = 0; /* one image's input + output of the layer that moves the most bytes */
  for (int i = 0; i < net->num_layers; i++) {
    const size_t moved = image_bytes(net, i) + image_bytes(net, i + 1);
    if (moved > widest) widest = moved;
  }
  long images = widest ? SUB_BATCH_BYTES / (long)widest : batch;
  if (images < 2L * threads) images = 2L * threads;
  return images < batch ? (int)images : batch;
}

/* Chained runs: each image goes through the whole network on one thread, claimed from
 * the pool's counter one image at a time. Threads then share nothing but the weights,
 * no layer waits for another thread's tiles, and a thread the OS holds up delays only the
 * image it holds: a batch scales like independent runs side by side. Needs at least this
 * many images per thread, so that the last images' imbalance stays small. */
#define CHAIN_IMAGES_PER_THREAD 4
#define CHAIN_MAX_LAYERS 128 /* slots live on the caller's stack */

/* The images of a chained run advance through the layers independently, so image b's
 * tensors must not touch another image's (the input and output share no memory: see
 * edges_apart). A tensor that shares memory with no other keeps its layout (image b at
 * b * its bytes). Tensors that share memory (the ping-pong buffers) form groups whose union
 * is one interval of at least batch x the group's largest image: image b gets the b-th
 * equal part of it in every tensor of the group. 0 when a layer's input and output fall in
 * one group. */
static int plan_chain(const mnq_net *net, int batch, uint8_t *const *tensors, image_slot *slots) {
  const int n = net->num_layers;
  for (int i = 0; i <= n; i++) {
    uintptr_t lo = (uintptr_t)tensors[i], hi = lo + image_bytes(net, i) * (size_t)batch;
    for (int grew = i > 0 && i < n; grew;) { /* widen to every tensor overlapping the interval, transitively */
      grew = 0;
      for (int j = 1; j < n; j++) {
        const uintptr_t a = (uintptr_t)tensors[j], b = a + image_bytes(net, j) * (size_t)batch;
        if (j != i && overlap((const uint8_t *)lo, hi - lo, tensors[j], b - a) && (a < lo || b > hi))
          lo = a < lo ? a : lo, hi = b > hi ? b : hi, grew = 1;
      }
    }
    slots[i].base = (uint8_t *)lo;
    slots[i].stride = (hi - lo) / (size_t)batch; /* a tensor alone: its own bytes per image */
    if (i > 0 && slots[i].base == slots[i - 1].base) return 0;
  }
  return 1;
}

static int one_tile_per_image(void *ctx, int stage, int threads) {
  (void)stage, (void)threads;
  return ((const run_ctx *)ctx)->batch;
}

static void run_image(void *ctx, int stage, int image, int images, int participant) {
  (void)stage, (void)images;
  const run_ctx *r = ctx;
  const mnq_work w = {0, 1, participant_scratch(r, participant)};
  for (int i = 0; i < r->net->num_layers; i++) {
    const mnq_layer *L = &r->net->layers[i];
    L->kernel(L, r->slots[i].base + (size_t)image * r->slots[i].stride,
              r->slots[i + 1].base + (size_t)image * r->slots[i + 1].stride, 1, &w);
  }
}

int mnq_net_run(const mnq_net *net, int batch, uint8_t *const *tensors, uint8_t *scratch,
                int num_threads, double *layer_seconds) {
  if (!net || batch <= 0 || !tensors) return -1;
  if (net->scratch_per_thread && !scratch) return -1;
  for (int i = 0; i <= net->num_layers; i++)
    if (!tensors[i]) return -1;
  const int threads = mnq_net_threads_usable(num_threads);
  const int apart = batch > 1 && edges_apart(net, batch, tensors);
  image_slot slots[CHAIN_MAX_LAYERS + 1];
  /* a profiled run keeps layer order: its times are per layer */
  if (apart && threads > 1 && !layer_seconds && batch >= CHAIN_IMAGES_PER_THREAD * threads &&
      net->num_layers <= CHAIN_MAX_LAYERS && plan_chain(net, batch, tensors, slots)) {
    run_ctx r = {net, batch, 0, tensors, scratch, slots};
    /* images wait for no one: a thread another process slows costs only its own images, so
     * every thread asked for helps even on CPUs shared with other work (no adapting) */
    const mnq_pool_job job = {run_image, &r, 1, one_tile_per_image, threads, 0, NULL};
    return mnq_pool_run(&job);
  }
  const int step = apart ? sub_batch_images(net, batch, threads) : batch;
  for (int i = 0; layer_seconds && i < net->num_layers; i++) layer_seconds[i] = 0; /* sub-batches add */
  for (int first = 0; first < batch; first += step) {
    run_ctx r = {net, batch - first < step ? batch - first : step, first, tensors, scratch, NULL};
    const mnq_pool_job job = {run_tile, &r, net->num_layers, layer_tiles, threads, mnq_net_adapts_threads(net),
                              layer_seconds};
    if (mnq_pool_run(&job)) return -1;
  }
  return 0;
}

/* Arena layout, each part 64-byte aligned: tensor pointer table, two ping-pong
 * buffers of the largest intermediate tensor, per-thread scratch. Layer i writes
 * buffer i % 2, so no layer reads and writes the same buffer. */
static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* SIZE_MAX when a buffer would not fit in size_t (32-bit targets, large batches). */
static size_t largest_intermediate(const mnq_net *net, int batch) {
  size_t most = 0;
  for (int i = 0; i + 1 < net->num_layers; i++) {
    const mnq_layer_desc *d = &net->layers[i].d;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)tensor_bytes(d->out_h, d->out_w, d->out_c), (size_t)batch, &bytes) ||
        bytes > SIZE_MAX - 63)
      return SIZE_MAX;
    if (bytes > most) most = bytes;
  }
  return align64(most);
}

size_t mnq_net_arena_bytes(const mnq_net *net, int batch, int num_threads) {
  if (!net || batch <= 0) return 0;
  const size_t table = align64(sizeof(uint8_t *) * (size_t)(net->num_layers + 1));
  const size_t scratch = mnq_net_scratch_bytes(net, num_threads);
  size_t total;
  if (__builtin_mul_overflow(largest_intermediate(net, batch), (size_t)2, &total) || (net->scratch_per_thread && !scratch) ||
      __builtin_add_overflow(total, table + 63, &total) || /* 63: room to align the arena's start */
      __builtin_add_overflow(total, scratch, &total))
    return 0;
  return total;
}

int mnq_net_run_arena(const mnq_net *net, int batch, const uint8_t *input, uint8_t *output, void *arena,
                      size_t arena_bytes, int num_threads) {
  if (!net || batch <= 0 || !input || !output || !arena) return -1;
  const size_t need = mnq_net_arena_bytes(net, batch, num_threads);
  if (!need || arena_bytes < need) return -1;
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
