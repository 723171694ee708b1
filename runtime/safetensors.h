/* Internal: the safetensors reader. Files are mmap'd read-only; tensors point into the map.
 *
 * Format (https://huggingface.co/docs/safetensors): 8 bytes little-endian header length N,
 * N bytes of JSON {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__"},
 * then the data; offsets are relative to the end of the header. */
#ifndef PGD_RUNTIME_SAFETENSORS_H
#define PGD_RUNTIME_SAFETENSORS_H

#include <pagoda/tensor.h>
#include <pagoda/status.h>

struct pgd__st_tensor {
    const char *name;         /* owned by the file or checkpoint */
    enum pgd_dtype dtype;
    int ndim;
    int64_t shape[PGD_MAX_DIMS];
    const void *data;         /* points into the read-only map */
    size_t nbytes;
    const char *path;         /* the .safetensors file that holds it */
};

/* One checkpoint: a single model.safetensors, or the shards listed by
 * model.safetensors.index.json (its weight_map), or one explicit file. */
struct pgd__weights;

/* Opens the checkpoint in model_dir. Every file's header is validated strictly; any
 * problem is refused with a message naming the file and, where there is one, the tensor. */
enum pgd_status pgd__weights_open_dir(const char *model_dir, struct pgd__weights **out,
                                      char *err, size_t errlen);
/* Opens a single .safetensors file. */
enum pgd_status pgd__weights_open_file(const char *path, struct pgd__weights **out,
                                       char *err, size_t errlen);
/* NULL when absent. The pointer lives as long as w. */
const struct pgd__st_tensor *pgd__weights_find(const struct pgd__weights *w, const char *name);
size_t pgd__weights_count(const struct pgd__weights *w);
const struct pgd__st_tensor *pgd__weights_at(const struct pgd__weights *w, size_t i);
/* Unmaps every file and frees w (NULL is fine). */
void pgd__weights_close(struct pgd__weights *w);

#endif
