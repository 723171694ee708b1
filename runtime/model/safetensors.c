/* One safetensors file: maps it read-only, validates its header strictly and lists its
 * tensors (sorted by data offset) and its "__metadata__". */
#include "runtime/model/safetensors.h"
#include <jansson.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* dtypes the safetensors format defines that pagoda does not read (refused as unsupported,
 * not as corrupt). */
static const char *const other_st_dtypes[] = {
    "BOOL", "I8", "U16", "I16", "U32", "U64", "F64", "F8_E5M2", "F8_E8M0",
    "F4", "F6_E2M3", "F6_E3M2", "C64", NULL,
};

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "real number";
    case JSON_TRUE: case JSON_FALSE: return "boolean";
    case JSON_NULL: return "null";
    }
    return "value";
}

void pgd__st_format_shape(char *buf, size_t len, const int64_t *shape, int ndim)
{
    size_t at = 0;
    int n = snprintf(buf, len, "[");
    for (int i = 0; i < ndim && n >= 0 && (at += (size_t)n) < len; i++)
        n = snprintf(buf + at, len - at, i ? ", %" PRId64 : "%" PRId64, shape[i]);
    if (n >= 0 && (at += (size_t)n) < len)
        snprintf(buf + at, len - at, "]");
}

/* Reads a JSON integer >= 0 into *v; false for anything else. */
static bool json_uint(const json_t *j, uint64_t *v)
{
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return false;
    *v = (uint64_t)json_integer_value(j);
    return true;
}

/* Validates one tensor entry of the header and fills t (but name, data and path). */
static enum pgd_status parse_entry(const char *path, const char *name, const json_t *v,
                                   uint64_t data_size, struct pgd__st_tensor *t,
                                   char *err, size_t errlen)
{
    if (!json_is_object(v))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: tensor '%s': entry is a JSON %s, not an object", path, name,
                        json_kind(v));
    const char *key;
    json_t *field;
    json_object_foreach((json_t *)v, key, field)
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: tensor '%s': unknown field '%s' (a tensor has dtype, shape "
                            "and data_offsets)", path, name, key);
    static const char *const need[] = { "dtype", "shape", "data_offsets" };
    for (int i = 0; i < 3; i++)
        if (!json_object_get(v, need[i]))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: tensor '%s': no '%s' field",
                            path, name, need[i]);

    /* dtype */
    const json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: tensor '%s': dtype is a JSON %s, not a string", path, name,
                        json_kind(jd));
    const char *ds = json_string_value(jd);
    if (!pgd_dtype_parse(ds, &t->dtype)) {
        for (int i = 0; other_st_dtypes[i]; i++)
            if (!strcmp(ds, other_st_dtypes[i]))
                return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                                "%s: tensor '%s': dtype %s is not supported (pagoda reads F32, "
                                "F16, BF16, I32, I64, U8 and F8_E4M3)", path, name, ds);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: tensor '%s': unknown dtype '%s'", path, name, ds);
    }

    /* shape */
    const json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: tensor '%s': shape is a JSON %s, not an array", path, name,
                        json_kind(js));
    size_t nd = json_array_size(js);
    if (nd > PGD__ST_MAX_DIMS)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                        "%s: tensor '%s': %zu dimensions, more than the %d pagoda reads", path,
                        name, nd, PGD__ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    bool too_big = false;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        const json_t *jdim = json_array_get(js, i);
        if (!json_uint(jdim, &d)) {
            char *txt = json_dumps(jdim, JSON_ENCODE_ANY);
            enum pgd_status st = pgd_errf(err, errlen, PGD_ERR_FORMAT,
                                          "%s: tensor '%s': shape[%zu] is %s: dimensions are "
                                          "non-negative integers", path, name, i,
                                          txt ? txt : json_kind(jdim));
            free(txt);
            return st;
        }
        t->shape[i] = (int64_t)d;
        too_big |= __builtin_mul_overflow(numel, d, &numel);
    }

    /* data_offsets */
    const json_t *jo = json_object_get(v, "data_offsets");
    uint64_t begin, end;
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        !json_uint(json_array_get(jo, 0), &begin) || !json_uint(json_array_get(jo, 1), &end)) {
        char *txt = json_dumps(jo, JSON_ENCODE_ANY | JSON_COMPACT);
        enum pgd_status st = pgd_errf(err, errlen, PGD_ERR_FORMAT,
                                      "%s: tensor '%s': data_offsets is %s, not a pair of "
                                      "non-negative integers", path, name,
                                      txt ? txt : json_kind(jo));
        free(txt);
        return st;
    }
    if (begin > end)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] begin after "
                        "they end", path, name, begin, end);
    if (end > data_size)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] run past the "
                        "end of the data (%" PRIu64 " bytes after the header; truncated?)",
                        path, name, begin, end, data_size);
    uint64_t nbytes;
    too_big |= __builtin_mul_overflow(numel, (uint64_t)pgd_dtype_size(t->dtype), &nbytes);
    if (too_big || nbytes != end - begin) {
        char sh[160], need[40];
        pgd__st_format_shape(sh, sizeof sh, t->shape, t->ndim);
        if (too_big)
            snprintf(need, sizeof need, "more than 2^64");
        else
            snprintf(need, sizeof need, "%" PRIu64, nbytes);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: tensor '%s': shape %s of %s needs %s bytes but data_offsets "
                        "[%" PRIu64 ", %" PRIu64 "] hold %" PRIu64, path, name, sh, ds, need,
                        begin, end, end - begin);
    }
    t->offset = begin;
    t->nbytes = (size_t)nbytes;
    return PGD_OK;
}

