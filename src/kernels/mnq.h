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
  MNQ_ISA_NEONI8MM = 6, /* aarch64 with dot product and the 8-bit matrix multiply (UMMLA) */
  MNQ_ISA_COUNT = 7
};

/* One layer, all quantization already resolved (see docs: "Exact arithmetic").
 * Tensors are NHWC uint8; the batch size is given at run time. An int8 layer runs
 * as uint8: every int8 value x and zero point z become x + 128 and z + 128
 * (docs/exactness.md, "int8 models"). */
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
  /* Average pool: the mean of (x - pool_center) is rounded half away from zero, then
   * pool_center is added back. 0 for uint8 layers (TFLite's uint8 rule, sums are never
   * negative); 128 for int8 layers run as uint8 (x = int8 value + 128, TFLite's int8 rule). */
  int32_t pool_center;
} mnq_layer_desc;

typedef struct mnq_net mnq_net;

/* CPU levels this process may use (cpuid + OS state); bit i set = level i usable. */
unsigned mnq_isa_supported_mask(void);
/* Best usable level. */
int mnq_isa_best(void);
const char *mnq_isa_name(int isa);
/* Every CPU feature that changes a kernel choice, space-separated, e.g.
 * "avx2 fma avx-vnni avx512f/bw/dq/vl avx512-vnni avx512-vbmi amx-int8". */
const char *mnq_cpu_features(void);
/* Kernel groups (src/kernels/isa_levels.txt) compiled into this library, and those its
 * compiler could not build, space-separated ("" for none). A level whose kernels were not
 * built is never in mnq_isa_supported_mask(). */
const char *mnq_kernels_built(void);
const char *mnq_kernels_not_built(void);

/* Peak probes: one core's measured int8 multiply-accumulate throughput of the
 * instruction a level's GEMMs are built on (bench/peak_probe.py, mnq profile). */
enum mnq_peak {
  MNQ_PEAK_VPMADDWD_YMM = 0,   /* AVX2 vpmaddwd + vpaddd on int16 (the exact AVX2 GEMM) */
  MNQ_PEAK_VPMADDUBSW_YMM = 1, /* AVX2 vpmaddubsw + vpmaddwd + vpaddd (saturates int16: reference only) */
  MNQ_PEAK_VPDPBUSD_YMM = 2,   /* AVX-VNNI */
  MNQ_PEAK_VPDPBUSD_ZMM = 3,   /* AVX-512 VNNI */
  MNQ_PEAK_TDPBUSD = 4,        /* AMX-INT8 */
  MNQ_PEAK_COUNT = 5
};
const char *mnq_peak_name(int which);
/* Whether this CPU (and OS) runs the probe's instructions. */
int mnq_peak_available(int which);
/* The probe bounding `isa`'s GEMMs on this CPU, or -1 (scalar, ARM). */
int mnq_peak_of_isa(int isa);
/* MACs per second, the best of repeated timed runs over about `seconds`; 0 when unavailable. */
double mnq_peak_macs_per_second(int which, double seconds);

/* Build a net. Layer i reads tensor i and writes tensor i+1. The descs' weight and
 * bias arrays must outlive the net. Returns NULL and fills err (if given) on failure. */
mnq_net *mnq_net_create(const mnq_layer_desc *layers, int num_layers, int isa,
                        char *err, size_t err_len);
void mnq_net_destroy(mnq_net *net);
int mnq_net_num_layers(const mnq_net *net);
const char *mnq_net_kernel_name(const mnq_net *net, int layer);
int mnq_net_isa(const mnq_net *net);

/* 1 if running the net still reads the weight, bias or per-channel arrays of the
 * descs given to mnq_net_create (the scalar kernels, for one, read them in place);
 * 0 if every layer runs from its own packed copy, so the caller may free them
 * (mnq_model_release_weights). */
int mnq_net_reads_layer_data(const mnq_net *net);

/* Bytes of per-run scratch the caller must provide for this thread count; 0 when that
 * does not fit in size_t (32-bit targets), and then a run with this count cannot be given it. */
size_t mnq_net_scratch_bytes(const mnq_net *net, int num_threads);

/* Run the whole network. tensors[0] is the input [batch,H,W,C]; tensors[i+1] receives
 * layer i's output. Consecutive layers may share buffers only if a layer never reads
 * and writes the same one. A batch of more than a few images runs image by image on
 * each thread (several threads) or as consecutive sub-batches (one thread), so a layer's
 * tensors stay in cache, unless the input or the output shares memory with another
 * tensor; an intermediate tensor that shares memory with another then ends with
 * unspecified bytes, one that shares none holds the whole batch's output.
 * layer_seconds (optional, num_layers entries) receives the wall time of each layer.
 * No allocation happens here. Returns 0 on success. */
int mnq_net_run(const mnq_net *net, int batch, uint8_t *const *tensors,
                uint8_t *scratch, int num_threads, double *layer_seconds);

/* Threads a run will use for `requested`: clamped to [1, 1024]. */
int mnq_net_threads_usable(int requested);

/* A net adapts its thread count by default: a run (or sub-batch) that goes layer by layer
 * on several threads, where each layer waits for its last tile, uses no more threads than
 * the CPUs left free by runnable threads outside mnq's pool (other processes, the
 * application's other threads), down to the caller alone, so a thread that shares its CPU
 * with other work does not hold up every layer. A batch run image by image on each thread
 * keeps num_threads: no image waits for another. Fixed (adapt = 0): always num_threads.
 * The bytes computed are the same either way. */
void mnq_net_set_adapt_threads(mnq_net *net, int adapt);
int mnq_net_adapts_threads(const mnq_net *net);
/* Threads the CPUs free at this instant allow a run asking for `requested`: the count an
 * adapting run weighs with the previous two runs' (Linux reads the runnable threads in
 * /proc/loadavg; elsewhere it is `requested`, clamped). */
int mnq_threads_free(int requested);

/* ---- One caller-supplied arena for a whole inference (embedded use) ----
 * The arena holds the intermediate tensors (two ping-pong buffers), the per-thread
 * scratch and the tensor pointer table; nothing is allocated while running.
 * 0 on bad arguments or when the arena would not fit in size_t (32-bit targets,
 * large batches); mnq_net_run_arena refuses those. */
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
  /* The model's own types (version 2 files; 0 for version 1): 0 uint8, 1 int8, 2 float32.
   * The net always runs uint8 bytes: an int8 value x as x + 128. */
  int layer_type, input_type, output_type;
  /* 1 when image pixels p are the net's input bytes under mnq's pixel rule: a uint8 or
   * int8 input without an edge op (int8: p - 128), a float32 input, or an input
   * QUANTIZE that only changes the type (same scale, zero points 128 apart). */
  int input_takes_pixels;
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
/* For a model from mnq_model_load, once every net built from it reports
 * mnq_net_reads_layer_data() == 0: frees the file image (the raw weights and biases)
 * and sets the layers' array pointers to NULL. Labels and shapes stay. */
void mnq_model_release_weights(mnq_model *model);

#ifdef __cplusplus
}
#endif
#endif
