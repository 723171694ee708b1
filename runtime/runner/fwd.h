/* Internal: struct pgd_fwd, the context of one forward step. The runner fills it; the
 * architecture plugin reads it only through include/pagoda/ops.h. */
#ifndef PGD_RUNTIME_FWD_H
#define PGD_RUNTIME_FWD_H

#include <pagoda/ops.h>
#include "runtime/runner/arena.h"
#include "runtime/kv/kv_cache.h"

struct pgd_cuda_ctx;                   /* kernels/cuda/kernels.h */
struct pgd_cuda_wq;                    /* kernels/cuda/kernels.h */
struct pgd__comm;                      /* runtime/dist/comm.h */
struct pgd__op_profile;                /* runtime/runner/op_profile.h */
struct pgd__pw_hook;                   /* runtime/runner/piecewise.h */

struct pgd_fwd {
    enum pgd_device device;
    enum pgd_dtype act_dtype;          /* activations (F32 on the CPU) */

    /* The flat batch, in the device's memory. */
    int n_tokens;
    const int32_t *token_ids;          /* [n_tokens] */
    const int32_t *positions;          /* [n_tokens], position within its sequence */
    const int64_t *slot_mapping;       /* [n_tokens], cache row for each token's K/V */
    int n_seqs;
    const int32_t *query_start;        /* [n_seqs + 1], rows of each sequence */
    const int32_t *seq_lens;           /* [n_seqs], tokens in the cache after this step */
    const int32_t *block_tables;       /* [n_seqs, max_blocks] */
    int max_blocks;
    int max_seq_len;                   /* max of seq_lens */

    /* Which rows need logits, and where they go. */
    int n_logits;
    const int32_t *logits_rows;        /* [n_logits], row indices into the batch */
    float *logits;                     /* [n_logits, vocab_size], float32, on the device */
    int vocab_size;
    /* Pooling steps (embeddings): pgd_op_logits gathers the same rows of the hidden state
     * it is given (the model's output after its final norm) into `hidden` ([n_logits,
     * hidden_size] in act_dtype, on the device) instead of computing logits: no LM head,
     * and no collective under tensor parallelism (every rank holds the whole rows). */
    bool want_hidden;
    void *hidden;
    int hidden_size;

    /* Host copies of the batch arrays the ops inspect (the same pointers on the CPU). */
    const int32_t *h_token_ids;        /* [n_tokens] */
    const int32_t *h_query_start;      /* [n_seqs + 1] */
    const int32_t *h_logits_rows;      /* [n_logits] */
    const int32_t *h_seq_lens;         /* [n_seqs]; NULL in graph steps */
    uint64_t step_id;                  /* increases every step */
    /* Decode steps captured in a CUDA graph: [n_seqs, 4] int32 attention work items
     * {seq, seq, 1, 0} in device memory the runner keeps (see struct pgd_cuda_attn);
     * NULL otherwise. */
    const int32_t *decode_items;
    struct pgd_cuda_ctx *cuda;         /* borrowed from the runner; CUDA steps only */

    struct pgd__comm *comm;            /* borrowed; tensor parallelism, NULL when not split */
    struct pgd__kv_cache *kv;          /* borrowed from the runner */
    struct pgd__arena *arena;          /* borrowed from the runner; reset every step */
    /* The per-op profile (runtime/runner/op_profile.h) of eager steps, when the runner has
     * one; NULL otherwise (the ops then skip their brackets). */
    struct pgd__op_profile *prof;

    /* linear_multi's offer to the quantized layers of one x on CUDA (ops.c):
     * pgd_op_qweight_linear records such a layer here (while got < want, and of the kind of
     * the first one it recorded) instead of running it, and linear_multi runs those it got in
     * one call (pgd_cuda_fp8_linear_multi / pgd_cuda_wq_linear_multi: at decode sizes one
     * launch for q, k and v). want 0: no offer. */
    struct {
        int want, got;
        const struct pgd_qweight *w[3];
        const void *b[3];
        void *y[3];
    } multi_offer;
    /* linear_multi's scratch on CUDA, for dense layers side by side in memory that it runs
     * as one GEMM (pgd_cuda_linear_multi_scratch): taken from the arena at the step's first
     * such call and reused by the layers after it (q, k and v have the same shapes in every
     * layer), so a step allocates it once, at the same place for the same shapes. */
    void *multi_scratch;
    size_t multi_scratch_bytes;
    /* That GEMM's output not yet split (src: the scratch, [n, ld]; ld the sum of out): the
     * rope_attention of q = y[0], k = y[1], v = y[2] reads q, k and v from it in place
     * (pgd_cuda_rope_kv_write_rows); any other op, or the forward's end, has it split into
     * the outputs first (ops.c: qkv_rows_settle). src NULL: none pending. */
    struct {
        const void *src;
        int n, ld, count, out[3];
        void *y[3];
    } qkv_rows;
    /* The weight bytes of the quantized layers pgd_op_qweight_linear ran, summed while the
     * per-op profile is on: a quantized layer's bytes in the profile (the runner does not
     * read its plugin's state; the op adds what its qweight is on the device). */
    double prof_qweight_bytes;

