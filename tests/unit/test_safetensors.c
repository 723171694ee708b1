/* The safetensors reader: good files read back what was written (every dtype, scalars,
 * sharded checkpoints, files written by the Python package); corrupt files are refused with
 * a status and a message that names the file and the tensor. The files are built here, in a
 * temporary directory, by a small writer (8-byte length, header, data). */
#include "tests/lib/test_common.h"
#include "runtime/model/safetensors.h"
#include <jansson.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a temporary directory per test -------------------------------------------------- */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pgd-st-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tmpdir(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

PGD_TEST_SUITE_FIXTURE(safetensors, make_tmpdir, remove_tmpdir);

/* tmpdir/name, in one of a few rotating static buffers. */
static const char *tp(const char *name)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void make_subdir(const char *name)
{
    cr_assert_eq(mkdir(tp(name), 0755), 0);
}

/* ---- writers --------------------------------------------------------------------------- */

/* Writes an 8-byte little-endian length (declared), then hdr_len bytes of hdr, then data. */
static void write_raw(const char *path, uint64_t declared, const void *hdr, size_t hdr_len,
                      const void *data, size_t data_len)
{
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp, "cannot write %s", path);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)(declared >> (8 * i));
    cr_assert_eq(fwrite(len, 1, 8, fp), 8);
    if (hdr_len)
        cr_assert_eq(fwrite(hdr, 1, hdr_len, fp), hdr_len);
    if (data_len)
        cr_assert_eq(fwrite(data, 1, data_len, fp), data_len);
    cr_assert_eq(fclose(fp), 0);
}

/* A header (text) and data_len zero bytes of data. */
static void write_st(const char *path, const char *hdr, size_t data_len)
{
    void *zeros = calloc(1, data_len + 1);
    write_raw(path, strlen(hdr), hdr, strlen(hdr), zeros, data_len);
    free(zeros);
}

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    if (n)
        cr_assert_eq(fwrite(bytes, 1, n, fp), n);
    cr_assert_eq(fclose(fp), 0);
}

/* Builds a valid file: tensors are laid out in the order they are added. */
struct builder {
    json_t *hdr;
    uint8_t *data;
    size_t len;
};

static void b_init(struct builder *b)
{
    b->hdr = json_object();
    b->data = NULL;
    b->len = 0;
}

static void b_add(struct builder *b, const char *name, const char *dtype, int ndim,
                  const int64_t *shape, const void *bytes, size_t nbytes)
{
    json_t *sh = json_array();
    for (int i = 0; i < ndim; i++)
        json_array_append_new(sh, json_integer(shape[i]));
    json_object_set_new(b->hdr, name,
                        json_pack("{s:s, s:o, s:[I, I]}", "dtype", dtype, "shape", sh,
                                  "data_offsets", (json_int_t)b->len,
                                  (json_int_t)(b->len + nbytes)));
    uint8_t *grown = realloc(b->data, b->len + nbytes + 1);
    cr_assert_not_null(grown);
    b->data = grown;
    if (nbytes)
        memcpy(b->data + b->len, bytes, nbytes);
    b->len += nbytes;
}

static void b_meta(struct builder *b, const char *key, const char *value)
{
    json_t *m = json_object_get(b->hdr, "__metadata__");
    if (!m)
        json_object_set_new(b->hdr, "__metadata__", m = json_object());
    json_object_set_new(m, key, json_string(value));
}

/* Writes the file and frees the builder. pad8: pad the header with spaces to a multiple
 * of 8 bytes, as the Python package does. */
static void b_write(struct builder *b, const char *path, bool pad8)
{
    char *txt = json_dumps(b->hdr, JSON_COMPACT);
    size_t n = strlen(txt);
    size_t padded = pad8 ? (n + 7) / 8 * 8 : n;
    char *h = malloc(padded + 1);
    memcpy(h, txt, n);
    memset(h + n, ' ', padded - n);
    write_raw(path, padded, h, padded, b->data, b->len);
    free(h);
    free(txt);
    free(b->data);
    json_decref(b->hdr);
}

/* ---- checks ---------------------------------------------------------------------------- */

/* st is want, err names every non-NULL part (the file, the tensor, a detail). */
static void check_refusal(const char *label, enum pgd_status st, enum pgd_status want,
                          const char *err, const char *a, const char *b, const char *c)
{
    if (getenv("PGD_TEST_VERBOSE")) /* to read the messages: PGD_TEST_VERBOSE=1 */
        fprintf(stderr, "%-32s %-12s %s\n", label, pgd_status_str(st), err);
    cr_expect_eq(st, want, "%s: status %s, wanted %s (%s)", label, pgd_status_str(st),
                 pgd_status_str(want), err);
    const char *parts[] = { a, b, c };
    for (int i = 0; i < 3; i++)
        if (parts[i])
            cr_expect_not_null(strstr(err, parts[i]), "%s: message \"%s\" does not name \"%s\"",
                               label, err, parts[i]);
}

static enum pgd_status open_file(const char *path, char *err, size_t errlen)
{
    struct pgd__weights *w = (struct pgd__weights *)&w; /* must be reset to NULL */
    enum pgd_status st = pgd__weights_open_file(path, &w, err, errlen);
    if (st)
        cr_expect_null(w, "%s: *out is not NULL after a failure", path);
    else
        pgd__weights_close(w);
    return st;
}

static enum pgd_status open_dir(const char *dir, char *err, size_t errlen)
{
    struct pgd__weights *w = (struct pgd__weights *)&w;
    enum pgd_status st = pgd__weights_open_dir(dir, &w, err, errlen);
    if (st)
        cr_expect_null(w, "%s: *out is not NULL after a failure", dir);
    else
        pgd__weights_close(w);
    return st;
}

/* ---- good files ------------------------------------------------------------------------ */

static const float f32_vals[6] = { -1.5f, 0.0f, 0.25f, 3.0e38f, -7.125f, 1.0e-30f };
static const float f16_vals[4] = { 0.5f, -1.25f, 65504.0f, 5.960464477539063e-08f };
static const float bf16_vals[8] = { 1.0f, -2.0f, 0.5f, 0x1p127f, -0.0f, 96.0f, -0.375f, 7.0f };
static const int32_t i32_vals[3] = { INT32_MIN, -1, INT32_MAX };
static const int64_t i64_vals[2] = { INT64_MIN, (int64_t)1 << 40 };
static const uint8_t u8_vals[5] = { 0, 1, 127, 128, 255 };

