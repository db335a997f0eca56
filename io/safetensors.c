/*
 * safetensors.c — the safetensors format (Hugging Face's model files), read and written; see
 * safetensors.h. This file owns the bytes of such a file: the 8-byte header length, the JSON
 * header (parsed and written with jansson), the mapping of the data, the conversion of F16 and
 * BF16 to float32, and the atomic write of float32 tensors.
 *
 * Reading trusts nothing in the file: every number of the header is checked against the file's
 * real size before a pointer into the mapping is made, and no allocation is sized by the file
 * beyond what the file holds (the header length is bounded by PX_ST_MAX_HEADER and by the file;
 * the tensor table by the header's own entries). The data is read in place: a tensor's bytes
 * may sit at any alignment (other writers need not pad the header), so reads go through memcpy.
 */
#include "proxima/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonutil.h"
#include "proxima/fsutil.h"

/* The file's numbers are little-endian and float32 is written as the host holds it. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define PX_ST_META "__metadata__"
/* Names longer than this are cut in messages (a message has 2048 bytes). */
#define PX_ST_NAME_SHOWN 200

static const char *const px_dtype_names[] = {"F32", "F16", "BF16"};
static const int px_dtype_size[] = {4, 2, 2};

const char *px_st_dtype_name(px_st_dtype dtype) { return px_dtype_names[dtype]; }

/* ---------------------------------------------------------------------------------------------
 * Float conversions (IEEE 754 binary16 and bfloat16 to binary32): every value of the narrower
 * format is exactly a binary32 value, so these are bit manipulations, not roundings.
 * --------------------------------------------------------------------------------------------- */

static uint32_t px_f16_bits_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0x1f) return sign | 0x7f800000u | (man << 13);      /* inf, NaN (payload kept) */
  if (exp != 0) return sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
  if (man == 0) return sign;                                     /* signed zero */
  /* A subnormal, man * 2^-24: shift the leading one up to the implicit bit; each shift lowers
   * the binary32 exponent (113 for the first subnormal binade) by one. */
  uint32_t e = 113;
  do {
    man <<= 1;
    e--;
  } while (!(man & 0x400u));
  return sign | (e << 23) | ((man & 0x3ffu) << 13);
}

void px_st_read_f32(const px_st_tensor *t, float *out) {
  const unsigned char *p = t->data;
  size_t n = (size_t)t->count;
  if (t->dtype == PX_ST_F32) {
    if (n) memcpy(out, p, n * sizeof *out);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    uint16_t h;
    memcpy(&h, p + 2 * i, sizeof h);
    uint32_t bits = t->dtype == PX_ST_F16 ? px_f16_bits_to_f32(h) : (uint32_t)h << 16;
    memcpy(&out[i], &bits, sizeof bits);
  }
}

/* ---------------------------------------------------------------------------------------------
 * Reading: the header length, the JSON, each entry, then the ranges against each other.
 * --------------------------------------------------------------------------------------------- */

/* What px_st_open has while it validates: the file, its header, where the data starts. */
typedef struct px_st_reader {
  px_st_file *f;
  uint64_t header_len, data_size;
  px_error *err;
} px_st_reader;

/* A non-negative JSON integer into *v; 0 when it is not one. */
static int px_json_uint(const json_t *j, uint64_t *v) {
  if (!json_is_integer(j) || json_integer_value(j) < 0) return 0;
  *v = (uint64_t)json_integer_value(j);
  return 1;
}

/* The dtype of an entry; -1 with err set when it is not a string or not one this reader
 * converts. */
static int px_st_parse_dtype(const px_st_reader *r, const char *name, const json_t *j) {
  const char *path = r->f->path;
  if (!json_is_string(j)) {
    px_error_set(r->err, PX_EINPUT,
                 "%s: tensor '%.*s': dtype is %s (expected a string: F32, F16 "
                 "or BF16)",
                 path, PX_ST_NAME_SHOWN, name, px_json_kind(j));
    return -1;
  }
  for (int d = 0; d < 3; d++)
    if (strcmp(json_string_value(j), px_dtype_names[d]) == 0) return d;
  px_error_set(r->err, PX_EINPUT,
               "%s: tensor '%.*s': dtype '%.40s' is not one Proxima reads "
               "(expected F32, F16 or BF16)",
               path, PX_ST_NAME_SHOWN, name, json_string_value(j));
  return -1;
}

/* The shape of an entry into t (ndim, shape, count); PX_EINPUT when it is not an array of at
 * most PX_ST_MAX_DIMS non-negative integers or its product does not fit in int64. */
