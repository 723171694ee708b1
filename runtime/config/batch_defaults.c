/* The batch limits that fit the card (see batch_defaults.h). */
#include "config.h"
#include "runtime/config/batch_defaults.h"
#include <pagoda/log.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#ifdef PGD_HAVE_CUDA
#include "kernels/cuda/kernels.h"
#endif

/* Whether name contains "a100", in any case. */
static bool is_a100(const char *name)
{
    for (const char *p = name; p && *p; p++)
        if (tolower((unsigned char)p[0]) == 'a' && !strncmp(p + 1, "100", 3))
            return true;
    return false;
}

struct pgd__batch_defaults pgd__batch_defaults_for(enum pgd_device device, size_t device_memory,
                                                   const char *device_name,
                                                   enum pgd__usage_context usage,
                                                   bool enable_chunked_prefill,
                                                   int max_model_len)
{
    struct pgd__batch_defaults d = { 256, 2048 };
    if (device == PGD_DEVICE_CUDA) {
        bool big = device_memory >= (size_t)70 << 30 && !is_a100(device_name);
        if (big)
            d = usage == PGD__USAGE_OFFLINE ? (struct pgd__batch_defaults){ 1024, 16384 }
                                            : (struct pgd__batch_defaults){ 1024, 8192 };
        else
            d = usage == PGD__USAGE_OFFLINE ? (struct pgd__batch_defaults){ 256, 8192 }
                                            : (struct pgd__batch_defaults){ 256, 2048 };
    }
    if (!enable_chunked_prefill && max_model_len > d.max_num_batched_tokens)
        d.max_num_batched_tokens = max_model_len;
    if (d.max_num_seqs > d.max_num_batched_tokens)
        d.max_num_seqs = d.max_num_batched_tokens;
    return d;
}

bool pgd__batch_defaults_probe(size_t *device_memory, char *name, size_t namelen)
{
    *device_memory = 0;
    if (namelen)
        name[0] = '\0';
#ifdef PGD_HAVE_CUDA
    size_t free_b, total_b;
    char err[256];
    if (pgd_cuda_device_count() <= 0 || pgd_cuda_mem_info(&free_b, &total_b, err, sizeof err))
        return false;
    *device_memory = total_b;
    /* "NVIDIA H200, sm_90, 139.8 GiB": the name is what comes before the first comma. */
    if (pgd_cuda_describe(0, name, namelen) == 0) {
        char *comma = strchr(name, ',');
        if (comma)
            *comma = '\0';
    }
    return true;
#else
    return false;
#endif
}

void pgd__batch_defaults_apply(struct pgd_engine_params *ep, bool seqs_given, bool tokens_given,
                               enum pgd__usage_context usage)
{
    if (ep->device != PGD_DEVICE_CUDA || (seqs_given && tokens_given))
        return;
    size_t mem;
    char name[200];
    if (!pgd__batch_defaults_probe(&mem, name, sizeof name))
        return;
    struct pgd__batch_defaults d = pgd__batch_defaults_for(ep->device, mem, name, usage,
                                                           ep->enable_chunked_prefill,
                                                           ep->max_model_len);
    if (!seqs_given)
        ep->max_num_seqs = d.max_num_seqs;
    if (!tokens_given)
        ep->max_num_batched_tokens = d.max_num_batched_tokens;
    /* A given budget below the default seq count still caps it, as vLLM's min() does. */
    if (!seqs_given && ep->max_num_seqs > ep->max_num_batched_tokens)
        ep->max_num_seqs = ep->max_num_batched_tokens;
    PGD_INFO("max_num_seqs %d, max_num_batched_tokens %d%s: the defaults for %s on %s with "
             "%.1f GiB (vLLM's for this card; set either to override)", ep->max_num_seqs,
             ep->max_num_batched_tokens, seqs_given || tokens_given ? " (one of them given)" : "",
             usage == PGD__USAGE_OFFLINE ? "offline runs" : "serving", name[0] ? name : "the GPU",
             (double)mem / (double)((size_t)1 << 30));
}
