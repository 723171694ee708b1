/* The draft model of draft-model speculative decoding, as pgd_engine_create builds it: a
 * second runner over the draft's checkpoint, made before the target's so that its weights
 * are in memory when the target sizes its KV pool (each target block is counted with the
 * draft's block beside it: rp.extra_block_bytes), then given a pool of exactly the target's
 * block count, so that the engine's block tables index both caches. */
#include "runtime/engine/engine_internal.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/model.h"
#include <pagoda/log.h>

enum pgd_status pgd__engine_draft_open(const struct pgd__spec_config *spec,
                                       struct pgd__runner_params *rp,
                                       struct pgd__runner **draft, char *err, size_t errlen)
{
    struct pgd__runner_params dp = *rp;
    dp.model_dir = spec->model;
    dp.num_blocks = 1;                  /* for now: pgd__engine_draft_finish sizes it */
    dp.kv_cache_memory_bytes = 0;
    dp.max_model_len = 0;
    char e2[768];
    enum pgd_status st = pgd__runner_create(&dp, draft, e2, sizeof e2);
    if (st)
        return pgd_errf(err, errlen, st, "speculative_config: draft model %s: %s", spec->model,
                        e2);
    const struct pgd_model_desc *d = pgd__runner_desc(*draft);
    rp->extra_block_bytes = pgd__kv_cache_block_bytes(d->n_layers, dp.block_size, d->n_kv_heads,
                                                      d->head_dim,
                                                      pgd__runner_kv_dtype(*draft));
    return PGD_OK;
}

enum pgd_status pgd__engine_draft_finish(struct pgd__runner *draft,
                                         const struct pgd__runner *target, char *err,
                                         size_t errlen)
{
    const struct pgd_model_desc *dd = pgd__runner_desc(draft), *td = pgd__runner_desc(target);
    if (dd->vocab_size != td->vocab_size)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "speculative_config: the draft "
                        "model's vocab_size %d differs from the target's %d (a draft needs the "
                        "target's tokenizer)", dd->vocab_size, td->vocab_size);
    if (td->sliding_window > 0 || dd->sliding_window > 0)
        return pgd_errf(err, errlen, PGD_ERR_UNSUPPORTED, "speculative_config: a draft model "
                        "with a sliding-window %s is not supported (the window releases "
                        "blocks the draft still needs)", td->sliding_window ? "target" : "draft");
    enum pgd_status st = pgd__runner_set_num_blocks(draft, pgd__runner_num_blocks(target), err,
                                                    errlen);
    if (st == PGD_OK)
        st = pgd__runner_capture_graphs(draft, err, errlen);
    return st;
}
