/* Internal: the safetensors reader. Files are mmap'd read-only; tensors point into the map.
 *
 * Format (https://huggingface.co/docs/safetensors): 8 bytes little-endian header length N,
 * N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data; offsets are relative to the end of the header.
 *
 * The reader is strict, like the reference implementation: the header must be a JSON object
 * (surrounding spaces allowed) of at most PGD__ST_MAX_HEADER bytes; each
 * tensor entry has exactly the fields dtype, shape and data_offsets; numel * dtype size must
 * equal end - begin; the tensors must tile the data exactly (no overlap, no hole, no bytes
 * after the last tensor); "__metadata__" is a string -> string object. dtypes F32, F16, BF16,
 * I32, I64 and U8 are read; the other safetensors dtypes (F64, F8_E4M3, BOOL, ...) are
 * refused with PGD_ERR_UNSUPPORTED and names pagoda has never heard of with PGD_ERR_FORMAT.
 *
 * Alignment: a tensor's data is wherever the file puts it. Files written by the Python
 * package pad the header to 8 bytes, but a tensor that follows an odd-sized one is not
 * aligned to its dtype size: check pgd__st_tensor.aligned, and copy (memcpy) tensors that
 * are not before handing them to code that loads whole elements (pgd_convert_to_f32, the
 * CPU kernels). */
#ifndef PGD_RUNTIME_SAFETENSORS_H
#define PGD_RUNTIME_SAFETENSORS_H

#include <pagoda/tensor.h>
#include <pagoda/status.h>
#include <stdint.h>

/* The most dimensions a tensor may have in a file (more is refused). pgd_tensor carries
 * PGD_MAX_DIMS; pgd__st_tensor_view refuses tensors with more than that. */
#define PGD__ST_MAX_DIMS 8
/* Headers longer than this are refused as corrupt (the reference reader uses the same cap). */
#define PGD__ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

struct pgd__st_tensor {
    const char *name;         /* owned by the file or checkpoint */
    enum pgd_dtype dtype;
    int ndim;                 /* 0 for a scalar (numel 1) */
    int64_t shape[PGD__ST_MAX_DIMS]; /* shape[0] is the outermost dimension; unused are 0 */
    const void *data;         /* points into the read-only map: never write through it */
    size_t nbytes;            /* numel * dtype size */
    uint64_t offset;          /* data_offsets[0], relative to the start of the data */
    bool aligned;             /* data % dtype size == 0; when false read through memcpy */
    const char *path;         /* the .safetensors file that holds it; owned like name */
};

/* ---- one file ------------------------------------------------------------------------- */

struct pgd__st_file {
    char *path;                        /* owned */
    const uint8_t *map;                /* the whole file, PROT_READ; NULL for a 0-byte file */
    size_t map_size;
    size_t data_start;                 /* 8 + header length: where offset 0 lies in map */
    struct pgd__st_tensor *tensors;    /* [n_tensors], sorted by offset; owned */
    size_t n_tensors;
    char **meta_keys, **meta_values;   /* [n_meta] "__metadata__" pairs; owned */
    size_t n_meta;
    bool mapped;                       /* map came from pgd__st_file_open: close unmaps it */
};

/* Maps path and validates its header (see the top of this file). On success *out is a new
 * file the caller frees with pgd__st_file_close; on failure *out is NULL and err names the
 * file and, where there is one, the tensor. PGD_ERR_NOT_FOUND: no such file; PGD_ERR_IO:
 * unreadable, not a regular file or not mappable; PGD_ERR_FORMAT: not a valid safetensors
 * file; PGD_ERR_UNSUPPORTED: a valid dtype pagoda does not read. */
enum pgd_status pgd__st_file_open(const char *path, struct pgd__st_file **out,
                                  char *err, size_t errlen);
/* Validates an in-memory image of a file (used by open and by tests). buf is borrowed and
 * must outlive *out; path only names the file in messages and in tensors' path. */
enum pgd_status pgd__st_file_parse(const char *path, const uint8_t *buf, size_t size,
                                   struct pgd__st_file **out, char *err, size_t errlen);
/* Unmaps (when mapped by open) and frees f (NULL is fine). */
void pgd__st_file_close(struct pgd__st_file *f);

/* ---- a checkpoint (one file or several shards) --------------------------------------- */

/* One checkpoint: a single model.safetensors, or the shards listed by
 * model.safetensors.index.json (its weight_map), or one explicit file. */
struct pgd__weights;

/* Opens the checkpoint in model_dir: model.safetensors when present, otherwise the shards
 * of model.safetensors.index.json. Every file's header is validated strictly; any problem is
 * refused with a message naming the file and, where there is one, the tensor. For a sharded
 * checkpoint every tensor of the weight_map must be in the shard it names, and a tensor
 * held by two shards is refused. A directory with neither file is PGD_ERR_NOT_FOUND, with
 * a message listing what was looked for. On success the caller owns *out (free with
 * pgd__weights_close); on failure *out is NULL. */
enum pgd_status pgd__weights_open_dir(const char *model_dir, struct pgd__weights **out,
                                      char *err, size_t errlen);
/* Opens a single .safetensors file as a checkpoint. Ownership as above. */
enum pgd_status pgd__weights_open_file(const char *path, struct pgd__weights **out,
                                       char *err, size_t errlen);
/* NULL when absent. O(1) (a hash table). The pointer lives as long as w. */
const struct pgd__st_tensor *pgd__weights_find(const struct pgd__weights *w, const char *name);
/* The tensors in disk order: shard by shard (in file-name order), each by data offset. */
size_t pgd__weights_count(const struct pgd__weights *w);
const struct pgd__st_tensor *pgd__weights_at(const struct pgd__weights *w, size_t i);
/* Sum of nbytes over every tensor. */
uint64_t pgd__weights_nbytes(const struct pgd__weights *w);
/* A "__metadata__" value (the first shard that has the key), or NULL. Lives as long as w. */
const char *pgd__weights_metadata(const struct pgd__weights *w, const char *key);
/* Finds name and checks it against what the caller expects: dtype (PGD_DTYPE_COUNT: any),
 * ndim and shape[ndim] (an entry of -1: any extent; shape may be NULL for "any shape of
 * ndim dims"; ndim -1: any rank). PGD_ERR_NOT_FOUND when absent, PGD_ERR_FORMAT when it
 * differs, with a message naming the tensor, its file and both shapes. *out lives as long
 * as w. */
enum pgd_status pgd__weights_expect(const struct pgd__weights *w, const char *name,
                                    enum pgd_dtype dtype, int ndim, const int64_t *shape,
                                    const struct pgd__st_tensor **out, char *err, size_t errlen);
/* Unmaps every file and frees w (NULL is fine). */
void pgd__weights_close(struct pgd__weights *w);

/* A pgd_tensor (CPU) view of t. PGD_ERR_UNSUPPORTED when t has more than PGD_MAX_DIMS
 * dimensions. out->data points into the read-only map (cast from const: never write). */
enum pgd_status pgd__st_tensor_view(const struct pgd__st_tensor *t, struct pgd_tensor *out,
                                    char *err, size_t errlen);

/* Writes "[2, 3]" (ndim entries of shape) into buf, truncated to len. */
void pgd__st_format_shape(char *buf, size_t len, const int64_t *shape, int ndim);

#endif