static enum pgd_status parse_metadata(struct pgd__st_file *f, const json_t *meta,
                                      char *err, size_t errlen)
{
    if (!json_is_object(meta))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: \"__metadata__\" is a JSON %s, not an object of strings", f->path,
                        json_kind(meta));
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n + 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n + 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", f->path);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)meta, key, v) {
        if (!json_is_string(v))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: \"__metadata__\" entry '%s' is a JSON %s, not a string",
                            f->path, key, json_kind(v));
        f->meta_keys[f->n_meta] = strdup(key);
        f->meta_values[f->n_meta] = strdup(json_string_value(v));
        if (!f->meta_keys[f->n_meta] || !f->meta_values[f->n_meta]) {
            f->n_meta++; /* so that close frees the one that was made */
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", f->path);
        }
        f->n_meta++;
    }
    return PGD_OK;
}

static int cmp_offset(const void *pa, const void *pb)
{
    const struct pgd__st_tensor *a = pa, *b = pb;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    if (a->nbytes != b->nbytes)
        return a->nbytes < b->nbytes ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* The tensors, sorted by offset, must tile [0, data_size) exactly: no overlap, no hole, no
 * trailing bytes (as the format requires, so that no byte of the file hides elsewhere). */
static enum pgd_status check_tiling(const struct pgd__st_file *f, uint64_t data_size,
                                    char *err, size_t errlen)
{
    uint64_t at = 0;
    const struct pgd__st_tensor *prev = NULL; /* the last tensor with bytes */
    for (size_t i = 0; i < f->n_tensors; i++) {
        const struct pgd__st_tensor *t = &f->tensors[i];
        uint64_t end = t->offset + t->nbytes;
        if (t->offset < at)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] overlap "
                            "tensor '%s' [%" PRIu64 ", %" PRIu64 "]", f->path, t->name,
                            t->offset, end, prev->name, prev->offset,
                            prev->offset + prev->nbytes);
        if (t->offset > at)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] leave a "
                            "hole of %" PRIu64 " bytes after %s%s%s that no tensor covers",
                            f->path, t->name, t->offset, end, t->offset - at,
                            prev ? "tensor '" : "the start of the data", prev ? prev->name : "",
                            prev ? "'" : "");
        if (t->nbytes) {
            at = end;
            prev = t;
        }
    }
    if (at != data_size) {
        if (prev)
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: %" PRIu64 " bytes of data after the last tensor ('%s' ends at "
                            "%" PRIu64 ", the data is %" PRIu64 " bytes)", f->path,
                            data_size - at, prev->name, at, data_size);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: %" PRIu64 " bytes of data but no tensor holds any", f->path,
                        data_size);
    }
    return PGD_OK;
}

