/* .mnq reader for C-only builds (docs/format.md is the specification). The
 * layer records already carry the resolved integer parameters, so reading is
 * validation plus copying fields; weights and biases stay in the file image,
 * which mnq_model_load maps read-only rather than copying. */
#define _FILE_OFFSET_BITS 64 /* 32-bit targets: stat() a 20 GiB file and refuse it by size */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mnq.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error ".mnq files are little-endian; this reader reads fields in host order"
#endif

enum { HEADER_SIZE = 96, LAYER_SIZE = 192, VERSION = 2, CRC_AT = 32 };
enum { LAYER_INT8 = 1, LAYER_PER_CHANNEL = 2, TYPE_UINT8 = 0, TYPE_INT8 = 1, TYPE_FLOAT32 = 2 };
#define MAX_LABELS_BYTES (16u << 20) /* as the Python reader: labels are names, not a payload */

struct model_owner {     /* what mnq_model_free releases */
  mnq_model model;
  void *file_image;      /* NULL when the caller owns the bytes */
  size_t mapped_bytes;   /* nonzero: file_image is a mapping of this size, else malloc'd */
  char *label_text;
  const char **labels;
};

static int fail(char *err, size_t n, const char *fmt, ...) {
  if (err && n) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
  }
  return -1;
}

static uint32_t u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static int32_t i32(const uint8_t *p) { int32_t v; memcpy(&v, p, 4); return v; }
static uint64_t u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* CRC-32 (zlib polynomial), with the header's crc field read as zero. */
static uint32_t file_crc32(const uint8_t *data, size_t size) {
  uint32_t table[256];
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; i++) {
    const uint8_t b = (i >= CRC_AT && i < CRC_AT + 4) ? 0 : data[i];
    crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8);
  }
  return crc ^ 0xFFFFFFFFu;
}

/* A blob must lie after the layer table and inside the file. */
static int blob_ok(uint64_t off, uint64_t len, uint64_t table_end, uint64_t size) {
  return off >= table_end && off <= size && len <= size - off;
}