/* Every dtype, a scalar, an empty tensor and a 5-d tensor. u8 comes first so that the
 * others are unaligned unless the header is padded and u8's size is too (it is 5). */
static void write_all_dtypes(const char *path, bool pad8)
{
    struct builder b;
    b_init(&b);
    b_add(&b, "u8", "U8", 1, (int64_t[]){ 5 }, u8_vals, sizeof u8_vals);
    b_add(&b, "f32", "F32", 2, (int64_t[]){ 2, 3 }, f32_vals, sizeof f32_vals);
    uint16_t h[4], bh[8];
    for (int i = 0; i < 4; i++)
        h[i] = pgd_f32_to_f16(f16_vals[i]);
    for (int i = 0; i < 8; i++)
        bh[i] = pgd_f32_to_bf16(bf16_vals[i]);
    b_add(&b, "f16", "F16", 1, (int64_t[]){ 4 }, h, sizeof h);
    b_add(&b, "bf16", "BF16", 3, (int64_t[]){ 2, 2, 2 }, bh, sizeof bh);
    b_add(&b, "i32", "I32", 2, (int64_t[]){ 3, 1 }, i32_vals, sizeof i32_vals);
    b_add(&b, "i64", "I64", 4, (int64_t[]){ 1, 1, 1, 2 }, i64_vals, sizeof i64_vals);
    float s = 3.5f;
    b_add(&b, "scalar", "F32", 0, NULL, &s, sizeof s);
    b_add(&b, "empty", "F32", 2, (int64_t[]){ 0, 4 }, NULL, 0);
    uint8_t five[2] = { 9, 8 };
    b_add(&b, "five_d", "U8", 5, (int64_t[]){ 1, 1, 1, 1, 2 }, five, 2);
    b_meta(&b, "format", "pt");
    b_meta(&b, "note", "written by test_safetensors");
    b_write(&b, path, pad8);
}

static void check_tensor(const struct pgd__weights *w, const char *name, enum pgd_dtype dt,
                         int ndim, const int64_t *shape, const void *bytes, size_t nbytes)
{
    const struct pgd__st_tensor *t = pgd__weights_find(w, name);
    cr_assert_not_null(t, "tensor %s not found", name);
    cr_expect_str_eq(t->name, name);
    cr_expect_eq(t->dtype, dt, "%s: dtype %s", name, pgd_dtype_name(t->dtype));
    cr_assert_eq(t->ndim, ndim, "%s: ndim %d", name, t->ndim);
    for (int i = 0; i < ndim; i++)
        cr_expect_eq(t->shape[i], shape[i], "%s: shape[%d]", name, i);
    cr_assert_eq(t->nbytes, nbytes, "%s: nbytes %zu", name, t->nbytes);
    if (nbytes)
        cr_expect_eq(memcmp(t->data, bytes, nbytes), 0, "%s: bytes differ", name);
}

static void check_all_dtypes(const char *path, bool pad8)
{
    write_all_dtypes(path, pad8);
    char err[512] = "";
    struct pgd__weights *w = NULL;
    cr_assert_eq(pgd__weights_open_file(path, &w, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__weights_count(w), 9);

    check_tensor(w, "u8", PGD_DTYPE_U8, 1, (int64_t[]){ 5 }, u8_vals, sizeof u8_vals);
    check_tensor(w, "f32", PGD_DTYPE_F32, 2, (int64_t[]){ 2, 3 }, f32_vals, sizeof f32_vals);
    check_tensor(w, "i32", PGD_DTYPE_I32, 2, (int64_t[]){ 3, 1 }, i32_vals, sizeof i32_vals);
    check_tensor(w, "i64", PGD_DTYPE_I64, 4, (int64_t[]){ 1, 1, 1, 2 }, i64_vals,
                 sizeof i64_vals);
    check_tensor(w, "empty", PGD_DTYPE_F32, 2, (int64_t[]){ 0, 4 }, NULL, 0);
    check_tensor(w, "five_d", PGD_DTYPE_U8, 5, (int64_t[]){ 1, 1, 1, 1, 2 }, "\x09\x08", 2);

    /* Values, decoded (through memcpy: the data need not be aligned). */
    const struct pgd__st_tensor *t = pgd__weights_find(w, "f16");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, PGD_DTYPE_F16);
    cr_assert_eq(t->nbytes, 8);
    for (int i = 0; i < 4; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
        cr_expect_eq(pgd_f16_to_f32(h), f16_vals[i], "f16[%d]", i);
    }
    t = pgd__weights_find(w, "bf16");
    cr_assert_not_null(t);
    cr_assert_eq(t->dtype, PGD_DTYPE_BF16);
    cr_assert_eq(t->ndim, 3);
    uint16_t bits[8];
    memcpy(bits, t->data, sizeof bits); /* (the data may be unaligned) */
    float back[8];
    pgd_convert_to_f32(back, bits, t->dtype, 8);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(back[i], bf16_vals[i], "bf16[%d]: %g", i, back[i]);
    t = pgd__weights_find(w, "f32");
    for (int i = 0; i < 6; i++) {
        float f;
        memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
        cr_expect_eq(f, f32_vals[i], "f32[%d]", i);
    }

    /* The scalar: 0 dimensions, one element. */
    t = pgd__weights_find(w, "scalar");
    cr_assert_not_null(t);
    cr_expect_eq(t->ndim, 0);
    cr_expect_eq(t->nbytes, 4);
    float s;
    memcpy(&s, t->data, 4);
    cr_expect_eq(s, 3.5f);
    struct pgd_tensor view;
    cr_assert_eq(pgd__st_tensor_view(t, &view, err, sizeof err), PGD_OK, "%s", err);
    cr_expect_eq(view.ndim, 0);
    cr_expect_eq(pgd_tensor_numel(&view), 1);
    cr_expect_eq(pgd_tensor_nbytes(&view), 4);

    /* A view of a 2-d tensor, and the refusal of a 5-d one. */
    t = pgd__weights_find(w, "i32");
    cr_assert_eq(pgd__st_tensor_view(t, &view, err, sizeof err), PGD_OK);
    cr_expect_eq(view.ne[0], 3);
    cr_expect_eq(view.ne[1], 1);
    cr_expect_eq(view.data, t->data);
    cr_expect_eq(pgd_tensor_nbytes(&view), t->nbytes);
    t = pgd__weights_find(w, "five_d");
    check_refusal("5-d view", pgd__st_tensor_view(t, &view, err, sizeof err),
                  PGD_ERR_UNSUPPORTED, err, path, "five_d", NULL);

    cr_expect_null(pgd__weights_find(w, "nope"));
    cr_expect_null(pgd__weights_find(w, "f3"));
    cr_expect_null(pgd__weights_find(w, ""));
    cr_expect_str_eq(pgd__weights_metadata(w, "format"), "pt");
    cr_expect_str_eq(pgd__weights_metadata(w, "note"), "written by test_safetensors");
    cr_expect_null(pgd__weights_metadata(w, "__metadata__"));

    /* at(): every tensor once, in data order, each pointing into the file named. */
    uint64_t sum = 0, prev_off = 0;
    for (size_t i = 0; i < pgd__weights_count(w); i++) {
        const struct pgd__st_tensor *a = pgd__weights_at(w, i);
        cr_expect_eq(pgd__weights_find(w, a->name), a, "%s", a->name);
        cr_expect_geq(a->offset, prev_off, "%s out of order", a->name);
        cr_expect_str_eq(a->path, path);
        prev_off = a->offset;
        sum += a->nbytes;
    }
    cr_expect_eq(pgd__weights_nbytes(w), sum);
    cr_expect_eq(sum, 5 + 24 + 8 + 16 + 12 + 16 + 4 + 0 + 2);

    /* aligned says whether the data sits on a multiple of the dtype size. */
    for (size_t i = 0; i < pgd__weights_count(w); i++) {
        const struct pgd__st_tensor *a = pgd__weights_at(w, i);
        cr_expect_eq(a->aligned, (uintptr_t)a->data % pgd_dtype_size(a->dtype) == 0, "%s",
                     a->name);
    }
    if (pad8) /* the header pads to 8 and u8 holds 5 bytes: f32 starts at offset 5 */
        cr_expect_not(pgd__weights_find(w, "f32")->aligned);
    pgd__weights_close(w);
}