static px_status px_st_parse_shape(const px_st_reader *r, const char *name, const json_t *j,
                                   px_st_tensor *t) {
  const char *path = r->f->path;
  if (!json_is_array(j))
    return px_error_set(r->err, PX_EINPUT,
                        "%s: tensor '%.*s': shape is %s (expected an array of "
                        "non-negative integers)",
                        path, PX_ST_NAME_SHOWN, name, px_json_kind(j));
  size_t nd = json_array_size(j);
  if (nd > PX_ST_MAX_DIMS)
    return px_error_set(r->err, PX_EINPUT,
                        "%s: tensor '%.*s': shape has %zu dimensions "
                        "(expected at most %d)",
                        path, PX_ST_NAME_SHOWN, name, nd, PX_ST_MAX_DIMS);
  t->ndim = (int)nd;
  int has_zero = 0;
  for (size_t i = 0; i < nd; i++) {
    uint64_t d;
    const json_t *dim = json_array_get(j, i);
    if (!px_json_uint(dim, &d))
      return px_error_set(r->err, PX_EINPUT,
                          "%s: tensor '%.*s': shape[%zu] is %s (expected a "
                          "non-negative integer)",
                          path, PX_ST_NAME_SHOWN, name, i,
                          json_is_integer(dim) ? "negative" : px_json_kind(dim));
    t->shape[i] = (int64_t)d;
    has_zero |= d == 0;
  }
  /* A zero anywhere makes the product 0 whatever the other dimensions; otherwise each step must
   * stay below INT64_MAX (a shape of huge dimensions must not wrap to a small count). */
  int64_t count = has_zero ? 0 : 1;
  for (int i = 0; i < t->ndim && !has_zero; i++) {
    if (count > INT64_MAX / t->shape[i])
      return px_error_set(r->err, PX_EINPUT,
                          "%s: tensor '%.*s': shape's product does not fit in "
                          "64 bits (expected the element count of a tensor in the file)",
                          path, PX_ST_NAME_SHOWN, name);
    count *= t->shape[i];
  }
  t->count = count;
  return PX_OK;
}

/* data_offsets of an entry into t->begin, t->end, checked against the shape and the data. */
static px_status px_st_parse_offsets(const px_st_reader *r, const char *name, const json_t *j,
                                     px_st_tensor *t) {
  const char *path = r->f->path;
  uint64_t v[2];
  if (!json_is_array(j) || json_array_size(j) != 2 || !px_json_uint(json_array_get(j, 0), &v[0]) ||
      !px_json_uint(json_array_get(j, 1), &v[1]))
    return px_error_set(r->err, PX_EINPUT,
                        "%s: tensor '%.*s': data_offsets is not [begin, end] "
                        "(expected an array of two non-negative integers)",
                        path, PX_ST_NAME_SHOWN, name);
  t->begin = v[0], t->end = v[1];
  if (t->begin > t->end)
    return px_error_set(r->err, PX_EINPUT,
                        "%s: tensor '%.*s': data_offsets [%llu, %llu] begin "
                        "after end (expected begin <= end)",
                        path, PX_ST_NAME_SHOWN, name, (unsigned long long)t->begin,
                        (unsigned long long)t->end);
  int64_t size = px_dtype_size[t->dtype];
  if (t->count > INT64_MAX / size || (uint64_t)(t->count * size) != t->end - t->begin)
    return px_error_set(r->err, PX_EINPUT,
                        "%s: tensor '%.*s': data_offsets [%llu, %llu] hold "
                        "%llu bytes (expected %lld elements of %s, %lld bytes each)",
                        path, PX_ST_NAME_SHOWN, name, (unsigned long long)t->begin,
                        (unsigned long long)t->end, (unsigned long long)(t->end - t->begin),
                        (long long)t->count, px_dtype_names[t->dtype], (long long)size);
  if (t->end > r->data_size)
    return px_error_set(r->err, PX_EINPUT,
                        "%s: tensor '%.*s': data_offsets [%llu, %llu] end past "
                        "the data (expected end <= %llu, the bytes after the header)",
                        path, PX_ST_NAME_SHOWN, name, (unsigned long long)t->begin,
                        (unsigned long long)t->end, (unsigned long long)r->data_size);
  return PX_OK;
}

