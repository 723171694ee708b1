/* Tensors: a typed, shaped view of memory on one device. Row-major and contiguous: the
 * last dimension varies fastest. A tensor never owns its memory; whoever made the memory
 * (the weights loader, the runner's activation arena) says who frees it. */
#ifndef PAGODA_TENSOR_H
#define PAGODA_TENSOR_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

enum pgd_dtype {
    PGD_DTYPE_F32 = 0,
    PGD_DTYPE_F16,
    PGD_DTYPE_BF16,
    PGD_DTYPE_I32,
    PGD_DTYPE_I64,
    PGD_DTYPE_U8,
    PGD_DTYPE_F8_E4M3,        /* float8 e4m3fn (FP8 checkpoints; include/pagoda/quant.h) */
    PGD_DTYPE_COUNT
};

enum pgd_device { PGD_DEVICE_CPU = 0, PGD_DEVICE_CUDA = 1 };

#define PGD_MAX_DIMS 4

struct pgd_tensor {
    void *data;               /* NULL for an absent optional tensor (e.g. no bias) */
    enum pgd_dtype dtype;
    enum pgd_device device;
    int ndim;
    int64_t ne[PGD_MAX_DIMS]; /* ne[0] is the outermost (slowest) dimension */
};

size_t pgd_dtype_size(enum pgd_dtype dt);
/* "F32", "F16", "BF16", "I32", "I64", "U8", "F8_E4M3" (the safetensors spelling). */
const char *pgd_dtype_name(enum pgd_dtype dt);
/* Parses a safetensors dtype name; returns false when it is not one pagoda knows. */
bool pgd_dtype_parse(const char *name, enum pgd_dtype *out);

int64_t pgd_tensor_numel(const struct pgd_tensor *t);
size_t pgd_tensor_nbytes(const struct pgd_tensor *t);
/* Rows are everything but the last dimension; cols is the last dimension. */
int64_t pgd_tensor_rows(const struct pgd_tensor *t);
int64_t pgd_tensor_cols(const struct pgd_tensor *t);

/* A 2-D view [rows, cols] of the same memory (numel must match). */
struct pgd_tensor pgd_tensor_view2d(const struct pgd_tensor *t, int64_t rows, int64_t cols);
/* Rows [row0, row0 + n) of a tensor viewed as 2-D. */
struct pgd_tensor pgd_tensor_rows_view(const struct pgd_tensor *t, int64_t row0, int64_t n);

/* Scalar conversions (round-to-nearest-even for narrowing). */
float pgd_bf16_to_f32(uint16_t h);
uint16_t pgd_f32_to_bf16(float f);
float pgd_f16_to_f32(uint16_t h);
uint16_t pgd_f32_to_f16(float f);
/* Widens n elements of a 16-bit or 32-bit float array into dst (host memory). */
void pgd_convert_to_f32(float *dst, const void *src, enum pgd_dtype src_dtype, size_t n);

#ifdef __cplusplus
}
#endif
#endif
