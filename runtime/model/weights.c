/* A checkpoint: one safetensors file, or the shards that model.safetensors.index.json
 * lists, with every tensor's name in one hash table (open addressing, XXH3 hashes). */
#include "runtime/model/safetensors.h"
#include <pagoda/log.h>
#include <jansson.h>
#include <xxhash.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct slot {
    uint64_t hash;
    size_t idx;                          /* index into order + 1; 0: empty */
};

struct pgd__weights {
    char *source;                        /* the directory or file it was opened from; owned */
    struct pgd__st_file **files;         /* [n_files], owned; shards in file-name order */
    size_t n_files;
    const struct pgd__st_tensor **order; /* [n], disk order; point into files' tensors */
    size_t n;
    struct slot *slots;                  /* [cap], cap a power of two >= 2 n */
    size_t cap;
    uint64_t nbytes;
};

static enum pgd_status nomem(char *err, size_t errlen, const char *what)
{
    return pgd_errf(err, errlen, PGD_ERR_NOMEM, "%s: out of memory", what);
}

static char *join(const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    size_t len = dl + 1 + strlen(name) + 1;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%.*s/%s", (int)dl, dir, name);
    return p;
}

static uint64_t name_hash(const char *name)
{
    return XXH3_64bits(name, strlen(name));
}

/* The file of w that holds t (t points into one file's tensor array). */
static size_t file_of(const struct pgd__weights *w, const struct pgd__st_tensor *t)
{
    for (size_t i = 0; i < w->n_files; i++) {
        const struct pgd__st_file *f = w->files[i];
        if (t >= f->tensors && t < f->tensors + f->n_tensors)
            return i;
    }
    PGD_ASSERT(!"tensor outside every file");
    return 0;
}

/* Lists every file's tensors in order and fills the table. A name held by two files is
 * refused, naming both. */
static enum pgd_status build_table(struct pgd__weights *w, char *err, size_t errlen)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_files; i++)
        n += w->files[i]->n_tensors;
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    w->order = calloc(n ? n : 1, sizeof *w->order);
    w->slots = calloc(cap, sizeof *w->slots);
    if (!w->order || !w->slots)
        return nomem(err, errlen, w->source);
    w->cap = cap;
    for (size_t i = 0; i < w->n_files; i++) {
        const struct pgd__st_file *f = w->files[i];
        for (size_t j = 0; j < f->n_tensors; j++) {
            const struct pgd__st_tensor *t = &f->tensors[j];
            uint64_t h = name_hash(t->name);
            size_t s = (size_t)h & (cap - 1);
            for (; w->slots[s].idx; s = (s + 1) & (cap - 1)) {
                const struct pgd__st_tensor *o = w->order[w->slots[s].idx - 1];
                if (w->slots[s].hash == h && !strcmp(o->name, t->name))
                    return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                                    "%s: tensor '%s' is in two shards: %s and %s", w->source,
                                    t->name, o->path, t->path);
            }
            w->order[w->n] = t;
            w->slots[s].hash = h;
            w->slots[s].idx = ++w->n;
            w->nbytes += t->nbytes;
        }
    }
    return PGD_OK;
}

const struct pgd__st_tensor *pgd__weights_find(const struct pgd__weights *w, const char *name)
{
    uint64_t h = name_hash(name);
    for (size_t s = (size_t)h & (w->cap - 1); w->slots[s].idx; s = (s + 1) & (w->cap - 1)) {
        const struct pgd__st_tensor *t = w->order[w->slots[s].idx - 1];
        if (w->slots[s].hash == h && !strcmp(t->name, name))
            return t;
    }
    return NULL;
}

size_t pgd__weights_count(const struct pgd__weights *w)
{
    return w->n;
}

const struct pgd__st_tensor *pgd__weights_at(const struct pgd__weights *w, size_t i)
{
    PGD_ASSERT(i < w->n);
    return w->order[i];
}

uint64_t pgd__weights_nbytes(const struct pgd__weights *w)
{
    return w->nbytes;
}

const char *pgd__weights_metadata(const struct pgd__weights *w, const char *key)
{
    for (size_t i = 0; i < w->n_files; i++) {
        const struct pgd__st_file *f = w->files[i];
        for (size_t j = 0; j < f->n_meta; j++)
            if (!strcmp(f->meta_keys[j], key))
                return f->meta_values[j];
    }
    return NULL;
}

void pgd__weights_close(struct pgd__weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_files; i++)
        pgd__st_file_close(w->files[i]);
    free(w->files);
    free(w->order);
    free(w->slots);
    free(w->source);
    free(w);
}