Test(safetensors, every_dtype_round_trips)
{
    check_all_dtypes(tp("padded.safetensors"), true);
}

Test(safetensors, unpadded_header_and_unaligned_data_round_trip)
{
    check_all_dtypes(tp("unpadded.safetensors"), false);
}

Test(safetensors, empty_checkpoint_is_valid)
{
    write_st(tp("none.safetensors"), "{}", 0);
    char err[256];
    struct pgd__weights *w = NULL;
    cr_assert_eq(pgd__weights_open_file(tp("none.safetensors"), &w, err, sizeof err), PGD_OK,
                 "%s", err);
    cr_expect_eq(pgd__weights_count(w), 0);
    cr_expect_null(pgd__weights_find(w, "x"));
    pgd__weights_close(w);
    pgd__weights_close(NULL);
}

Test(safetensors, thousands_of_tensors_are_found_by_name)
{
    enum { N = 5000 };
    struct builder b;
    b_init(&b);
    char name[64];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "model.layers.%d.mlp.weight", i);
        int32_t v = i * 7 - 3;
        b_add(&b, name, "I32", 1, (int64_t[]){ 1 }, &v, 4);
    }
    b_write(&b, tp("many.safetensors"), true);
    char err[256];
    struct pgd__weights *w = NULL;
    cr_assert_eq(pgd__weights_open_file(tp("many.safetensors"), &w, err, sizeof err), PGD_OK,
                 "%s", err);
    cr_assert_eq(pgd__weights_count(w), N);
    for (int i = N - 1; i >= 0; i--) {
        snprintf(name, sizeof name, "model.layers.%d.mlp.weight", i);
        const struct pgd__st_tensor *t = pgd__weights_find(w, name);
        cr_assert_not_null(t, "%s", name);
        cr_assert_str_eq(t->name, name);
        int32_t v;
        memcpy(&v, t->data, 4);
        cr_assert_eq(v, i * 7 - 3, "%s", name);
        snprintf(name, sizeof name, "model.layers.%d.mlp.weigh", i);
        cr_assert_null(pgd__weights_find(w, name));
    }
    pgd__weights_close(w);
}

Test(safetensors, expect_checks_dtype_and_shape)
{
    write_all_dtypes(tp("e.safetensors"), true);
    char err[512];
    struct pgd__weights *w = NULL;
    cr_assert_eq(pgd__weights_open_file(tp("e.safetensors"), &w, err, sizeof err), PGD_OK);
    const struct pgd__st_tensor *t = NULL;
    cr_expect_eq(pgd__weights_expect(w, "f32", PGD_DTYPE_F32, 2, (int64_t[]){ 2, 3 }, &t, err,
                                     sizeof err), PGD_OK, "%s", err);
    cr_expect_eq(t, pgd__weights_find(w, "f32"));
    cr_expect_eq(pgd__weights_expect(w, "f32", PGD_DTYPE_COUNT, 2, (int64_t[]){ -1, 3 }, &t,
                                     err, sizeof err), PGD_OK, "%s", err);
    cr_expect_eq(pgd__weights_expect(w, "bf16", PGD_DTYPE_BF16, -1, NULL, &t, err, sizeof err),
                 PGD_OK, "%s", err);
    cr_expect_eq(pgd__weights_expect(w, "scalar", PGD_DTYPE_F32, 0, NULL, &t, err, sizeof err),
                 PGD_OK, "%s", err);
    check_refusal("wrong shape",
                  pgd__weights_expect(w, "f32", PGD_DTYPE_F32, 2, (int64_t[]){ 3, -1 }, &t, err,
                                      sizeof err),
                  PGD_ERR_FORMAT, err, "'f32'", "[2, 3]", "[3, ?]");
    cr_expect_null(t);
    check_refusal("wrong dtype",
                  pgd__weights_expect(w, "f16", PGD_DTYPE_BF16, 1, NULL, &t, err, sizeof err),
                  PGD_ERR_FORMAT, err, "'f16'", "F16 [4]", "BF16");
    check_refusal("wrong rank",
                  pgd__weights_expect(w, "f16", PGD_DTYPE_F16, 2, NULL, &t, err, sizeof err),
                  PGD_ERR_FORMAT, err, "e.safetensors", "'f16'", NULL);
    check_refusal("absent",
                  pgd__weights_expect(w, "lm_head.weight", PGD_DTYPE_F16, 2, NULL, &t, err,
                                      sizeof err),
                  PGD_ERR_NOT_FOUND, err, "e.safetensors", "'lm_head.weight'", NULL);
    pgd__weights_close(w);
}