enum pgd_status pgd__st_file_parse(const char *path, const uint8_t *buf, size_t size,
                                   struct pgd__st_file **out, char *err, size_t errlen)
{
    *out = NULL;
    if (size < 8)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: file is %zu bytes, too short for a safetensors file (8-byte "
                        "header length, header, data)", path, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | buf[i];
    if (n > PGD__ST_MAX_HEADER)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: header length %" PRIu64 " is over the %" PRIu64 "-byte limit: "
                        "corrupt, or not a safetensors file", path, n, PGD__ST_MAX_HEADER);
    if (n > size - 8)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: header length %" PRIu64 " runs past the end of the file (the "
                        "file is %zu bytes; truncated?)", path, n, size);
    const char *hdr = (const char *)buf + 8;
    json_error_t je;
    json_t *root = json_loadb(hdr, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_duplicate_key) /* je.text quotes the name */
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: header repeats a name: %s (line %d, column %d)", path,
                            je.text, je.line, je.column);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: header is not valid JSON: %s (line %d, column %d)", path, je.text,
                        je.line, je.column);
    }
    enum pgd_status st = PGD_OK;
    struct pgd__st_file *f = NULL;
    if (!json_is_object(root)) {
        st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: header is a JSON %s, not an object",
                      path, json_kind(root));
        goto done;
    }
    const json_t *meta = json_object_get(root, "__metadata__");
    size_t nt = json_object_size(root) - (meta ? 1 : 0);
    f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path)) ||
        !(f->tensors = calloc(nt ? nt : 1, sizeof *f->tensors))) {
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    f->map = buf;
    f->map_size = size;
    f->data_start = (size_t)(8 + n);
    uint64_t data_size = size - f->data_start;
    if (meta && (st = parse_metadata(f, meta, err, errlen)))
        goto done;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__"))
            continue;
        struct pgd__st_tensor *t = &f->tensors[f->n_tensors];
        if ((st = parse_entry(f->path, key, v, data_size, t, err, errlen)))
            goto done;
        if (!(t->name = strdup(key))) {
            st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", path);
            goto done;
        }
        t->path = f->path;
        t->data = buf + f->data_start + t->offset;
        t->aligned = (uintptr_t)t->data % pgd_dtype_size(t->dtype) == 0;
        f->n_tensors++;
    }
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_offset);
    st = check_tiling(f, data_size, err, errlen);
done:
    json_decref(root);
    if (st) {
        pgd__st_file_close(f);
        return st;
    }
    *out = f;
    return PGD_OK;
}

enum pgd_status pgd__st_file_open(const char *path, struct pgd__st_file **out,
                                  char *err, size_t errlen)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return pgd_errf(err, errlen, e == ENOENT ? PGD_ERR_NOT_FOUND : PGD_ERR_IO,
                        "%s: cannot open: %s", path, strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) { /* nothing to map (mmap refuses 0 bytes): let parse word the refusal */
        close(fd);
        static const uint8_t none[8];
        return pgd__st_file_parse(path, none, size, out, err, errlen);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot map %zu bytes: %s", path, size,
                        strerror(e));
    enum pgd_status st = pgd__st_file_parse(path, map, size, out, err, errlen);
    if (st) {
        munmap(map, size);
        return st;
    }
    (*out)->mapped = true;
    return PGD_OK;
}

void pgd__st_file_close(struct pgd__st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    if (f->mapped)
        munmap((void *)f->map, f->map_size);
    free(f->path);
    free(f);
}

enum pgd_status pgd__st_tensor_view(const struct pgd__st_tensor *t, struct pgd_tensor *out,
                                    char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (t->ndim > PGD_MAX_DIMS)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED,
                        "%s: tensor '%s': %d dimensions, more than the %d a pagoda tensor has",
                        t->path, t->name, t->ndim, PGD_MAX_DIMS);
    out->data = (void *)t->data;
    out->dtype = t->dtype;
    out->device = PGD_DEVICE_CPU;
    out->ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++)
        out->ne[i] = t->shape[i];
    return PGD_OK;
}
