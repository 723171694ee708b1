/* Dtype facts, tensor shape helpers and float conversions. */
#include <pagoda/tensor.h>
#include <pagoda/status.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtype_info[PGD_DTYPE_COUNT] = {
    [PGD_DTYPE_F32] = { "F32", 4 },  [PGD_DTYPE_F16] = { "F16", 2 },
    [PGD_DTYPE_BF16] = { "BF16", 2 }, [PGD_DTYPE_I32] = { "I32", 4 },
    [PGD_DTYPE_I64] = { "I64", 8 },  [PGD_DTYPE_U8] = { "U8", 1 },
    [PGD_DTYPE_F8_E4M3] = { "F8_E4M3", 1 },
};

size_t pgd_dtype_size(enum pgd_dtype dt)
{
    PGD_ASSERT((unsigned)dt < PGD_DTYPE_COUNT);
    return dtype_info[dt].size;
}

const char *pgd_dtype_name(enum pgd_dtype dt)
{
    return (unsigned)dt < PGD_DTYPE_COUNT ? dtype_info[dt].name : "?";
}

bool pgd_dtype_parse(const char *name, enum pgd_dtype *out)
{
    for (int i = 0; i < PGD_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (enum pgd_dtype)i;
            return true;
        }
    return false;
}

int64_t pgd_tensor_numel(const struct pgd_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->ne[i];
    return n;
}

size_t pgd_tensor_nbytes(const struct pgd_tensor *t)
{
    return (size_t)pgd_tensor_numel(t) * pgd_dtype_size(t->dtype);
}

int64_t pgd_tensor_cols(const struct pgd_tensor *t)
{
    return t->ndim > 0 ? t->ne[t->ndim - 1] : 1;
}

int64_t pgd_tensor_rows(const struct pgd_tensor *t)
{
    int64_t cols = pgd_tensor_cols(t);
    return cols ? pgd_tensor_numel(t) / cols : 0;
}

struct pgd_tensor pgd_tensor_view2d(const struct pgd_tensor *t, int64_t rows, int64_t cols)
{
    PGD_ASSERT(rows * cols == pgd_tensor_numel(t));
    struct pgd_tensor v = *t;
    v.ndim = 2;
    v.ne[0] = rows;
    v.ne[1] = cols;
    v.ne[2] = v.ne[3] = 0;
    return v;
}

struct pgd_tensor pgd_tensor_rows_view(const struct pgd_tensor *t, int64_t row0, int64_t n)
{
    int64_t cols = pgd_tensor_cols(t);
    PGD_ASSERT(row0 >= 0 && row0 + n <= pgd_tensor_rows(t));
    struct pgd_tensor v = pgd_tensor_view2d(t, pgd_tensor_rows(t), cols);
    v.ne[0] = n;
    v.data = (char *)t->data + (size_t)(row0 * cols) * pgd_dtype_size(t->dtype);
    return v;
}

float pgd_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pgd_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)      /* NaN: keep it a quiet NaN */
        return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);           /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float pgd_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else {                              /* subnormal: normalize */
            int e = -1;
            do { mant <<= 1; e++; } while (!(mant & 0x400));
            mant &= 0x3ff;
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pgd_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t mant = u & 0x7fffff;
    if (((u >> 23) & 0xff) == 0xff)           /* inf or NaN */
        return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31)
        return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {                           /* subnormal or zero */
        if (exp < -10)
            return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1)))
            half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;                                  /* may carry into the exponent: correct */
    return (uint16_t)h;
}

void pgd_convert_to_f32(float *dst, const void *src, enum pgd_dtype src_dtype, size_t n)
{
    /* src may be unaligned (a tensor inside a safetensors map): read through memcpy. */
    const unsigned char *s = src;
    uint16_t h;
    switch (src_dtype) {
    case PGD_DTYPE_F32: memmove(dst, src, n * 4); break;
    case PGD_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            memcpy(&h, s + 2 * i, 2);
            dst[i] = pgd_bf16_to_f32(h);
        }
        break;
    case PGD_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            memcpy(&h, s + 2 * i, 2);
            dst[i] = pgd_f16_to_f32(h);
        }
        break;
    default: PGD_ASSERT(!"pgd_convert_to_f32: not a float dtype");
    }
}