/* ---- corrupt single files -------------------------------------------------------------- */

struct bad_case {
    const char *label;
    const char *header;
    size_t data_len;           /* zero bytes of data after the header */
    enum pgd_status want;
    const char *tensor;        /* the tensor the message must name (NULL: none) */
    const char *detail;        /* another part the message must contain (NULL: none) */
};

#define E(dt, sh, b, e) "{\"dtype\":\"" dt "\",\"shape\":" sh ",\"data_offsets\":[" #b "," #e "]}"

static const struct bad_case bad_cases[] = {
    { "invalid JSON", "{\"w\":" E("F32", "[1]", 0, 4), 4, PGD_ERR_FORMAT, NULL, "not valid JSON" },
    { "bytes after the JSON", "{\"w\":" E("F32", "[1]", 0, 4) "}x", 4, PGD_ERR_FORMAT, NULL,
      "not valid JSON" },
    { "header is an array", "[1, 2]", 0, PGD_ERR_FORMAT, NULL, "array" },
    { "entry is not an object", "{\"w\": 5}", 0, PGD_ERR_FORMAT, "'w'", "integer" },
    { "unknown dtype", "{\"w\":" E("F33", "[1]", 0, 4) "}", 4, PGD_ERR_FORMAT, "'w'", "F33" },
    { "F64", "{\"w\":" E("F64", "[1]", 0, 8) "}", 8, PGD_ERR_UNSUPPORTED, "'w'", "F64" },
    { "F8_E5M2", "{\"ok\":" E("U8", "[2]", 0, 2) ",\"q.weight\":" E("F8_E5M2", "[2]", 2, 4) "}",
      4, PGD_ERR_UNSUPPORTED, "'q.weight'", "F8_E5M2" },
    { "dtype not a string", "{\"w\":" E("F32", "[1]", 0, 4) ",\"v\":{\"dtype\":4,\"shape\":[1],"
      "\"data_offsets\":[4,8]}}", 8, PGD_ERR_FORMAT, "'v'", "dtype" },
    { "shape disagrees with the bytes", "{\"w\":" E("F32", "[2]", 0, 4) "}", 4, PGD_ERR_FORMAT,
      "'w'", "[2]" },
    { "shape disagrees (dtype size)", "{\"w\":" E("BF16", "[2, 2]", 0, 16) "}", 16,
      PGD_ERR_FORMAT, "'w'", "16" },
    { "negative dim", "{\"w\":" E("F32", "[-1]", 0, 4) "}", 4, PGD_ERR_FORMAT, "'w'", "-1" },
    { "real dim", "{\"w\":" E("F32", "[1.0]", 0, 4) "}", 4, PGD_ERR_FORMAT, "'w'", "shape[0]" },
    { "string dim", "{\"w\":" E("F32", "[\"1\"]", 0, 4) "}", 4, PGD_ERR_FORMAT, "'w'", "shape[0]" },
    { "shape not an array", "{\"w\":" E("F32", "4", 0, 4) "}", 4, PGD_ERR_FORMAT, "'w'", "shape" },
    { "numel overflows", "{\"w\":" E("F32", "[4611686018427387904, 4611686018427387904]", 0, 4)
      "}", 4, PGD_ERR_FORMAT, "'w'", "2^64" },
    { "too many dims", "{\"w\":" E("U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1, PGD_ERR_UNSUPPORTED,
      "'w'", "9 dimensions" },
    { "offsets past the data", "{\"w\":" E("F32", "[2]", 0, 8) "}", 4, PGD_ERR_FORMAT, "'w'",
      "past the end" },
    { "begin past end", "{\"w\":" E("F32", "[1]", 4, 0) "}", 4, PGD_ERR_FORMAT, "'w'", "[4, 0]" },
    { "negative offset", "{\"w\":" E("F32", "[1]", -4, 0) "}", 4, PGD_ERR_FORMAT, "'w'",
      "data_offsets" },
    { "three offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 4,
      PGD_ERR_FORMAT, "'w'", "[0,4,8]" },
    { "no data_offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, PGD_ERR_FORMAT, "'w'",
      "data_offsets" },
    { "unknown field", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"offsets\":[0,4]}}", 4,
      PGD_ERR_FORMAT, "'w'", "'offsets'" },
    { "overlap", "{\"a\":" E("F32", "[2]", 0, 8) ",\"b\":" E("F32", "[2]", 4, 12) "}", 12,
      PGD_ERR_FORMAT, "'b'", "'a'" },
    { "same range twice", "{\"a\":" E("F32", "[1]", 0, 4) ",\"b\":" E("F32", "[1]", 0, 4) "}", 4,
      PGD_ERR_FORMAT, "overlap", "'a'" },
    { "hole", "{\"a\":" E("F32", "[1]", 0, 4) ",\"b\":" E("F32", "[1]", 8, 12) "}", 12,
      PGD_ERR_FORMAT, "'b'", "hole" },
    { "bytes after the last tensor", "{\"a\":" E("F32", "[1]", 0, 4) "}", 8, PGD_ERR_FORMAT,
      "'a'", "4 bytes of data after" },
    { "name twice", "{\"w\":" E("F32", "[1]", 0, 4) ",\"w\":" E("F32", "[1]", 4, 8) "}", 8,
      PGD_ERR_FORMAT, "\"w\"", "repeats" },
    { "metadata not an object", "{\"__metadata__\":[1]}", 0, PGD_ERR_FORMAT, "__metadata__",
      "array" },
    { "metadata value not a string", "{\"__metadata__\":{\"format\":\"pt\",\"step\":5}}", 0,
      PGD_ERR_FORMAT, "'step'", "integer" },
    { "dtype in lower case", "{\"w\":" E("f32", "[1]", 0, 4) "}", 4, PGD_ERR_FORMAT, "'w'",
      "f32" },
    { "dim past int64", "{\"w\":" E("F32", "[9223372036854775808]", 0, 4) "}", 4,
      PGD_ERR_FORMAT, NULL, "not valid JSON" },
    { "real offsets",
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.0,4.0]}}", 4,
      PGD_ERR_FORMAT, "'w'", "data_offsets" },
    { "string offsets",
      "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", 4,
      PGD_ERR_FORMAT, "'w'", "data_offsets" },
    { "offset past 2^63", "{\"w\":" E("U8", "[1]", 0, 9223372036854775807) "}", 1,
      PGD_ERR_FORMAT, "'w'", "past the end" },
    { "bad shape after an empty tensor of huge dims",
      "{\"a\":" E("F32", "[4611686018427387904, 0, 4611686018427387904]", 0, 0)
      ",\"w\":" E("F32", "[2]", 0, 4) "}", 4, PGD_ERR_FORMAT, "'w'", NULL },
    { "NUL in the header", "{\"w\":" E("F32", "[1]", 0, 4) "}\0  ", 4, PGD_ERR_FORMAT, NULL,
      "JSON" },
};

