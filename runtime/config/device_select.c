/* --device and --dtype (see device_select.h). */
#include "config.h"
#include "runtime/config/device_select.h"
#include "runtime/base/device.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

#ifdef PGD_HAVE_CUDA
/* Makes visible card `index` (of those visible now) the only one. */
static enum pgd_status pin_card(int index, char *err, size_t errlen)
{
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    char pick[64];
    if (vis && *vis) {
        const char *p = vis;
        for (int i = 0; i < index && p; i++) {
            p = strchr(p, ',');
            p = p ? p + 1 : NULL;
        }
        if (!p || !*p)
            return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "--device cuda:%d: only the cards "
                            "CUDA_VISIBLE_DEVICES=%s are visible", index, vis);
        size_t n = strcspn(p, ",");
        snprintf(pick, sizeof pick, "%.*s", (int)(n < 60 ? n : 60), p);
    } else {
        snprintf(pick, sizeof pick, "%d", index);
    }
    setenv("CUDA_VISIBLE_DEVICES", pick, 1);
    return PGD_OK;
}
#endif

enum pgd_status pgd__device_select(const char *text, struct pgd__device_choice *out, char *err,
                                   size_t errlen)
{
    out->device = PGD_DEVICE_CPU;
    out->index = -1;
    snprintf(out->desc, sizeof out->desc, "cpu");
    bool want_cuda = !strcmp(text, "cuda") || !strcmp(text, "gpu") || !strncmp(text, "cuda:", 5);
    if (!want_cuda && strcmp(text, "auto") && strcmp(text, "cpu"))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "--device '%s': expected auto, cpu, "
                        "cuda or cuda:N", text);
    if (!strcmp(text, "cpu"))
        return PGD_OK;
#ifndef PGD_HAVE_CUDA
    if (want_cuda)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "--device %s: this build of pagoda "
                        "has no CUDA backend (configure found no nvcc); rebuild with CUDA, or "
                        "use --device cpu", text);
    snprintf(out->desc, sizeof out->desc, "cpu (this build has no CUDA backend)");
    return PGD_OK;
#else
    if (!strncmp(text, "cuda:", 5)) {
        char *end;
        long i = strtol(text + 5, &end, 10);
        if (!text[5] || *end || i < 0 || i > 1023)
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "--device '%s': expected cuda:N "
                            "with N a card's index", text);
        out->index = (int)i;
        enum pgd_status st = pin_card(out->index, err, errlen);
        if (st)
            return st;
    }
    if (!pgd__device_available(PGD_DEVICE_CUDA)) {
        if (want_cuda)
            return pgd_errf(err, errlen, PGD_ERR_NOT_FOUND, "--device %s: no CUDA GPU found "
                            "(no driver, no card, or none visible through "
                            "CUDA_VISIBLE_DEVICES); use --device cpu", text);
        snprintf(out->desc, sizeof out->desc, "cpu (no CUDA GPU found)");
        return PGD_OK;
    }
    char card[200];
    if (pgd_cuda_describe(0, card, sizeof card))
        snprintf(card, sizeof card, "unknown card");
    out->device = PGD_DEVICE_CUDA;
    snprintf(out->desc, sizeof out->desc, "cuda:%d (%s)", out->index >= 0 ? out->index : 0,
             card);
    return PGD_OK;
#endif
}

enum pgd_status pgd__dtype_parse(const char *text, enum pgd_dtype *out, char *err,
                                 size_t errlen)
{
    if (!strcmp(text, "auto"))
        *out = PGD_DTYPE_COUNT;
    else if (!strcmp(text, "bfloat16") || !strcmp(text, "bf16"))
        *out = PGD_DTYPE_BF16;
    else if (!strcmp(text, "float16") || !strcmp(text, "half") || !strcmp(text, "fp16") ||
             !strcmp(text, "f16"))
        *out = PGD_DTYPE_F16;
    else if (!strcmp(text, "float32") || !strcmp(text, "float") || !strcmp(text, "fp32"))
        *out = PGD_DTYPE_F32;
    else
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "--dtype '%s': expected auto, "
                        "bfloat16, float16 or float32 (or half, float, bf16, fp16)", text);
    return PGD_OK;
}

enum pgd_status pgd__dtype_select(const char *text, enum pgd_device device, enum pgd_dtype *out,
                                  char *warn, size_t warnlen, char *err, size_t errlen)
{
    warn[0] = '\0';
    enum pgd_status st = pgd__dtype_parse(text, out, err, errlen);
    if (st)
        return st;
    if (device == PGD_DEVICE_CUDA && *out == PGD_DTYPE_F32)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "--dtype %s: the CUDA backend "
                        "computes in bfloat16 or float16; use --dtype auto, bfloat16 or "
                        "float16 (or --device cpu for float32)", text);
    if (device == PGD_DEVICE_CPU && *out != PGD_DTYPE_COUNT && *out != PGD_DTYPE_F32) {
        snprintf(warn, warnlen, "--dtype %s: the CPU backend computes in float32; the "
                 "checkpoint's weights are converted to float32", text);
        *out = PGD_DTYPE_COUNT;
    }
    return PGD_OK;
}