static struct pgd__weights *weights_new(const char *source, size_t n_files)
{
    struct pgd__weights *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->source = strdup(source);
    w->files = calloc(n_files ? n_files : 1, sizeof *w->files);
    if (!w->source || !w->files) {
        pgd__weights_close(w);
        return NULL;
    }
    return w;
}

enum pgd_status pgd__weights_open_file(const char *path, struct pgd__weights **out,
                                       char *err, size_t errlen)
{
    *out = NULL;
    struct pgd__weights *w = weights_new(path, 1);
    if (!w)
        return nomem(err, errlen, path);
    enum pgd_status st = pgd__st_file_open(path, &w->files[0], err, errlen);
    if (!st) {
        w->n_files = 1;
        st = build_table(w, err, errlen);
    }
    if (st) {
        pgd__weights_close(w);
        return st;
    }
    *out = w;
    return PGD_OK;
}

/* ---- sharded checkpoints ------------------------------------------------------------- */

struct shard {
    const char *file;     /* the weight_map value; borrowed from the index JSON */
    const char *first;    /* a tensor the weight_map puts there (for messages) */
};

static int cmp_shard(const void *a, const void *b)
{
    return strcmp(((const struct shard *)a)->file, ((const struct shard *)b)->file);
}

/* A shard is named relative to the model directory and may not climb out of it. */
static bool shard_name_ok(const char *s)
{
    if (!*s || *s == '/')
        return false;
    for (const char *p = s;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && !strncmp(p, "..", 2))
            return false;
        if (!slash)
            return true;
        p = slash + 1;
    }
}

static enum pgd_status open_index(const char *dir, const char *index_path,
                                  struct pgd__weights **out, char *err, size_t errlen)
{
    FILE *fp = fopen(index_path, "rb");
    if (!fp)
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: cannot open: %s", index_path,
                        strerror(errno));
    json_error_t je;
    json_t *root = json_loadf(fp, JSON_REJECT_DUPLICATES, &je);
    fclose(fp);
    if (!root)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)",
                        index_path, je.text, je.line, je.column);

    enum pgd_status st = PGD_OK;
    struct shard *shards = NULL;
    struct pgd__weights *w = NULL;
    const json_t *map = json_is_object(root) ? json_object_get(root, "weight_map") : NULL;
    if (!json_is_object(map) || json_object_size(map) == 0) {
        st = pgd_errf(err, errlen, PGD_ERR_FORMAT,
                      "%s: no \"weight_map\" object (tensor name -> shard file) in the index",
                      index_path);
        goto done;
    }
    size_t nmap = json_object_size(map);
    shards = calloc(nmap, sizeof *shards);
    if (!shards) {
        st = nomem(err, errlen, index_path);
        goto done;
    }
    size_t ns = 0;
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)map, name, v) {
        if (!json_is_string(v) || !shard_name_ok(json_string_value(v))) {
            char *txt = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT,
                          "%s: weight_map puts tensor '%s' in %s, which is not a file name "
                          "inside the model directory", index_path, name, txt ? txt : "?");
            free(txt);
            goto done;
        }
        shards[ns].file = json_string_value(v);
        shards[ns++].first = name;
    }
    /* One entry per distinct file, in file-name order. */
    qsort(shards, ns, sizeof *shards, cmp_shard);
    size_t nu = 0;
    for (size_t i = 0; i < ns; i++)
        if (nu == 0 || strcmp(shards[nu - 1].file, shards[i].file))
            shards[nu++] = shards[i];

    if (!(w = weights_new(dir, nu))) {
        st = nomem(err, errlen, index_path);
        goto done;
    }
    for (size_t i = 0; i < nu; i++) {
        char *path = join(dir, shards[i].file);
        if (!path) {
            st = nomem(err, errlen, index_path);
            goto done;
        }
        char inner[1024];
        st = pgd__st_file_open(path, &w->files[i], inner, sizeof inner);
        free(path);
        if (st == PGD_ERR_NOT_FOUND) {
            st = pgd_errf(err, errlen, st, "%s: shard '%s' (which holds tensor '%s') is "
                          "missing: %s", index_path, shards[i].file, shards[i].first, inner);
            goto done;
        }
        if (st) {
            pgd_errf(err, errlen, st, "%s", inner);
            goto done;
        }
        w->n_files++;
    }
    if ((st = build_table(w, err, errlen)))
        goto done;
    /* Every tensor of the weight_map is in the shard it names. */
    json_object_foreach((json_t *)map, name, v) {
        const char *file = json_string_value(v);
        const struct pgd__st_tensor *t = pgd__weights_find(w, name);
        if (!t) {
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT,
                          "%s: weight_map puts tensor '%s' in %s, but %s/%s has no such tensor",
                          index_path, name, file, dir, file);
            goto done;
        }
        size_t fi = file_of(w, t);
        if (strcmp(shards[fi].file, file)) {
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT,
                          "%s: weight_map puts tensor '%s' in %s, but it is in %s", index_path,
                          name, file, t->path);
            goto done;
        }
    }
    if (w->n > nmap)
        PGD_DEBUG("%s: %zu tensors of the shards are not in the weight_map", index_path,
                  w->n - nmap);