/* One header entry, name: {"dtype", "shape", "data_offsets"} and nothing else, into t. */
static px_status px_st_parse_entry(const px_st_reader *r, const char *name, const json_t *v,
                                   px_st_tensor *t) {
  const char *path = r->f->path;
  static const char *const fields[] = {"dtype", "shape", "data_offsets"};
  if (!json_is_object(v))
    return px_error_set(r->err, PX_EINPUT,
                        "%s: tensor '%.*s': entry is %s (expected an object "
                        "{\"dtype\", \"shape\", \"data_offsets\"})",
                        path, PX_ST_NAME_SHOWN, name, px_json_kind(v));
  const char *key;
  json_t *field;
  json_object_foreach((json_t *)v, key, field) {
    if (strcmp(key, fields[0]) != 0 && strcmp(key, fields[1]) != 0 && strcmp(key, fields[2]) != 0)
      return px_error_set(r->err, PX_EINPUT,
                          "%s: tensor '%.*s': unknown field '%.40s' (expected "
                          "only dtype, shape and data_offsets)",
                          path, PX_ST_NAME_SHOWN, name, key);
  }
  for (int i = 0; i < 3; i++)
    if (!json_object_get(v, fields[i]))
      return px_error_set(r->err, PX_EINPUT,
                          "%s: tensor '%.*s': field '%s' is missing (expected "
                          "dtype, shape and data_offsets)",
                          path, PX_ST_NAME_SHOWN, name, fields[i]);
  int dtype = px_st_parse_dtype(r, name, json_object_get(v, "dtype"));
  if (dtype < 0) return PX_EINPUT;
  t->dtype = (px_st_dtype)dtype;
  PX_TRY(px_st_parse_shape(r, name, json_object_get(v, "shape"), t));
  PX_TRY(px_st_parse_offsets(r, name, json_object_get(v, "data_offsets"), t));
  t->name = px_strdup(name);
  t->data = (const unsigned char *)r->f->map + 8 + r->header_len + t->begin;
  return PX_OK;
}

/* "__metadata__": an object of strings, kept as compact JSON. */
static px_status px_st_parse_meta(const px_st_reader *r, const json_t *v) {
  const char *path = r->f->path;
  if (!json_is_object(v))
    return px_error_set(r->err, PX_EINPUT,
                        "%s: field '" PX_ST_META "' is %s (expected an object "
                        "of strings)",
                        path, px_json_kind(v));
  const char *key;
  json_t *value;
  json_object_foreach((json_t *)v, key, value) {
    if (!json_is_string(value))
      return px_error_set(r->err, PX_EINPUT,
                          "%s: field '" PX_ST_META "': '%.*s' is %s (expected "
                          "an object of strings)",
                          path, PX_ST_NAME_SHOWN, key, px_json_kind(value));
  }
  char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
  PX_REQUIRE(text, "json_dumps of the metadata of %s failed (out of memory)", path);
  r->f->metadata_json = px_strdup(text);
  free(text); /* jansson's own allocation */
  return PX_OK;
}

/* A tensor's range, sorted by begin (then end) to find overlaps. */
typedef struct px_st_range {
  uint64_t begin, end;
  int index;
} px_st_range;