Test(safetensors, corrupt_headers_are_refused_by_name)
{
    char err[512];
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        char name[64];
        snprintf(name, sizeof name, "bad%zu.safetensors", i);
        const char *path = tp(name);
        if (!strcmp(c->label, "NUL in the header")) {
            /* strlen would stop at the NUL: write the header with its NUL and padding */
            size_t n = strlen(c->header) + 3;
            uint8_t zeros[4] = { 0 };
            write_raw(path, n, c->header, n, zeros, c->data_len);
        } else {
            write_st(path, c->header, c->data_len);
        }
        err[0] = '\0';
        check_refusal(c->label, open_file(path, err, sizeof err), c->want, err, path, c->tensor,
                      c->detail);
    }
}

Test(safetensors, short_and_truncated_files_are_refused)
{
    char err[512];
    /* 0 bytes, then 5. */
    write_bytes(tp("zero.safetensors"), "", 0);
    check_refusal("0-byte file", open_file(tp("zero.safetensors"), err, sizeof err),
                  PGD_ERR_FORMAT, err, tp("zero.safetensors"), "0 bytes", NULL);
    write_bytes(tp("five.safetensors"), "\x10\0\0\0\0", 5);
    check_refusal("5-byte file", open_file(tp("five.safetensors"), err, sizeof err),
                  PGD_ERR_FORMAT, err, tp("five.safetensors"), "5 bytes", NULL);

    /* A good file, cut short in the data, then in the header. */
    const char *hdr = "{\"w\":" E("F32", "[4]", 0, 16) "}";
    float v[4] = { 1, 2, 3, 4 };
    write_raw(tp("cut_data.safetensors"), strlen(hdr), hdr, strlen(hdr), v, 13);
    check_refusal("truncated data", open_file(tp("cut_data.safetensors"), err, sizeof err),
                  PGD_ERR_FORMAT, err, tp("cut_data.safetensors"), "'w'", "truncated");
    write_raw(tp("cut_hdr.safetensors"), strlen(hdr), hdr, strlen(hdr) - 9, NULL, 0);
    check_refusal("truncated header", open_file(tp("cut_hdr.safetensors"), err, sizeof err),
                  PGD_ERR_FORMAT, err, tp("cut_hdr.safetensors"), "past the end of the file",
                  NULL);

    /* The header length: past the end of the file; absurdly large; 0. */
    write_raw(tp("long.safetensors"), strlen(hdr) + 17, hdr, strlen(hdr), v, 16);
    check_refusal("header length past the end", open_file(tp("long.safetensors"), err,
                  sizeof err), PGD_ERR_FORMAT, err, tp("long.safetensors"), "header length",
                  "past the end");
    write_raw(tp("huge.safetensors"), (uint64_t)1 << 40, hdr, strlen(hdr), v, 16);
    check_refusal("header length absurd", open_file(tp("huge.safetensors"), err, sizeof err),
                  PGD_ERR_FORMAT, err, tp("huge.safetensors"), "limit", NULL);
    write_raw(tp("nohdr.safetensors"), 0, NULL, 0, v, 16);
    check_refusal("header length 0", open_file(tp("nohdr.safetensors"), err, sizeof err),
                  PGD_ERR_FORMAT, err, tp("nohdr.safetensors"), "JSON", NULL);
}

Test(safetensors, unreadable_paths_are_refused)
{
    char err[512];
    check_refusal("missing file", open_file(tp("absent.safetensors"), err, sizeof err),
                  PGD_ERR_NOT_FOUND, err, tp("absent.safetensors"), NULL, NULL);
    make_subdir("adir.safetensors");
    check_refusal("directory", open_file(tp("adir.safetensors"), err, sizeof err), PGD_ERR_IO,
                  err, tp("adir.safetensors"), "not a regular file", NULL);
}

Test(safetensors, parse_of_a_buffer_borrows_it)
{
    /* pgd__st_file_parse reads a caller's buffer: check that tensors point into it. */
    const char *hdr = "{\"a\":" E("U8", "[3]", 0, 3) "}";
    size_t n = strlen(hdr);
    uint8_t buf[128];
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(n >> (8 * i));
    memcpy(buf + 8, hdr, n);
    memcpy(buf + 8 + n, "xyz", 3);
    struct pgd__st_file *f = NULL;
    char err[256];
    cr_assert_eq(pgd__st_file_parse("mem", buf, 8 + n + 3, &f, err, sizeof err), PGD_OK, "%s",
                 err);
    cr_assert_eq(f->n_tensors, 1);
    cr_expect_eq(f->tensors[0].data, buf + 8 + n);
    cr_expect_str_eq(f->tensors[0].path, "mem");
    pgd__st_file_close(f);
}