static int parse_layers(struct model_owner *o, const uint8_t *data, uint64_t size, char *err, size_t n) {
  mnq_model *m = &o->model;
  const uint64_t table_end = HEADER_SIZE + (uint64_t)m->num_layers * LAYER_SIZE;
  for (int i = 0; i < m->num_layers; i++) {
    const uint8_t *r = data + HEADER_SIZE + (size_t)i * LAYER_SIZE;
    mnq_layer_desc *d = &m->layers[i];
    int *dims[] = {&d->in_h, &d->in_w, &d->in_c, &d->out_h, &d->out_w, &d->out_c,
                   &d->k_h, &d->k_w, &d->stride_h, &d->stride_w};
    for (int k = 0; k < 10; k++) {
      const uint32_t v = u32(r + 12 + 4 * k);
      if (v > (1u << 24)) return fail(err, n, "layer %d: dimension %u out of range", i, v);
      *dims[k] = (int)v;
    }
    d->in_zp = i32(r + 56);
    d->w_zp = i32(r + 64);
    d->out_zp = i32(r + 72);
    d->op = i32(r + 80);
    int32_t *resolved[] = {&d->pad_top, &d->pad_left, &d->multiplier, &d->shift, &d->act_min, &d->act_max,
                           &d->softmax_multiplier, &d->softmax_left_shift, &d->softmax_diff_min};
    for (int k = 0; k < 9; k++) *resolved[k] = i32(r + 84 + 4 * k);
    const uint64_t w_off = u64(r + 136), w_len = u64(r + 144), b_off = u64(r + 152), b_len = u64(r + 160);
    /* version 2 (zero in version 1): per-channel block, flags, average-pool rounding centre */
    const uint64_t c_off = u64(r + 168), c_len = u64(r + 176);
    const uint32_t flags = u32(r + 184);
    d->pool_center = i32(r + 188);
    if (flags & ~(uint32_t)(LAYER_INT8 | LAYER_PER_CHANNEL)) return fail(err, n, "layer %d: unknown flags %u", i, flags);
    if ((flags & LAYER_INT8) != (m->layer_type == TYPE_INT8))
      return fail(err, n, "layer %d: its type differs from the model's", i);
    const int has_weights = d->op == MNQ_OP_CONV || d->op == MNQ_OP_DEPTHWISE || d->op == MNQ_OP_POINTWISE;
    if (d->op < MNQ_OP_CONV || d->op > MNQ_OP_COPY) return fail(err, n, "layer %d: unknown op %d", i, d->op);
    if (has_weights) {
      const uint64_t want = d->op == MNQ_OP_DEPTHWISE ? (uint64_t)d->k_h * d->k_w * d->out_c
                                                      : (uint64_t)d->out_c * d->k_h * d->k_w * d->in_c;
      if (!blob_ok(w_off, w_len, table_end, size)) return fail(err, n, "layer %d: weights lie outside the file", i);
      if (w_len != want)
        return fail(err, n, "layer %d: %llu weight bytes, its shape needs %llu", i, (unsigned long long)w_len,
                    (unsigned long long)want);
      d->weights = data + w_off;
      if (b_len) {
        if (!blob_ok(b_off, b_len, table_end, size)) return fail(err, n, "layer %d: bias lies outside the file", i);
        if (b_len != 4 * (uint64_t)d->out_c) return fail(err, n, "layer %d: bias has %llu bytes", i, (unsigned long long)b_len);
        if ((uintptr_t)(data + b_off) % 4) return fail(err, n, "layer %d: bias is not 4-byte aligned", i);
        d->bias = (const int32_t *)(data + b_off);
      }
      if (flags & LAYER_PER_CHANNEL) { /* float32 scales, int32 multipliers, int32 shifts; out_c each */
        if (!blob_ok(c_off, c_len, table_end, size) || c_len != 12 * (uint64_t)d->out_c || (uintptr_t)(data + c_off) % 4)
          return fail(err, n, "layer %d: per-channel block is outside the file, misaligned or the wrong size", i);
        d->channel_multipliers = (const int32_t *)(data + c_off) + d->out_c;
        d->channel_shifts = (const int32_t *)(data + c_off) + 2 * (size_t)d->out_c;
      }
    } else if (flags & LAYER_PER_CHANNEL) {
      return fail(err, n, "layer %d: per-channel requantization on a layer without weights", i);
    }
  }
  return 0;
}

static int parse_labels(struct model_owner *o, const uint8_t *data, uint64_t size, char *err, size_t n) {
  mnq_model *m = &o->model;
  const uint32_t count = u32(data + 68);
  if (!count) return 0;
  const uint64_t off = u64(data + 56), len = u32(data + 64);
  if (!blob_ok(off, len, HEADER_SIZE + (uint64_t)m->num_layers * LAYER_SIZE, size))
    return fail(err, n, "labels lie outside the file");
  if (len > MAX_LABELS_BYTES)
    return fail(err, n, "%llu bytes of labels, more than the 16 MiB allowed", (unsigned long long)len);
  /* count names need count - 1 newlines: check before allocating count pointers */
  if (count > len + 1)
    return fail(err, n, "label count mismatch (header says %u names in %llu bytes)", count, (unsigned long long)len);
  if (!(o->label_text = malloc(len + 1)) || !(o->labels = calloc(count, sizeof(char *))))
    return fail(err, n, "out of memory");
  memcpy(o->label_text, data + off, len);
  o->label_text[len] = 0;
  uint64_t names = 1;
  for (uint64_t i = 0; i < len; i++) names += o->label_text[i] == '\n';
  if (names != count) return fail(err, n, "label count mismatch (%llu names, header says %u)", (unsigned long long)names, count);
  char *p = o->label_text, *end = o->label_text + len;
  for (uint32_t i = 0; i < count; i++) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    o->labels[i] = p;
    p = nl ? nl : end; /* only the last name has no newline */
    *p++ = 0;
  }
  m->num_labels = (int)count;
  m->labels = o->labels;
  return 0;
}