static int px_by_begin(const void *a, const void *b) {
  const px_st_range *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* No two tensors share a byte: sorted by begin, each non-empty range starts at or after the
 * furthest end before it. Empty ranges hold no byte and overlap nothing. */
static px_status px_st_check_overlap(const px_st_reader *r) {
  const px_st_file *f = r->f;
  if (f->n_tensors < 2) return PX_OK;
  px_st_range *order = px_malloc((size_t)f->n_tensors * sizeof *order);
  for (int i = 0; i < f->n_tensors; i++)
    order[i] = (px_st_range){f->tensors[i].begin, f->tensors[i].end, i};
  qsort(order, (size_t)f->n_tensors, sizeof *order, px_by_begin);
  px_status st = PX_OK;
  int last = -1; /* the non-empty range with the furthest end so far */
  for (int k = 0; k < f->n_tensors && st == PX_OK; k++) {
    const px_st_range *c = &order[k];
    if (c->begin == c->end) continue;
    if (last >= 0 && c->begin < order[last].end) {
      const px_st_tensor *t = &f->tensors[c->index], *o = &f->tensors[order[last].index];
      st = px_error_set(r->err, PX_EINPUT,
                        "%s: tensor '%.*s': data_offsets [%llu, %llu] overlap "
                        "tensor '%.*s' at [%llu, %llu] (expected disjoint ranges)",
                        f->path, PX_ST_NAME_SHOWN, t->name, (unsigned long long)t->begin,
                        (unsigned long long)t->end, PX_ST_NAME_SHOWN, o->name,
                        (unsigned long long)o->begin, (unsigned long long)o->end);
    }
    if (last < 0 || c->end > order[last].end) last = k;
  }
  free(order);
  return st;
}

/* The header's JSON: an object of entries and perhaps "__metadata__". */
static px_status px_st_parse_header(const px_st_reader *r, const char *text) {
  px_st_file *f = r->f;
  json_error_t jerr;
  json_t *root = json_loadb(text, r->header_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (!root)
    return px_error_set(r->err, PX_EINPUT,
                        "%s: header: invalid JSON at byte %d: %s (expected a "
                        "JSON object of tensors)",
                        f->path, jerr.position, jerr.text);
  px_status st = PX_OK;
  if (!json_is_object(root)) {
    st = px_error_set(r->err, PX_EINPUT, "%s: header is %s (expected a JSON object of tensors)",
                      f->path, px_json_kind(root));
    json_decref(root);
    return st;
  }
  f->tensors = px_calloc(json_object_size(root), sizeof *f->tensors);
  const char *name;
  json_t *v;
  /* jansson keeps an object's keys in the order parsed, so the table is in header order */
  json_object_foreach(root, name, v) {
    if (strcmp(name, PX_ST_META) == 0)
      st = px_st_parse_meta(r, v);
    else
      st = px_st_parse_entry(r, name, v, &f->tensors[f->n_tensors]);
    if (st != PX_OK) break;
    if (strcmp(name, PX_ST_META) != 0) f->n_tensors++;
  }
  json_decref(root);
  if (st == PX_OK) st = px_st_check_overlap(r);
  return st;
}

/* Opens path and maps it whole; checks the header length against the limit and the file. */
static px_status px_st_map(px_st_reader *r) {
  px_st_file *f = r->f;
  const char *path = f->path;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return px_error_set(r->err, PX_EINPUT, "cannot open %s: %s", path, strerror(errno));
  struct stat sb;
  px_status st = PX_OK;
  if (fstat(fd, &sb) != 0)
    st = px_error_set(r->err, PX_EINPUT, "cannot read %s: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    st = px_error_set(r->err, PX_EINPUT, "%s: not a regular file (expected a safetensors file)",
                      path);
  else if (sb.st_size < 8)
    st = px_error_set(r->err, PX_EINPUT,
                      "%s: header length: the file has %lld bytes (expected a "
                      "safetensors file: an 8-byte header length, the JSON header, the data)",
                      path, (long long)sb.st_size);
  if (st == PX_OK) {
    f->size = (size_t)sb.st_size;
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (f->map == MAP_FAILED) {
      f->map = NULL;
      st = px_error_set(r->err, PX_EINPUT, "cannot map %s: %s", path, strerror(errno));
    }
  }
  if (close(fd) != 0 && st == PX_OK)
    st = px_error_set(r->err, PX_EINPUT, "cannot read %s: %s", path, strerror(errno));
  if (st != PX_OK) return st;
  memcpy(&r->header_len, f->map, 8);
  if (r->header_len > PX_ST_MAX_HEADER)
    return px_error_set(r->err, PX_EINPUT,
                        "%s: header length %llu is over the limit (expected "
                        "at most %llu bytes)",
                        path, (unsigned long long)r->header_len,
                        (unsigned long long)PX_ST_MAX_HEADER);
  if (r->header_len > f->size - 8)
    return px_error_set(r->err, PX_EINPUT,
                        "%s: header length %llu is past the end of the file "
                        "(expected at most %llu: the file has %zu bytes)",
                        path, (unsigned long long)r->header_len, (unsigned long long)(f->size - 8),
                        f->size);
  r->data_size = f->size - 8 - r->header_len;
  return PX_OK;
}

px_status px_st_open(const char *path, px_st_file *f, px_error *err) {
  memset(f, 0, sizeof *f);
  if (strlen(path) >= sizeof f->path)
    return px_error_set(err, PX_EINPUT, "%.200s...: path too long (expected under %zu bytes)", path,
                        sizeof f->path);
  snprintf(f->path, sizeof f->path, "%s", path);
  px_st_reader r = {.f = f, .err = err};
  px_status st = px_st_map(&r);
  if (st == PX_OK) st = px_st_parse_header(&r, (const char *)f->map + 8);
  if (st != PX_OK) px_st_close(f);
  return st;
}

void px_st_close(px_st_file *f) {
  if (f->map) munmap(f->map, f->size); /* fails only for a bad address, which this is not */
  for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
  free(f->tensors);
  free(f->metadata_json);
  memset(f, 0, sizeof *f);
}

const px_st_tensor *px_st_find(const px_st_file *f, const char *name) {
  for (int i = 0; i < f->n_tensors; i++)
    if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Writing: the header as the reference writer makes it, then the data, under a temporary name.
 * --------------------------------------------------------------------------------------------- */

/* The header for the tensors and metadata: compact JSON, keys in the order given, "__metadata__"
 * first (jansson's allocation: the caller frees it with free). NULL with err set when an argument
 * cannot make a valid file (a duplicate name, a negative dimension, ...). *len is its length. */
static char *px_st_header(const char *path, const px_st_out *t, int n, const char *const *meta,
                          int n_meta, size_t *len, px_error *err) {
  json_t *root = json_object();
  PX_REQUIRE(root, "json_object failed (out of memory)");
  px_status st = PX_OK;
  if (n_meta > 0) {
    json_t *m = json_object();
    PX_REQUIRE(m, "json_object failed (out of memory)");
    json_object_set_new(root, PX_ST_META, m);
    for (int i = 0; i < n_meta && st == PX_OK; i++) {
      const char *key = meta[(size_t)2 * i], *value = meta[(size_t)2 * i + 1];
      if (!key || !value || json_object_get(m, key) ||
          json_object_set_new(m, key, json_string(value)) != 0)
        st = px_error_set(err, PX_EINPUT,
                          "cannot write %s: metadata pair %d is missing, repeated "
                          "or not UTF-8",
                          path, i);
    }
  }
  uint64_t offset = 0;
  for (int i = 0; i < n && st == PX_OK; i++) {
    int64_t count = 1;
    int ok = t[i].name && t[i].ndim >= 0 && t[i].ndim <= PX_ST_MAX_DIMS &&
             strcmp(t[i].name, PX_ST_META) != 0 && !json_object_get(root, t[i].name);
    json_t *shape = json_array();
    PX_REQUIRE(shape, "json_array failed (out of memory)");
    for (int d = 0; ok && d < t[i].ndim; d++) {
      ok = t[i].shape[d] >= 0 && (t[i].shape[d] == 0 || count <= INT64_MAX / 4 / t[i].shape[d]);
      if (ok) count *= t[i].shape[d];
      if (ok) json_array_append_new(shape, json_integer(t[i].shape[d]));
    }
    uint64_t end = offset + (uint64_t)count * 4;
    json_t *e = ok ? json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                               "data_offsets", (json_int_t)offset, (json_int_t)end)
                   : NULL;
    if (!ok) json_decref(shape);
    if (!e || json_object_set_new(root, t[i].name, e) != 0)
      st = px_error_set(err, PX_EINPUT,
                        "cannot write %s: tensor %d ('%.*s'): a name missing, "
                        "repeated, reserved or not UTF-8, or a bad shape",
                        path, i, PX_ST_NAME_SHOWN, t[i].name ? t[i].name : "");
    offset = end;
  }
  char *text = st == PX_OK ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(root);
  if (st != PX_OK) return NULL;
  PX_REQUIRE(text, "json_dumps of the header of %s failed (out of memory)", path);
  *len = strlen(text);
  return text;
}

/* Writes all n bytes to fd, retrying short writes and interruptions. 0, or -1 with errno. */
static int px_write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
    ssize_t put = write(fd, p, chunk);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      if (put == 0) errno = EIO;
      return -1;
    }
    p += put;
    n -= (size_t)put;
  }
  return 0;
}