/* Random damage to a valid image (digits changed, bytes replaced, the file cut short):
 * every result is either a refusal that names the file or a file whose tensors all lie
 * inside the data and tile it. Under ASan this also proves the parser reads no byte
 * outside the buffer. */
Test(safetensors, random_damage_is_refused_or_consistent)
{
    write_all_dtypes(tp("fuzz.safetensors"), true);
    FILE *fp = fopen(tp("fuzz.safetensors"), "rb");
    cr_assert_not_null(fp);
    uint8_t good[4096];
    size_t size = fread(good, 1, sizeof good, fp);
    fclose(fp);
    cr_assert(size > 8 && size < sizeof good);
    size_t hdr_end = 8 + (size_t)good[0] + ((size_t)good[1] << 8);

    uint64_t rng = 0x9e3779b97f4a7c15u;
    int accepted = 0, refused = 0;
    for (int iter = 0; iter < 4000; iter++) {
        uint8_t *buf = malloc(size); /* exact size: ASan sees a read past the end */
        memcpy(buf, good, size);
        size_t n = size;
        int edits = 1 + iter % 3;
        for (int e = 0; e < edits; e++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t at = (size_t)(rng >> 16) % hdr_end;
            switch (rng % 4) {
            case 0: case 1: /* a digit becomes another digit: shapes and offsets change */
                for (size_t k = at; k < hdr_end; k++)
                    if (buf[k] >= '0' && buf[k] <= '9') {
                        buf[k] = (uint8_t)('0' + (rng >> 40) % 10);
                        break;
                    }
                break;
            case 2:
                buf[at] = (uint8_t)(rng >> 32);
                break;
            default:
                n = (size_t)(rng >> 24) % (n + 1);
                break;
            }
        }
        struct pgd__st_file *f = NULL;
        char err[512] = "";
        enum pgd_status st = pgd__st_file_parse("fuzz-image", buf, n, &f, err, sizeof err);
        if (st) {
            refused++;
            cr_assert_null(f);
            cr_assert(st == PGD_ERR_FORMAT || st == PGD_ERR_UNSUPPORTED, "iteration %d: %s",
                      iter, pgd_status_str(st));
            cr_assert_not_null(strstr(err, "fuzz-image"), "iteration %d: %s", iter, err);
        } else {
            accepted++;
            uint64_t at = 0;
            for (size_t i = 0; i < f->n_tensors; i++) {
                const struct pgd__st_tensor *t = &f->tensors[i];
                const uint8_t *d = t->data;
                cr_assert(d >= buf + f->data_start && d + t->nbytes <= buf + n, "%s", t->name);
                if (t->nbytes) {
                    cr_assert_eq(t->offset, at, "%s", t->name);
                    at += t->nbytes;
                }
            }
            cr_assert_eq(at, n - f->data_start);
            pgd__st_file_close(f);
        }
        free(buf);
    }
    if (getenv("PGD_TEST_VERBOSE"))
        fprintf(stderr, "random damage: %d accepted, %d refused\n", accepted, refused);
    /* Both outcomes happen (digit edits in names and the cut at the end keep some valid). */
    cr_expect_gt(refused, 1000);
    cr_expect_gt(accepted, 10);
}

/* ---- sharded checkpoints --------------------------------------------------------------- */

/* Tensor k of a sharded test checkpoint: F32 [2, 3] filled with 100 k + i. */
static void shard_tensor(struct builder *b, const char *name, int k)
{
    float v[6];
    for (int i = 0; i < 6; i++)
        v[i] = 100.0f * (float)k + (float)i;
    b_add(b, name, "F32", 2, (int64_t[]){ 2, 3 }, v, sizeof v);
}

static const char *const shard_files[3] = {
    "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
    "model-00003-of-00003.safetensors",
};
/* Tensor k is in shard k % 3 and is named "layers.<k>.w". */
enum { N_SHARDED = 10 };

/* Writes the 3 shards and the index into tmpdir/dir. The index lists `extra` as well,
 * in shard extra_shard (NULL: nothing extra). */
static void write_sharded(const char *dir, const char *extra, int extra_shard)
{
    make_subdir(dir);
    char path[PATH_MAX], name[64];
    json_t *map = json_object();
    for (int s = 0; s < 3; s++) {
        struct builder b;
        b_init(&b);
        for (int k = s; k < N_SHARDED; k += 3) {
            snprintf(name, sizeof name, "layers.%d.w", k);
            shard_tensor(&b, name, k);
            json_object_set_new(map, name, json_string(shard_files[s]));
        }
        snprintf(path, sizeof path, "%s/%s/%s", tmpdir, dir, shard_files[s]);
        b_write(&b, path, true);
    }
    if (extra)
        json_object_set_new(map, extra, json_string(shard_files[extra_shard]));
    json_t *idx = json_pack("{s:{s:I}, s:o}", "metadata", "total_size",
                            (json_int_t)(N_SHARDED * 24), "weight_map", map);
    snprintf(path, sizeof path, "%s/%s/model.safetensors.index.json", tmpdir, dir);
    cr_assert_eq(json_dump_file(idx, path, JSON_INDENT(2)), 0);
    json_decref(idx);
}

static void write_index_text(const char *dir, const char *text)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/model.safetensors.index.json", tmpdir, dir);
    write_bytes(path, text, strlen(text));
}