mnq_model *mnq_model_parse(const void *bytes, size_t size, char *err, size_t n) {
  const uint8_t *data = bytes;
  if (err && n) err[0] = 0;
  if (!data || size < HEADER_SIZE || memcmp(data, "MNQMODEL", 8)) {
    fail(err, n, "not an .mnq model file (bad magic)");
    return NULL;
  }
  if (u32(data + 8) != 1 && u32(data + 8) != VERSION) {
    fail(err, n, ".mnq version %u, this reader reads versions 1 and %d", u32(data + 8), VERSION);
    return NULL;
  }
  if (u64(data + 24) != size) {
    fail(err, n, "truncated or padded .mnq file (%llu bytes, header says %llu)", (unsigned long long)size,
         (unsigned long long)u64(data + 24));
    return NULL;
  }
  if (u32(data + 12) != HEADER_SIZE || u32(data + 16) != LAYER_SIZE) {
    fail(err, n, "unexpected header/layer record size");
    return NULL;
  }
  if (file_crc32(data, size) != u32(data + CRC_AT)) {
    fail(err, n, "checksum mismatch: the .mnq file is corrupt or was modified");
    return NULL;
  }
  const uint32_t num_layers = u32(data + 20);
  if (num_layers == 0 || HEADER_SIZE + (uint64_t)num_layers * LAYER_SIZE > size) {
    fail(err, n, "layer table does not fit in the file");
    return NULL;
  }
  struct model_owner *o = calloc(1, sizeof(*o));
  mnq_model *m = o ? &o->model : NULL;
  if (!o || !(m->layers = calloc(num_layers, sizeof(mnq_layer_desc)))) {
    free(o);
    fail(err, n, "out of memory");
    return NULL;
  }
  m->num_layers = (int)num_layers;
  m->input_h = (int)u32(data + 36);
  m->input_w = (int)u32(data + 40);
  m->input_c = (int)u32(data + 44);
  memcpy(&m->input_scale, data + 48, 4);
  m->input_zp = i32(data + 52);
  m->layer_type = data[72];
  m->input_type = data[73];
  m->output_type = data[74];
  if (m->layer_type > TYPE_INT8 || m->input_type > TYPE_FLOAT32 || m->output_type > TYPE_FLOAT32) {
    fail(err, n, "unknown layer, input or output type code");
    mnq_model_free(m);
    return NULL;
  }
  {
    float edge_scale;
    memcpy(&edge_scale, data + 76, 4);
    const int32_t edge_zp_u8 = i32(data + 80) + (m->input_type == TYPE_INT8 ? 128 : 0);
    m->input_takes_pixels = m->input_type == m->layer_type || m->input_type == TYPE_FLOAT32 ||
                            (edge_scale == m->input_scale && edge_zp_u8 == m->input_zp);
  }
  if (parse_layers(o, data, size, err, n) || parse_labels(o, data, size, err, n)) {
    mnq_model_free(m);
    return NULL;
  }
  const mnq_layer_desc *first = &m->layers[0], *last = &m->layers[num_layers - 1];
  if (first->in_h != m->input_h || first->in_w != m->input_w || first->in_c != m->input_c) {
    fail(err, n, "input shape %dx%dx%d differs from the first layer's", m->input_h, m->input_w, m->input_c);
    mnq_model_free(m);
    return NULL;
  }
  /* dims are up to 2^24 each: h*w fits int64, and past INT_MAX the product is refused */
  const int64_t out_hw = (int64_t)last->out_h * last->out_w;
  if (out_hw > INT_MAX || out_hw * last->out_c > INT_MAX) {
    fail(err, n, "output of %dx%dx%d bytes per image is too large", last->out_h, last->out_w, last->out_c);
    mnq_model_free(m);
    return NULL;
  }
  m->output_size = (int)(out_hw * last->out_c);
  return m;
}