px_status px_st_write(const char *path, const px_st_out *tensors, int n, const char *const *meta,
                      int n_meta, px_error *err) {
  size_t header_len = 0;
  char *header = px_st_header(path, tensors, n, meta, n_meta, &header_len, err);
  if (!header) return PX_EINPUT;
  char tmp[4200];
  px_fs_temp_name(tmp, sizeof tmp, path);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    int e = errno;
    free(header);
    return px_error_set(err, PX_ERUN, "cannot write %s: %s", path, strerror(e));
  }
  /* Spaces after the JSON up to a multiple of 8, as the reference writer pads, so that the data
   * (and every float32 tensor in it) starts 8-byte aligned. */
  size_t pad = (8 - header_len % 8) % 8;
  uint64_t len = header_len + pad;
  int bad = px_write_all(fd, &len, 8) != 0 || px_write_all(fd, header, header_len) != 0 ||
            px_write_all(fd, "       ", pad) != 0;
  for (int i = 0; i < n && !bad; i++) {
    size_t count = 1;
    for (int d = 0; d < tensors[i].ndim; d++) count *= (size_t)tensors[i].shape[d];
    if (count) bad = px_write_all(fd, tensors[i].data, count * sizeof(float)) != 0;
  }
  int e = errno;
  if (close(fd) != 0 && !bad) bad = 1, e = errno;
  free(header);
  if (bad) {
    unlink(tmp);
    return px_error_set(err, PX_ERUN, "cannot write %s: %s", path, strerror(e));
  }
  return px_fs_publish(tmp, path, err);
}
