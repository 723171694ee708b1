/* Dtype conversions and tensor views. */
#include "tests/lib/test_common.h"
#include <pagoda/tensor.h>
#include <math.h>
#include <string.h>

PGD_TEST_SUITE(tensor);

Test(tensor, bf16_roundtrip_and_rounding)
{
    cr_assert_eq(pgd_bf16_to_f32(pgd_f32_to_bf16(1.0f)), 1.0f);
    cr_assert_eq(pgd_bf16_to_f32(pgd_f32_to_bf16(-2.5f)), -2.5f);
    /* 1 + 2^-8 lies exactly between two bf16 values (1 and 1 + 2^-7): ties go to even (1). */
    cr_assert_eq(pgd_bf16_to_f32(pgd_f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);
    /* 1 + 3 * 2^-8 is a tie between 1 + 2^-7 (odd) and 1 + 2^-6 (even). */
    cr_assert_eq(pgd_bf16_to_f32(pgd_f32_to_bf16(1.0f + 3.0f / 256)), 1.0f + 1.0f / 64);
    cr_assert(isnan(pgd_bf16_to_f32(pgd_f32_to_bf16(NAN))));
}

Test(tensor, f16_roundtrip_edges)
{
    const float exact[] = { 0.0f, 1.0f, -1.0f, 0.5f, 65504.0f, 6.103515625e-05f /* min normal */,
                            5.960464477539063e-08f /* min subnormal */, 3.0517578125e-05f };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        cr_assert_eq(pgd_f16_to_f32(pgd_f32_to_f16(exact[i])), exact[i], "value %g", exact[i]);
    cr_assert(isinf(pgd_f16_to_f32(pgd_f32_to_f16(1e6f))));
    cr_assert(isnan(pgd_f16_to_f32(pgd_f32_to_f16(NAN))));
    /* 2049 is a tie between 2048 and 2050: round to even (2048). */
    cr_assert_eq(pgd_f16_to_f32(pgd_f32_to_f16(2049.0f)), 2048.0f);
    cr_assert_eq(pgd_f16_to_f32(pgd_f32_to_f16(2051.0f)), 2052.0f);
    /* Every f16 bit pattern that is not NaN survives f16 -> f32 -> f16. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = pgd_f16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        cr_assert_eq(pgd_f32_to_f16(f), h, "pattern 0x%04x", h);
    }
}

Test(tensor, dtype_names_parse_back)
{
    for (int i = 0; i < PGD_DTYPE_COUNT; i++) {
        enum pgd_dtype dt;
        cr_assert(pgd_dtype_parse(pgd_dtype_name((enum pgd_dtype)i), &dt));
        cr_assert_eq(dt, (enum pgd_dtype)i);
    }
    enum pgd_dtype dt;
    cr_assert_not(pgd_dtype_parse("F8_E5M2", &dt));
}

Test(tensor, views)
{
    float buf[24];
    for (int i = 0; i < 24; i++) buf[i] = (float)i;
    struct pgd_tensor t = { .data = buf, .dtype = PGD_DTYPE_F32, .ndim = 3, .ne = { 2, 3, 4 } };
    cr_assert_eq(pgd_tensor_numel(&t), 24);
    cr_assert_eq(pgd_tensor_rows(&t), 6);
    cr_assert_eq(pgd_tensor_cols(&t), 4);
    cr_assert_eq(pgd_tensor_nbytes(&t), 96);
    struct pgd_tensor r = pgd_tensor_rows_view(&t, 2, 3);
    cr_assert_eq(r.ne[0], 3);
    cr_assert_eq(((float *)r.data)[0], 8.0f);
}
