/* mnq-run: classify images with a .mnq model, no Python needed.
 *   mnq-run [options] MODEL.mnq IMAGE.ppm|IMAGE.raw...
 * An image is a binary PPM (P6, maxval 255) of the model's exact input size, or
 * (name ending in .raw) exactly H*W*C bytes of HWC uint8 pixels. Pixels p go to the
 * net as they are: for an int8 model that is the int8 input p - 128 (mnq's pixel
 * rule, docs/format.md), and outputs are printed and written in uint8 form (an
 * int8 softmax's value + 128, i.e. probability * 256 either way). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnq.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: mnq-run [--top K] [--isa LEVEL] [--threads N] [--output FILE] [--verbose] MODEL.mnq IMAGE...\n"
          "  IMAGE       binary PPM (P6) of the model's input size, or .raw HWC uint8 bytes\n"
          "  --top K     classes to print per image (default 5)\n"
          "  --isa LEVEL force an instruction-set level (default: the best this CPU has)\n"
          "  --threads N OpenMP threads (default 1)\n"
          "  --output F  also write every image's raw uint8 output, concatenated, to F\n"
          "  --verbose   print the instruction-set level and the kernel of each layer\n");
}

static int read_file(const char *path, uint8_t **data, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n == cap) {
      uint8_t *bigger = realloc(buf, cap *= 2);
      if (!bigger) { free(buf); buf = NULL; }
      buf = bigger;
    }
  }
  const int bad = ferror(f) || !buf;
  fclose(f);
  if (bad) { free(buf); errno = bad && !buf ? ENOMEM : EIO; return -1; }
  *data = buf;
  *size = n;
  return 0;
}

/* Next PPM header integer, skipping whitespace and # comments. */
static long ppm_int(const uint8_t *p, size_t size, size_t *at) {
  for (;;) {
    while (*at < size && strchr(" \t\r\n", p[*at])) ++*at;
    if (*at < size && p[*at] == '#') {
      while (*at < size && p[*at] != '\n') ++*at;
    } else {
      break;
    }
  }
  long v = -1;
  while (*at < size && p[*at] >= '0' && p[*at] <= '9' && v < 100000) v = (v < 0 ? 0 : v * 10) + (p[(*at)++] - '0');
  return v;
}

static int ends_with(const char *s, const char *tail) {
  const size_t a = strlen(s), b = strlen(tail);
  return a >= b && strcmp(s + a - b, tail) == 0;
}