Test(safetensors, sharded_checkpoint_round_trips)
{
    write_sharded("sharded", NULL, 0);
    char err[512];
    struct pgd__weights *w = NULL;
    cr_assert_eq(pgd__weights_open_dir(tp("sharded"), &w, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(pgd__weights_count(w), N_SHARDED);
    for (int k = 0; k < N_SHARDED; k++) {
        char name[64];
        snprintf(name, sizeof name, "layers.%d.w", k);
        const struct pgd__st_tensor *t = pgd__weights_find(w, name);
        cr_assert_not_null(t, "%s", name);
        cr_expect_eq(t->ndim, 2);
        cr_expect_eq(t->shape[0], 2);
        cr_expect_eq(t->shape[1], 3);
        const char *slash = strrchr(t->path, '/');
        cr_assert_not_null(slash);
        cr_expect_str_eq(slash + 1, shard_files[k % 3], "%s in %s", name, t->path);
        float v[6];
        memcpy(v, t->data, sizeof v);
        for (int i = 0; i < 6; i++)
            cr_expect_eq(v[i], 100.0f * (float)k + (float)i, "%s[%d]", name, i);
    }
    /* Disk order: shard by shard. */
    int last_shard = 0;
    for (size_t i = 0; i < pgd__weights_count(w); i++) {
        const struct pgd__st_tensor *t = pgd__weights_at(w, i);
        int s = -1;
        for (int j = 0; j < 3; j++)
            if (strstr(t->path, shard_files[j]))
                s = j;
        cr_expect_geq(s, last_shard, "%s (shard %d) after shard %d", t->name, s, last_shard);
        last_shard = s;
    }
    cr_expect_eq(pgd__weights_nbytes(w), N_SHARDED * 24);
    pgd__weights_close(w);
}

Test(safetensors, single_file_directory_and_trailing_slash)
{
    make_subdir("single");
    write_all_dtypes(tp("single/model.safetensors"), true);
    char err[512], dir[PATH_MAX];
    struct pgd__weights *w = NULL;
    snprintf(dir, sizeof dir, "%s/", tp("single"));
    cr_assert_eq(pgd__weights_open_dir(dir, &w, err, sizeof err), PGD_OK, "%s", err);
    cr_expect_eq(pgd__weights_count(w), 9);
    cr_expect_str_eq(pgd__weights_at(w, 0)->path, tp("single/model.safetensors"));
    pgd__weights_close(w);
}

Test(safetensors, duplicate_tensor_across_shards_is_refused)
{
    write_sharded("dup", NULL, 0);
    /* Shard 3 gains a copy of layers.0.w (which the index puts in shard 1). */
    struct builder b;
    b_init(&b);
    char name[64];
    for (int k = 2; k < N_SHARDED; k += 3) {
        snprintf(name, sizeof name, "layers.%d.w", k);
        shard_tensor(&b, name, k);
    }
    shard_tensor(&b, "layers.0.w", 0);
    b_write(&b, tp("dup/model-00003-of-00003.safetensors"), true);
    char err[512];
    check_refusal("duplicate", open_dir(tp("dup"), err, sizeof err), PGD_ERR_FORMAT, err,
                  "'layers.0.w'", shard_files[0], shard_files[2]);
}

Test(safetensors, missing_shard_is_refused)
{
    write_sharded("miss", NULL, 0);
    cr_assert_eq(unlink(tp("miss/model-00002-of-00003.safetensors")), 0);
    char err[512];
    check_refusal("missing shard", open_dir(tp("miss"), err, sizeof err), PGD_ERR_NOT_FOUND,
                  err, "model.safetensors.index.json", shard_files[1], "'layers.");
}

Test(safetensors, weight_map_must_match_the_shards)
{
    char err[512];
    /* The index lists a tensor that its shard does not have. */
    write_sharded("ghost", "lm_head.weight", 1);
    check_refusal("tensor not in its shard", open_dir(tp("ghost"), err, sizeof err),
                  PGD_ERR_FORMAT, err, "'lm_head.weight'", shard_files[1], NULL);

    /* The index puts a tensor in the wrong shard. */
    write_sharded("moved", NULL, 0);
    write_index_text("moved", "{\"weight_map\": {\"layers.0.w\": \"model-00002-of-00003."
                     "safetensors\", \"layers.1.w\": \"model-00001-of-00003.safetensors\"}}");
    check_refusal("tensor in another shard", open_dir(tp("moved"), err, sizeof err),
                  PGD_ERR_FORMAT, err, "'layers.0.w'", shard_files[0], shard_files[1]);

    /* A shard that the weight_map does not mention is not opened; tensors of opened shards
     * that the weight_map does not mention are still found. */
    write_sharded("partial", NULL, 0);
    write_index_text("partial", "{\"weight_map\": {\"layers.0.w\": \"model-00001-of-00003."
                     "safetensors\"}}");
    struct pgd__weights *w = NULL;
    cr_assert_eq(pgd__weights_open_dir(tp("partial"), &w, err, sizeof err), PGD_OK, "%s", err);
    cr_expect_eq(pgd__weights_count(w), 4); /* layers.0, 3, 6, 9 */
    cr_expect_not_null(pgd__weights_find(w, "layers.9.w"));
    cr_expect_null(pgd__weights_find(w, "layers.1.w"));
    pgd__weights_close(w);
}

Test(safetensors, corrupt_shard_is_refused_by_name)
{
    write_sharded("badshard", NULL, 0);
    write_st(tp("badshard/model-00002-of-00003.safetensors"),
             "{\"layers.1.w\":" E("F32", "[2, 3]", 0, 20) "}", 20);
    char err[512];
    check_refusal("corrupt shard", open_dir(tp("badshard"), err, sizeof err), PGD_ERR_FORMAT,
                  err, tp("badshard/model-00002-of-00003.safetensors"), "'layers.1.w'", NULL);
}

Test(safetensors, bad_indexes_are_refused)
{
    static const struct { const char *label, *text, *detail; } cases[] = {
        { "invalid JSON", "{\"weight_map\": {", "not valid JSON" },
        { "no weight_map", "{\"metadata\": {}}", "weight_map" },
        { "weight_map not an object", "{\"weight_map\": []}", "weight_map" },
        { "empty weight_map", "{\"weight_map\": {}}", "weight_map" },
        { "shard not a string", "{\"weight_map\": {\"a\": 5}}", "'a'" },
        { "shard climbs out", "{\"weight_map\": {\"a\": \"../x.safetensors\"}}", "../x" },
        { "absolute shard", "{\"weight_map\": {\"a\": \"/etc/x.safetensors\"}}", "/etc/x" },
        { "empty shard name", "{\"weight_map\": {\"a\": \"\"}}", "'a'" },
        { "duplicate key", "{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}", "JSON" },
    };
    char err[512], dir[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(dir, sizeof dir, "idx%zu", i);
        make_subdir(dir);
        write_index_text(dir, cases[i].text);
        err[0] = '\0';
        check_refusal(cases[i].label, open_dir(tp(dir), err, sizeof err), PGD_ERR_FORMAT, err,
                      "model.safetensors.index.json", cases[i].detail, NULL);
    }
}

Test(safetensors, directory_without_a_checkpoint_is_refused)
{
    char err[1024];
    make_subdir("emptydir");
    check_refusal("empty dir", open_dir(tp("emptydir"), err, sizeof err), PGD_ERR_NOT_FOUND,
                  err, tp("emptydir/model.safetensors"),
                  tp("emptydir/model.safetensors.index.json"), NULL);
    cr_expect_null(strstr(err, "pytorch_model.bin"), "%s", err);

    make_subdir("torchdir");
    write_bytes(tp("torchdir/pytorch_model.bin"), "PK", 2);
    check_refusal("torch dir", open_dir(tp("torchdir"), err, sizeof err), PGD_ERR_NOT_FOUND,
                  err, "model.safetensors.index.json", "pytorch_model.bin", NULL);

    check_refusal("no dir", open_dir(tp("nowhere"), err, sizeof err), PGD_ERR_NOT_FOUND, err,
                  tp("nowhere"), NULL, NULL);
    write_bytes(tp("plain"), "x", 1);
    check_refusal("not a dir", open_dir(tp("plain"), err, sizeof err), PGD_ERR_IO, err,
                  tp("plain"), "not a directory", NULL);
}

/* ---- files written by the Python safetensors package ----------------------------------- */

#define FIXTURE(name) PGD_TEST_SRCDIR "/tests/fixtures/safetensors/" name

/* The formulas are those of scripts/make_safetensors_fixture.py. */
Test(safetensors, reads_files_written_by_python_safetensors)
{
    char err[512];
    struct pgd__weights *w = NULL;
    cr_assert_eq(pgd__weights_open_file(FIXTURE("python.safetensors"), &w, err, sizeof err),
                 PGD_OK, "%s", err);
    cr_assert_eq(pgd__weights_count(w), 8);
    cr_expect_str_eq(pgd__weights_metadata(w, "format"), "np");
    /* The Python writer pads the header and puts the widest dtypes first. */
    for (size_t i = 0; i < pgd__weights_count(w); i++)
        cr_expect(pgd__weights_at(w, i)->aligned, "%s", pgd__weights_at(w, i)->name);
    cr_expect_str_eq(pgd__weights_metadata(w, "producer"), "make_safetensors_fixture.py");

    const struct pgd__st_tensor *t;
    cr_assert_eq(pgd__weights_expect(w, "model.embed_tokens.weight", PGD_DTYPE_F32, 2,
                                     (int64_t[]){ 3, 4 }, &t, err, sizeof err), PGD_OK, "%s",
                 err);
    for (int i = 0; i < 12; i++) {
        float f;
        memcpy(&f, (const uint8_t *)t->data + 4 * i, 4);
        cr_expect_eq(f, (float)(i - 6) * 0.125f, "embed[%d] = %g", i, f);
    }

    cr_assert_eq(pgd__weights_expect(w, "f16", PGD_DTYPE_F16, 1, (int64_t[]){ 5 }, &t, err,
                                     sizeof err), PGD_OK, "%s", err);
    float f16[5];
    pgd_convert_to_f32(f16, t->data, PGD_DTYPE_F16, 5);
    const float f16_want[5] = { 0.5f, -1.25f, 65504.0f, ldexpf(1.0f, -24), -0.0f };
    for (int i = 0; i < 5; i++)
        cr_expect_eq(f16[i], f16_want[i], "f16[%d] = %g", i, f16[i]);
    cr_expect(signbit(f16[4]), "f16[4] lost its sign");

    cr_assert_eq(pgd__weights_expect(w, "bf16", PGD_DTYPE_BF16, 2, (int64_t[]){ 2, 3 }, &t, err,
                                     sizeof err), PGD_OK, "%s", err);
    float bf[6];
    pgd_convert_to_f32(bf, t->data, PGD_DTYPE_BF16, 6);
    for (int i = 0; i < 6; i++)
        cr_expect_eq(bf[i], (float)(i - 2) * 1.5f, "bf16[%d] = %g", i, bf[i]);

    cr_assert_eq(pgd__weights_expect(w, "i32", PGD_DTYPE_I32, 2, (int64_t[]){ 2, 2 }, &t, err,
                                     sizeof err), PGD_OK, "%s", err);
    int32_t i32[4];
    memcpy(i32, t->data, sizeof i32);
    cr_expect_eq(i32[0], INT32_MIN);
    cr_expect_eq(i32[1], -1);
    cr_expect_eq(i32[2], 0);
    cr_expect_eq(i32[3], INT32_MAX);

    cr_assert_eq(pgd__weights_expect(w, "i64", PGD_DTYPE_I64, 1, (int64_t[]){ 3 }, &t, err,
                                     sizeof err), PGD_OK, "%s", err);
    int64_t i64[3];
    memcpy(i64, t->data, sizeof i64);
    cr_expect_eq(i64[0], INT64_MIN);
    cr_expect_eq(i64[1], ((int64_t)1 << 40) + 1);
    cr_expect_eq(i64[2], INT64_MAX);

    cr_assert_eq(pgd__weights_expect(w, "u8", PGD_DTYPE_U8, 1, (int64_t[]){ 7 }, &t, err,
                                     sizeof err), PGD_OK, "%s", err);
    for (int i = 0; i < 7; i++)
        cr_expect_eq(((const uint8_t *)t->data)[i], (uint8_t)(i * 37 % 256), "u8[%d]", i);

    cr_assert_eq(pgd__weights_expect(w, "scalar", PGD_DTYPE_F32, 0, NULL, &t, err, sizeof err),
                 PGD_OK, "%s", err);
    float s;
    memcpy(&s, t->data, 4);
    cr_expect_eq(s, 3.25f);
    cr_assert_eq(pgd__weights_expect(w, "empty", PGD_DTYPE_F32, 2, (int64_t[]){ 0, 3 }, &t, err,
                                     sizeof err), PGD_OK, "%s", err);
    cr_expect_eq(t->nbytes, 0);
    pgd__weights_close(w);

    /* A valid file with an F64 tensor: refused by name, as unsupported (not corrupt). */
    check_refusal("python F64", open_file(FIXTURE("python_f64.safetensors"), err, sizeof err),
                  PGD_ERR_UNSUPPORTED, err, "python_f64.safetensors", "'w'", "F64");
}
