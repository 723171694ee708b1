/* Internal: struct pgd_model_ctx, what a plugin's load sees (a view of the model being
 * built). */
#ifndef PGD_RUNTIME_MODEL_CTX_H
#define PGD_RUNTIME_MODEL_CTX_H

#include "runtime/model/model.h"
#include "runtime/model/safetensors.h"

struct pgd_model_ctx {
    struct pgd__model *m;              /* the model being loaded */
};

/* model.c's loading steps, for runtime/model/model_shard.c. pgd__model_alloc: device memory
 * the model owns (NULL when out). pgd__model_find_float: the float tensor `name` of exactly
 * that shape, or a message naming the tensor and both shapes. pgd__model_upload_checked:
 * n elements at src_data (inside tensor src, element `first` of it: for messages) refused
 * when one is NaN/Inf, converted to the model's dtype into dst. pgd__model_fill_random: n
 * random elements (as for random_weights) named by `name`. */
void *pgd__model_alloc(struct pgd__model *m, size_t bytes);
enum pgd_status pgd__model_find_float(struct pgd_model_ctx *ctx, const char *name, int ndim,
                                      const int64_t *shape, const struct pgd__st_tensor **out,
                                      char *err, size_t errlen);
enum pgd_status pgd__model_upload_checked(struct pgd__model *m, void *dst,
                                          const struct pgd__st_tensor *src, const void *src_data,
                                          size_t n, size_t first, char *err, size_t errlen);
enum pgd_status pgd__model_fill_random(struct pgd__model *m, const char *name, void *dst,
                                       size_t n, int64_t cols, char *err, size_t errlen);
/* The seed of the random tensor `name` (the model's --seed hashed with the name), for
 * runtime/model/qrandom.c's random quantized layers. */
uint64_t pgd__model_random_seed_of(const struct pgd__model *m, const char *name);

#endif