done:
    free(shards);
    json_decref(root);
    if (st) {
        pgd__weights_close(w);
        return st;
    }
    *out = w;
    return PGD_OK;
}

static bool is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

enum pgd_status pgd__weights_open_dir(const char *model_dir, struct pgd__weights **out,
                                      char *err, size_t errlen)
{
    *out = NULL;
    struct stat sb;
    if (stat(model_dir, &sb) != 0) {
        int e = errno;
        return pgd_errf(err, errlen, e == ENOENT ? PGD_ERR_NOT_FOUND : PGD_ERR_IO,
                        "%s: cannot open the model directory: %s", model_dir, strerror(e));
    }
    if (!S_ISDIR(sb.st_mode))
        return pgd_errf(err, errlen, PGD_ERR_IO, "%s: not a directory", model_dir);

    char *single = join(model_dir, "model.safetensors");
    char *index = join(model_dir, "model.safetensors.index.json");
    char *bin = join(model_dir, "pytorch_model.bin");
    char *bin_index = join(model_dir, "pytorch_model.bin.index.json");
    enum pgd_status st;
    if (!single || !index || !bin || !bin_index)
        st = nomem(err, errlen, model_dir);
    else if (stat(single, &sb) == 0) /* as transformers does: the single file wins */
        st = pgd__weights_open_file(single, out, err, errlen);
    else if (stat(index, &sb) == 0)
        st = open_index(model_dir, index, out, err, errlen);
    else
        st = pgd_errf(err, errlen, PGD_ERR_NOT_FOUND,
                      "%s: no safetensors checkpoint: looked for %s and %s%s", model_dir,
                      single, index,
                      is_file(bin) || is_file(bin_index)
                          ? " (there is a pytorch_model.bin checkpoint: pagoda reads only "
                            "safetensors; convert it first)"
                          : "");
    free(single);
    free(index);
    free(bin);
    free(bin_index);
    return st;
}

/* ---- checked lookups ----------------------------------------------------------------- */

static void format_expected(char *buf, size_t len, const int64_t *shape, int ndim)
{
    if (ndim < 0) {
        snprintf(buf, len, "any shape");
        return;
    }
    size_t at = 0;
    int n = snprintf(buf, len, "[");
    for (int i = 0; i < ndim && n >= 0 && (at += (size_t)n) < len; i++) {
        if (!shape || shape[i] < 0)
            n = snprintf(buf + at, len - at, i ? ", ?" : "?");
        else
            n = snprintf(buf + at, len - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    }
    if (n >= 0 && (at += (size_t)n) < len)
        snprintf(buf + at, len - at, "]");
}

enum pgd_status pgd__weights_expect(const struct pgd__weights *w, const char *name,
                                    enum pgd_dtype dtype, int ndim, const int64_t *shape,
                                    const struct pgd__st_tensor **out, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    const struct pgd__st_tensor *t = pgd__weights_find(w, name);
    if (!t)
        return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "%s: no tensor '%s' in the checkpoint",
                        w->source, name);
    bool ok = dtype == PGD_DTYPE_COUNT || t->dtype == dtype;
    if (ndim >= 0) {
        ok = ok && t->ndim == ndim;
        for (int i = 0; ok && shape && i < ndim; i++)
            ok = shape[i] < 0 || shape[i] == t->shape[i];
    }
    if (!ok) {
        char got[160], want[160];
        pgd__st_format_shape(got, sizeof got, t->shape, t->ndim);
        format_expected(want, sizeof want, shape, ndim);
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: tensor '%s' is %s %s, expected %s %s", t->path, name,
                        pgd_dtype_name(t->dtype), got,
                        dtype == PGD_DTYPE_COUNT ? "any dtype" : pgd_dtype_name(dtype), want);
    }
    if (out)
        *out = t;
    return PGD_OK;
}