static const char *file_kind(mode_t mode) {
  return S_ISDIR(mode) ? "a directory" : S_ISFIFO(mode) ? "a named pipe (FIFO)" : S_ISCHR(mode) ? "a character device"
       : S_ISBLK(mode) ? "a block device" : S_ISSOCK(mode) ? "a socket" : "not a file";
}

/* Only a regular file within the size cap is read: /dev/zero, a FIFO or a 20 GiB
 * sparse file is refused from its metadata, before any byte is read. */
static int check_file(const char *path, const struct stat *st, char *err, size_t n) {
  if (!S_ISREG(st->st_mode))
    return fail(err, n, "%s: %s, not a regular file; a model is read only from a regular file", path,
                file_kind(st->st_mode));
  if ((uint64_t)st->st_size > MNQ_MAX_MODEL_BYTES)
    return fail(err, n, "%s: %llu bytes, more than the %u MiB allowed for a model", path,
                (unsigned long long)st->st_size, MNQ_MAX_MODEL_BYTES >> 20);
  return 0;
}

/* The whole file into malloc'd memory, for file systems that cannot mmap. */
static void *read_whole(int fd, size_t size) {
  uint8_t *image = malloc(size ? size : 1);
  for (size_t got = 0; image && got < size;) {
    const ssize_t r = read(fd, image + got, size - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) { /* an error, or the file shrank since fstat */
      free(image);
      return NULL;
    }
    got += (size_t)r;
  }
  return image;
}

mnq_model *mnq_model_load(const char *path, char *err, size_t n) {
  if (err && n) err[0] = 0;
  struct stat st;
  /* stat before open: a FIFO or a device is never opened */
  if (stat(path, &st)) {
    fail(err, n, "%s: %s", path, strerror(errno));
    return NULL;
  }
  if (check_file(path, &st, err, n)) return NULL;
  const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* NONBLOCK: a FIFO put there since */
  if (fd < 0 || fstat(fd, &st)) {
    fail(err, n, "%s: %s", path, strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
  }
  if (check_file(path, &st, err, n)) {
    close(fd);
    return NULL;
  }
  const size_t size = (size_t)st.st_size;
  /* mapped, the file image stays in the page cache (shared, reclaimable) instead of a private copy */
  void *image = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
  const size_t mapped_bytes = image != MAP_FAILED ? size : 0;
  if (image == MAP_FAILED) image = read_whole(fd, size);
  close(fd);
  if (!image) {
    fail(err, n, "%s: cannot read the file", path);
    return NULL;
  }
  mnq_model *m = mnq_model_parse(image, size, err, n);
  if (!m) {
    /* name the file in the message */
    if (err && n) {
      char why[256];
      snprintf(why, sizeof(why), "%s", err);
      snprintf(err, n, "%s: %s", path, why);
    }
    if (mapped_bytes) munmap(image, mapped_bytes);
    else free(image);
    return NULL;
  }
  struct model_owner *o = (struct model_owner *)m;
  o->file_image = image;
  o->mapped_bytes = mapped_bytes;
  return m;
}

void mnq_model_free(mnq_model *model) {
  if (!model) return;
  struct model_owner *o = (struct model_owner *)model;
  free(model->layers);
  free(o->labels);
  free(o->label_text);
  if (o->mapped_bytes) munmap(o->file_image, o->mapped_bytes);
  else free(o->file_image);
  free(o);
}

void mnq_model_release_weights(mnq_model *model) {
  struct model_owner *o = (struct model_owner *)model;
  if (!model || !o->file_image) return;
  for (int i = 0; i < model->num_layers; i++) {
    mnq_layer_desc *d = &model->layers[i];
    d->weights = NULL;
    d->bias = NULL;
    d->channel_multipliers = d->channel_shifts = NULL;
  }
  if (o->mapped_bytes) munmap(o->file_image, o->mapped_bytes);
  else free(o->file_image);
  o->file_image = NULL;
  o->mapped_bytes = 0;
}