    /* FP8 linears after norms (ops.c): fp8_norms, the runner's word that the model has FP8
     * layers, has the norms of hidden-size rows at decode sizes also leave their output's
     * per-token FP8 quantization in the CUDA scratch (pgd_cuda_rmsnorm_fp8x); fp8_x_ready
     * is then that output (device memory) until an op other than a linear runs (op_ready
     * forgets it; a linear never writes its x), and the FP8 linears of it skip quantizing
     * it (pgd_cuda_fp8_x_ready). */
    bool fp8_norms;
    const void *fp8_x_ready;

    /* Act-order gathers left by the op before (ops.c; CUDA): gather_layers, the runner's
     * table [gather_layers_cap] (NULL: off), whose entry k is the act-order W4 layer that read
     * the output of the forward's k-th producer (a norm, or the attention before o_proj) when
     * it last ran (NULL: none, or a layer without a permutation). A forward runs the same
     * ops in the same order every step, so the k-th producer (gather_seq counts them) also
     * writes its output gathered through that layer's permutation where the kernels can (a
     * norm: pgd_cuda_rmsnorm_gather; the attention: the tensor-core decode kernel on steps of
     * decode rows alone, pgd_cuda_attn's out_perm) and the layer's gather is skipped. A wrong
     * guess costs only the extra writes: a gather is skipped only for exactly the x,
     * permutation, rows and scratch the producer noted in the CUDA context, and every other
     * op drops that note. gather_out: the output of the last producer (the gather_seq - 1-th),
     * until another op runs; gather_learned: its entry was written by the first linear
     * of it. */
    const struct pgd_cuda_wq **gather_layers;
    int gather_layers_cap, gather_seq;
    const void *gather_out;
    bool gather_learned;

    /* The runner's batch_invariant (CPU only): the linears take pgd_cpu_linear_invariant, so
     * that a row's result does not depend on the rows it is batched with. */
    bool batch_invariant;

    /* linear_act_mul's offer to a quantized gate_up layer (ops.c): the qweight linear that
     * writes `scratch` may write act(gate) * up into `out` itself (one kernel, FP8 on CUDA)
     * and set done; otherwise the act_mul op runs after it. Cleared after the call. */
    struct {
        const void *scratch;
        void *out;
        enum pgd_act act;
        bool done;
    } act_offer;

    /* Piecewise CUDA graphs (piecewise.h). pw: the hook of a forward pass warmed or captured
     * in their layout (NULL otherwise, replays included). pw_tokens: in that layout the
     * step's real token count, the one the calls (attention, logits) run on, n_tokens being
     * the padded size; 0 otherwise. scratch_top: in that layout the calls (and the logits)
     * allocate from the top of the arena (pgd__arena_alloc_top), which its fingerprint does
     * not see. */
    struct pgd__pw_hook *pw;
    int pw_tokens;
    bool scratch_top;

    enum pgd_status status;            /* first failure of the step */
    char err[512];
};

/* What the step's calls (attention's scratch, the logits and their gathered rows) allocate:
 * from the arena, or in the piecewise layout from its top (their sizes are the step's, not
 * the padded size's); NULL when it does not fit. */
static inline void *pgd__fwd_call_alloc(struct pgd_fwd *f, size_t bytes)
{
    return f->scratch_top ? pgd__arena_alloc_top(f->arena, bytes)
                          : pgd__arena_alloc(f->arena, bytes);
}

/* Ends the forward's deferred work (ops.c): outputs still in linear_multi's scratch are
 * split into their tensors. The runner calls it after the architecture's forward. */
void pgd__fwd_settle(struct pgd_fwd *f);

#endif
