/* mnq public C API: describe a uint8 MobileNet-style network layer by layer,
 * build a net (kernels chosen and weights packed once), run it many times.
 * Used by the Python extension and by the C-only build alike. */
#ifndef MNQ_H
#define MNQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mnq_op {
  MNQ_OP_CONV = 0,      /* generic conv, any kernel size / stride / padding */
  MNQ_OP_DEPTHWISE = 1, /* depthwise conv, depth multiplier 1 */
  MNQ_OP_POINTWISE = 2, /* 1x1 conv, stride 1, no padding: a GEMM */
  MNQ_OP_AVGPOOL = 3,
  MNQ_OP_SOFTMAX = 4,   /* over the innermost dimension */
  MNQ_OP_COPY = 5       /* reshape / squeeze: bytes unchanged */
};

/* Instruction-set levels, lowest first; a net may use any level up to the one asked.
 * x86 and ARM levels share one numbering; a CPU only ever supports its own. */
enum mnq_isa {
  MNQ_ISA_SCALAR = 0,
  MNQ_ISA_AVX2 = 1,
  MNQ_ISA_AVX512VNNI = 2,
  MNQ_ISA_AMX = 3,
  MNQ_ISA_NEON = 4,     /* ARMv7 NEON or aarch64 Advanced SIMD */
  MNQ_ISA_NEONDOT = 5,  /* aarch64 with the dot-product extension (SDOT/UDOT) */
  MNQ_ISA_COUNT = 6
};

/* One layer, all quantization already resolved (see docs: "Exact arithmetic").
 * Tensors are NHWC uint8; the batch size is given at run time. */
typedef struct {
  int op;
  int in_h, in_w, in_c;
  int out_h, out_w, out_c;
  int k_h, k_w, stride_h, stride_w;
  int pad_top, pad_left;        /* padding before; padding after is implied */
  int32_t in_zp, w_zp, out_zp;
  int32_t multiplier, shift;    /* output = SRDHM(acc << max(shift,0), multiplier) >> max(-shift,0) */
  /* Per-output-channel requantization (int8 models: per-channel weight scales): out_c
   * entries each, used instead of multiplier/shift; NULL for per-tensor layers. */
  const int32_t *channel_multipliers, *channel_shifts;
  int32_t act_min, act_max;     /* clamp, in output uint8 units */
  const uint8_t *weights;       /* conv/pointwise [out_c][k_h][k_w][in_c]; depthwise [k_h][k_w][c] */
  const int32_t *bias;          /* [out_c], may be NULL */
  int32_t softmax_multiplier, softmax_left_shift, softmax_diff_min;
} mnq_layer_desc;

typedef struct mnq_net mnq_net;

/* CPU levels this process may use (cpuid + OS state); bit i set = level i usable. */
unsigned mnq_isa_supported_mask(void);
/* Best usable level. */
int mnq_isa_best(void);
const char *mnq_isa_name(int isa);
/* Human-readable CPU feature list, e.g. "avx2 fma avx512f avx512bw avx512vnni amx-int8". */
const char *mnq_cpu_features(void);

/* Build a net. Layer i reads tensor i and writes tensor i+1. The descs' weight and
 * bias arrays must outlive the net. Returns NULL and fills err (if given) on failure. */
mnq_net *mnq_net_create(const mnq_layer_desc *layers, int num_layers, int isa,
                        char *err, size_t err_len);
void mnq_net_destroy(mnq_net *net);
int mnq_net_num_layers(const mnq_net *net);
const char *mnq_net_kernel_name(const mnq_net *net, int layer);
int mnq_net_isa(const mnq_net *net);

/* Bytes of per-run scratch the caller must provide for this thread count. */
size_t mnq_net_scratch_bytes(const mnq_net *net, int num_threads);

/* Run the whole network. tensors[0] is the input [batch,H,W,C]; tensors[i+1] receives
 * layer i's output. Consecutive layers may share buffers only if a layer never reads
 * and writes the same one. layer_seconds (optional, num_layers entries) receives the
 * wall time of each layer. No allocation happens here. Returns 0 on success. */
int mnq_net_run(const mnq_net *net, int batch, uint8_t *const *tensors,
                uint8_t *scratch, int num_threads, double *layer_seconds);

/* Threads a run will actually use for `requested`: 1 in a child forked after the
 * parent ran multi-threaded (the OpenMP runtime cannot follow a fork). */
int mnq_net_threads_usable(int requested);

/* ---- One caller-supplied arena for a whole inference (embedded use) ----
 * The arena holds the intermediate tensors (two ping-pong buffers), the per-thread
 * scratch and the tensor pointer table; nothing is allocated while running. */
size_t mnq_net_arena_bytes(const mnq_net *net, int batch, int num_threads);
/* Read input [batch, H, W, C] and write the last layer's output; returns 0 on
 * success, -1 on bad arguments or an arena smaller than mnq_net_arena_bytes(). */
int mnq_net_run_arena(const mnq_net *net, int batch, const uint8_t *input, uint8_t *output,
                      void *arena, size_t arena_bytes, int num_threads);

/* ---- .mnq model files (docs/format.md) ---- */
typedef struct {
  int num_layers;
  mnq_layer_desc *layers;       /* weights/bias point into the file image */
  int input_h, input_w, input_c;
  float input_scale;
  int32_t input_zp;
  int output_size;              /* bytes per image of the last layer's output */
  int num_labels;               /* 0 when the file has none */
  const char *const *labels;    /* NUL-terminated class names */
} mnq_model;

/* Validate and parse a file image (magic, version, size, CRC-32, blob bounds,
 * weight/bias lengths). The model points into `data`, which must stay alive and
 * be 4-byte aligned. Returns NULL and fills err on failure. */
mnq_model *mnq_model_parse(const void *data, size_t size, char *err, size_t err_len);
/* Map (or read) a regular file of at most MNQ_MAX_MODEL_BYTES and parse it; the
 * model owns the file image. Devices, FIFOs and larger files are refused unread. */
#define MNQ_MAX_MODEL_BYTES (512u << 20)
mnq_model *mnq_model_load(const char *path, char *err, size_t err_len);
void mnq_model_free(mnq_model *model);

#ifdef __cplusplus
}
#endif
#endif