/* Fill pixels[h*w*c] from the image file; prints the reason and returns -1 on error. */
static int load_image(const char *path, const mnq_model *m, uint8_t *pixels) {
  const size_t want = (size_t)m->input_h * m->input_w * m->input_c;
  uint8_t *data;
  size_t size, at = 2;
  if (read_file(path, &data, &size)) {
    fprintf(stderr, "mnq-run: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = -1;
  if (ends_with(path, ".raw")) {
    if (size == want) memcpy(pixels, data, want), rc = 0;
    else fprintf(stderr, "mnq-run: %s: raw image has %zu bytes, the model needs %dx%dx%d = %zu\n", path, size,
                 m->input_h, m->input_w, m->input_c, want);
  } else if (size < 2 || memcmp(data, "P6", 2)) {
    fprintf(stderr, "mnq-run: %s: not a binary PPM (P6) image; use .ppm or .raw HWC bytes\n", path);
  } else {
    const long w = ppm_int(data, size, &at), h = ppm_int(data, size, &at), maxval = ppm_int(data, size, &at);
    if (w <= 0 || h <= 0 || maxval != 255 || at >= size || !strchr(" \t\r\n", data[at]))
      fprintf(stderr, "mnq-run: %s: bad PPM header (need P6 with maxval 255)\n", path);
    else if (w != m->input_w || h != m->input_h || m->input_c != 3)
      fprintf(stderr, "mnq-run: %s: image is %ldx%ld, the model needs %dx%d (width x height) RGB\n", path, w, h,
              m->input_w, m->input_h);
    else if (size - at - 1 != want)
      fprintf(stderr, "mnq-run: %s: PPM pixel data has %zu bytes, expected %zu\n", path, size - at - 1, want);
    else
      memcpy(pixels, data + at + 1, want), rc = 0;
  }
  free(data);
  return rc;
}

static int isa_by_name(const char *name) {
  for (int i = 0; i < MNQ_ISA_COUNT; i++)
    if (!strcmp(name, mnq_isa_name(i))) return i;
  return -1;
}

static void print_top(const char *path, const mnq_model *m, const uint8_t *out, int top) {
  char *taken = calloc((size_t)m->output_size, 1);
  printf("%s\n", path);
  for (int k = 0; k < top && k < m->output_size && taken; k++) {
    int best = -1;
    for (int i = 0; i < m->output_size; i++)
      if (!taken[i] && (best < 0 || out[i] > out[best])) best = i;
    taken[best] = 1;
    printf("  %.3f %5d  %s\n", out[best] / 256.0, best, best < m->num_labels ? m->labels[best] : "");
  }
  free(taken);
}

int main(int argc, char **argv) {
  int top = 5, threads = 1, isa = mnq_isa_best(), verbose = 0, argi = 1;
  const char *output_path = NULL;
  for (; argi < argc && argv[argi][0] == '-' && argv[argi][1] == '-'; argi++) {
    const char *opt = argv[argi], *val = argi + 1 < argc ? argv[argi + 1] : NULL;
    if (!strcmp(opt, "--help")) { usage(stdout); return 0; }
    if (!strcmp(opt, "--verbose")) { verbose = 1; continue; }
    if (!val) { fprintf(stderr, "mnq-run: %s needs a value\n", opt); return 2; }
    argi++;
    if (!strcmp(opt, "--top")) top = atoi(val);
    else if (!strcmp(opt, "--threads")) threads = atoi(val);
    else if (!strcmp(opt, "--output")) output_path = val;
    else if (!strcmp(opt, "--isa") && (isa = isa_by_name(val)) < 0) {
      fprintf(stderr, "mnq-run: unknown instruction set '%s'\n", val);
      return 2;
    } else if (strcmp(opt, "--isa")) {
      fprintf(stderr, "mnq-run: unknown option %s\n", opt);
      usage(stderr);
      return 2;
    }
  }
  if (argc - argi < 2 || top < 0 || threads < 1) {
    usage(stderr);
    return 2;
  }
  char err[512];
  mnq_model *m = mnq_model_load(argv[argi], err, sizeof(err));
  if (!m) {
    fprintf(stderr, "mnq-run: %s\n", err);
    return 2;
  }
  if (!m->input_takes_pixels) {
    fprintf(stderr, "mnq-run: %s: the model's input QUANTIZE rescales its input; mnq-run feeds pixels to the "
            "network directly and supports only edges that change the type\n", argv[argi]);
    mnq_model_free(m);
    return 2;
  }
  mnq_net *net = mnq_net_create(m->layers, m->num_layers, isa, err, sizeof(err));
  if (!net) {
    fprintf(stderr, "mnq-run: %s: %s\n", argv[argi], err);
    mnq_model_free(m);
    return 2;
  }
  /* the kernels keep their own packed copies: drop the raw weights (4 MB on the main model) */
  const int raw_weights_kept = mnq_net_reads_layer_data(net);
  if (!raw_weights_kept) mnq_model_release_weights(m);
  /* every buffer is allocated once, before the first inference */
  const size_t arena_bytes = mnq_net_arena_bytes(net, 1, threads);
  if (verbose) {
    fprintf(stderr, "isa %s (cpu: %s), arena %zu bytes, raw weights %s\n", mnq_isa_name(isa), mnq_cpu_features(),
            arena_bytes, raw_weights_kept ? "kept (a kernel reads them)" : "released after packing");
    for (int i = 0; i < m->num_layers; i++) fprintf(stderr, "  layer %2d  %s\n", i, mnq_net_kernel_name(net, i));
  }
  void *arena = malloc(arena_bytes);
  uint8_t *pixels = malloc((size_t)m->input_h * m->input_w * m->input_c), *out = malloc((size_t)m->output_size);
  FILE *raw_out = output_path ? fopen(output_path, "wb") : NULL;
  int rc = 0;
  if (!arena || !pixels || !out) {
    fprintf(stderr, "mnq-run: out of memory\n");
    rc = 2;
  } else if (output_path && !raw_out) {
    fprintf(stderr, "mnq-run: %s: %s\n", output_path, strerror(errno));
    rc = 2;
  }
  for (int i = argi + 1; i < argc && rc != 2; i++) {
    if (load_image(argv[i], m, pixels)) {
      rc = 1;
      continue;
    }
    if (mnq_net_run_arena(net, 1, pixels, out, arena, arena_bytes, threads)) {
      fprintf(stderr, "mnq-run: %s: inference failed\n", argv[i]);
      rc = 2;
      break;
    }
    print_top(argv[i], m, out, top);
    if (raw_out && fwrite(out, 1, (size_t)m->output_size, raw_out) != (size_t)m->output_size) {
      fprintf(stderr, "mnq-run: %s: write failed\n", output_path);
      rc = 2;
    }
  }
  if (raw_out && fclose(raw_out)) rc = 2;
  free(arena);
  free(pixels);
  free(out);
  mnq_net_destroy(net);
  mnq_model_free(m);
  return rc;
}
