/* The settings table (runtime/config/): every vLLM flag of `pagoda serve` parses to its row,
 * every row parses from its flag, refused vLLM flags say what to use instead, bad values
 * name the flag, the engine rows all reach the engine params, --help and the doc list every
 * row; --device/--dtype resolution; generation_config.json defaults. */
#include "tests/lib/test_common.h"
#include "config.h"
#include "runtime/config/settings.h"
#include "runtime/config/device_select.h"
#include "runtime/config/generation_config.h"
#include "tests/lib/model_fixture.h"
#include <pagoda/frontend.h>
#include <pagoda/registry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

PGD_TEST_SUITE(settings);

/* Parses "serve" + words (NULL-terminated) into s; returns the status, err the message. */
static enum pgd_status parse(struct pgd__settings *s, const char *const *words, char *err,
                             size_t errlen)
{
    char *argv[32] = { "serve" };
    int argc = 1;
    for (; words[argc - 1]; argc++)
        argv[argc] = (char *)words[argc - 1];
    bool help;
    return pgd__settings_parse_args(s, argc, argv, &help, err, errlen);
}

struct flag_case {
    const char *words[5];            /* the flag and its value(s), NULL-terminated */
    enum pgd__setting_id id;
    const char *want;                /* the stored value */
};

/* Issue 15's list of vLLM flags, with vLLM's value spellings, and pagoda's older ones. */
static const struct flag_case FLAGS[] = {
    { { "--host", "0.0.0.0" }, PGD__S_HOST, "0.0.0.0" },
    { { "--port", "8080" }, PGD__S_PORT, "8080" },
    { { "--api-key", "sk-1" }, PGD__S_API_KEY, "sk-1" },
    { { "--served-model-name", "llama" }, PGD__S_SERVED_MODEL_NAME, "llama" },
    { { "--max-model-len", "8192" }, PGD__S_MAX_MODEL_LEN, "8192" },
    { { "--max-model-len", "32k" }, PGD__S_MAX_MODEL_LEN, "32000" },
    { { "--max-model-len", "8K" }, PGD__S_MAX_MODEL_LEN, "8192" },
    { { "--max-model-len", "auto" }, PGD__S_MAX_MODEL_LEN, "auto" },
    { { "--load-format", "dummy" }, PGD__S_LOAD_FORMAT, "dummy" },
    { { "--dtype", "auto" }, PGD__S_DTYPE, "auto" },
    { { "--dtype", "bfloat16" }, PGD__S_DTYPE, "bfloat16" },
    { { "--dtype", "half" }, PGD__S_DTYPE, "half" },
    { { "--dtype", "float32" }, PGD__S_DTYPE, "float32" },
    { { "--dtype", "bf16" }, PGD__S_DTYPE, "bf16" },
    { { "--quantization", "gptq" }, PGD__S_QUANTIZATION, "gptq" },
    { { "--kv-cache-dtype", "auto" }, PGD__S_KV_CACHE_DTYPE, "auto" },
    { { "--kv-cache-dtype", "fp8" }, PGD__S_KV_CACHE_DTYPE, "fp8" },
    { { "--kv-cache-dtype", "fp8_e4m3" }, PGD__S_KV_CACHE_DTYPE, "fp8_e4m3" },
    { { "--swap-space", "8" }, PGD__S_SWAP_SPACE, "8" },
    { { "--preemption-mode", "swap" }, PGD__S_PREEMPTION_MODE, "swap" },
    { { "--seed", "1234" }, PGD__S_SEED, "1234" },
    { { "--batch-invariant" }, PGD__S_BATCH_INVARIANT, "true" },
    { { "--no-batch-invariant" }, PGD__S_BATCH_INVARIANT, "false" },
    { { "--gpu-memory-utilization", "0.85" }, PGD__S_GPU_MEMORY_UTILIZATION, "0.85" },
    { { "--kv-cache-memory", "4G" }, PGD__S_KV_CACHE_MEMORY_BYTES, "4294967296" },
    { { "--kv-cache-memory-bytes", "2.5g" }, PGD__S_KV_CACHE_MEMORY_BYTES, "2500000000" },
    { { "--kv-cache-mib", "512" }, PGD__S_KV_CACHE_MEMORY_BYTES, "536870912" },
    { { "--block-size", "32" }, PGD__S_BLOCK_SIZE, "32" },
    { { "--max-num-seqs", "64" }, PGD__S_MAX_NUM_SEQS, "64" },
    { { "--max-num-batched-tokens", "8192" }, PGD__S_MAX_NUM_BATCHED_TOKENS, "8192" },
    { { "--enable-prefix-caching" }, PGD__S_ENABLE_PREFIX_CACHING, "true" },
    { { "--no-enable-prefix-caching" }, PGD__S_ENABLE_PREFIX_CACHING, "false" },
    { { "--no-prefix-caching" }, PGD__S_ENABLE_PREFIX_CACHING, "false" },
    { { "--enable-chunked-prefill" }, PGD__S_ENABLE_CHUNKED_PREFILL, "true" },
    { { "--no-enable-chunked-prefill" }, PGD__S_ENABLE_CHUNKED_PREFILL, "false" },
    { { "--scheduling-policy", "priority" }, PGD__S_SCHEDULING_POLICY, "priority" },
    { { "--enforce-eager" }, PGD__S_ENFORCE_EAGER, "true" },
    { { "--max-logprobs", "5" }, PGD__S_MAX_LOGPROBS, "5" },
    { { "--chat-template", "tpl.jinja" }, PGD__S_CHAT_TEMPLATE, "tpl.jinja" },
    { { "--generation-config", "vllm" }, PGD__S_GENERATION_CONFIG, "vllm" },
    { { "--override-generation-config", "{\"temperature\": 0.5}" },
      PGD__S_OVERRIDE_GENERATION_CONFIG, "{\"temperature\": 0.5}" },
    { { "--tokenizer", "tok/" }, PGD__S_TOKENIZER, "tok/" },
    { { "--trust-remote-code" }, PGD__S_TRUST_REMOTE_CODE, "true" },
    { { "--disable-log-requests" }, PGD__S_ACCESS_LOG, "false" },
    { { "--enable-log-requests" }, PGD__S_ACCESS_LOG, "true" },
    { { "--disable-uvicorn-access-log" }, PGD__S_ACCESS_LOG, "false" },
    { { "--disable-log-stats" }, PGD__S_DISABLE_LOG_STATS, "true" },
    { { "--uvicorn-log-level", "warning" }, PGD__S_LOG_LEVEL, "warning" },
    { { "--allowed-origins", "[\"https://a.example\", \"https://b.example\"]" },
      PGD__S_CORS_ORIGINS, "https://a.example,https://b.example" },
    { { "--cors-origins", "*" }, PGD__S_CORS_ORIGINS, "*" },
    { { "--root-path", "/api" }, PGD__S_ROOT_PATH, "/api" },
    { { "--response-role", "model" }, PGD__S_RESPONSE_ROLE, "model" },
    { { "--return-tokens-as-token-ids" }, PGD__S_RETURN_TOKENS_AS_TOKEN_IDS, "true" },
    { { "--device", "cuda:1" }, PGD__S_DEVICE, "cuda:1" },
    { { "--max-seq-len-to-capture", "4096" }, PGD__S_MAX_SEQ_LEN_TO_CAPTURE, "4096" },
    { { "--cuda-graph-sizes", "1", "2", "4" }, PGD__S_CUDA_GRAPH_SIZES, "1 2 4" },
    { { "--cuda-graph-sizes", "64" }, PGD__S_CUDA_GRAPH_SIZES, "64" },
    { { "--num-gpu-blocks-override", "100" }, PGD__S_NUM_BLOCKS, "100" },
    { { "--num-blocks", "100" }, PGD__S_NUM_BLOCKS, "100" },
    { { "-m", "models/x" }, PGD__S_MODEL, "models/x" },
    { { "--model", "models/x" }, PGD__S_MODEL, "models/x" },
    { { "--max-num-seqs=8" }, PGD__S_MAX_NUM_SEQS, "8" },
    { { "--max_num_seqs", "9" }, PGD__S_MAX_NUM_SEQS, "9" },
    { { "--grace", "2.5" }, PGD__S_GRACE, "2.5" },
    { { "--frontend-opt", "x=1" }, PGD__S_FRONTEND_OPT, "x=1" },
    { { "--plugin-dir", "/p" }, PGD__S_PLUGIN_DIR, "/p" },
    { { "--max-body-bytes", "1M" }, PGD__S_MAX_BODY_BYTES, "1048576" },
    { { "--timeout-keep-alive", "7" }, PGD__S_TIMEOUT_KEEP_ALIVE, "7" },
    { { "--uds", "/tmp/p.sock" }, PGD__S_UDS, "/tmp/p.sock" },
    { { "--log-stats-interval", "0.5" }, PGD__S_LOG_STATS_INTERVAL, "0.5" },
    { { "--revision", "v1.0" }, PGD__S_REVISION, "v1.0" },
    { { "--download-dir", "/models" }, PGD__S_DOWNLOAD_DIR, "/models" },
    { { "--api-key-file", "/k" }, PGD__S_API_KEY_FILE, "/k" },
    { { "--header-timeout", "3" }, PGD__S_HEADER_TIMEOUT, "3" },
    { { "--max-connections-per-ip", "0" }, PGD__S_MAX_CONNECTIONS_PER_IP, "0" },
};

Test(settings, every_listed_flag_parses_to_its_row)
{
    for (size_t i = 0; i < sizeof FLAGS / sizeof FLAGS[0]; i++) {
        const struct flag_case *f = &FLAGS[i];
        struct pgd__settings s;
        pgd__settings_init(&s);
        char err[512] = "";
        cr_assert_eq(parse(&s, f->words, err, sizeof err), PGD_OK, "%s: %s", f->words[0], err);
        cr_assert_str_eq(pgd__settings_str(&s, f->id), f->want, "%s", f->words[0]);
        cr_assert(pgd__settings_is_set(&s, f->id), "%s", f->words[0]);
        pgd__settings_fini(&s);
    }
}

#define SPEC_NGRAM "{\"method\": \"ngram\", \"num_speculative_tokens\": 2}"

/* A valid value for each row, to parse every row from its own flag. */
static const char *sample_value(int id)
{
    const struct pgd__setting_def *d = &pgd__setting_defs[id];
    switch (id) {
    case PGD__S_CUDA_GRAPH_SIZES: return "8";
    case PGD__S_OVERRIDE_GENERATION_CONFIG: return "{}";
    case PGD__S_SPECULATIVE_CONFIG: return SPEC_NGRAM;
    case PGD__S_FRONTEND_OPT: return "k=v";
    case PGD__S_DEVICE: return "cpu";
    case PGD__S_TOOL_CALL_PARSER: return "hermes";
    case PGD__S_REASONING_PARSER: return "qwen3";
    case PGD__S_POOLER_CONFIG: return "{\"pooling_type\": \"MEAN\"}";
    default: break;
    }
    if (d->type == PGD__ST_CHOICE)
        return d->choices ? "fcfs" : NULL;
    return d->def ? d->def : d->type == PGD__ST_INT || d->type == PGD__ST_HUMAN_INT ? "1" : "x";
}

Test(settings, every_row_parses_from_its_flag_and_its_ini_key)
{
    for (int id = 0; id < PGD__S_COUNT; id++) {
        const struct pgd__setting_def *d = &pgd__setting_defs[id];
        cr_assert_not_null(d->name, "row %d has no entry in the table", id);
        cr_assert_not_null(d->help);
        cr_assert_eq(pgd__settings_find_in(d->section, d->name), id, "%s", d->name);
        if (d->dest == PGD__SD_REPL)
            continue;   /* `pagoda chat`'s keys: tests/unit/test_reload.c */
        cr_assert_eq(pgd__settings_find(d->name), id, "%s", d->name);
        char flag[80];
        snprintf(flag, sizeof flag, "--%s", d->name);
        for (char *p = flag; *p; p++)
            *p = *p == '_' ? '-' : *p;
        const char *v = sample_value(id);
        if (d->type == PGD__ST_CHOICE) {
            static char first[64];
            snprintf(first, sizeof first, "%.*s", (int)strcspn(d->choices, "|"), d->choices);
            v = first;
        }
        const char *words[3] = { flag, d->type == PGD__ST_BOOL ? NULL : v, NULL };
        struct pgd__settings s;
        pgd__settings_init(&s);
        char err[512] = "";
        cr_assert_eq(parse(&s, words, err, sizeof err), PGD_OK, "%s %s: %s", flag,
                     v ? v : "", err);
        cr_assert(pgd__settings_is_set(&s, (enum pgd__setting_id)id), "%s", flag);
        /* The INI path: the same value by key, with a file:line origin. */
        cr_assert_eq(pgd__settings_set(&s, (enum pgd__setting_id)id,
                                       d->type == PGD__ST_BOOL ? "false" : v, PGD__SO_FILE,
                                       "deploy.ini:3", err, sizeof err), PGD_OK, "%s", err);
        cr_assert_str_eq(s.v[id].where, "deploy.ini:3");
        pgd__settings_fini(&s);
    }
}

Test(settings, refused_vllm_flags_say_what_to_use_instead)
{
    for (size_t i = 0; i < pgd__n_refused_flags; i++) {
        const struct pgd__refused_flag *r = &pgd__refused_flags[i];
        const char *words[] = { "m", r->flag, "2", NULL };
        struct pgd__settings s;
        pgd__settings_init(&s);
        char err[512] = "";
        cr_assert_eq(parse(&s, words, err, sizeof err), PGD_ERR_UNSUPPORTED, "%s", r->flag);
        cr_assert(strstr(err, r->flag) && strstr(err, r->instead), "%s: %s", r->flag, err);
        /* A refused flag is never also a row or another spelling of one. */
        cr_assert_lt(pgd__settings_find(r->flag + (r->flag[1] == '-' ? 2 : 1)), 0, "%s",
                     r->flag);
        pgd__settings_fini(&s);
    }
    const char *eq[] = { "m", "--pipeline-parallel-size=2", NULL };
    struct pgd__settings s;
    pgd__settings_init(&s);
    char err[512];
    cr_assert_eq(parse(&s, eq, err, sizeof err), PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "--pipeline-parallel-size is a vLLM option"), "%s", err);
    pgd__settings_fini(&s);
}

struct bad_case {
    const char *words[4];
    const char *in_message[2];       /* what the message must say */
};

static const struct bad_case BAD[] = {
    { { "--max-modle-len", "8" }, { "unknown option --max-modle-len", "--max-model-len" } },
    { { "--port", "70000" }, { "--port: '70000'", "[0, 65535]" } },
    { { "--port", "80x" }, { "--port: '80x'", "integer" } },
    { { "--gpu-memory-utilization", "1.5" }, { "--gpu-memory-utilization", "[0.001, 1]" } },
    { { "--dtype", "int8" }, { "--dtype: 'int8'", "auto|bfloat16" } },
    { { "--scheduling-policy", "lifo" }, { "'lifo'", "fcfs|priority" } },
    { { "--load-format", "pt" }, { "--load-format: 'pt'", "auto|safetensors|dummy" } },
    { { "--device", "tpu" }, { "--device: 'tpu'", "cuda:N" } },
    { { "--kv-cache-memory", "4GiB" }, { "'4GiB'", "suffixes" } },
    { { "--kv-cache-memory", "1.5G" }, { "'1.5G'", "suffixes" } },
    { { "--enforce-eager=yes" }, { "--enforce-eager takes no value", "yes" } },
    { { "--max-num-seqs" }, { "--max-num-seqs needs a value", "N" } },
    { { "--override-generation-config", "[1]" }, { "--override-generation-config", "JSON object" } },
    { { "--allowed-origins", "a.example" }, { "--allowed-origins", "JSON list" } },
    { { "--cuda-graph-sizes", "0" }, { "--cuda-graph-sizes", "[1, 65536]" } },
    { { "--frontend-opt", "novalue" }, { "--frontend-opt", "KEY=VALUE" } },
    { { "-x" }, { "unknown option -x", "--help" } },
    { { "--kv-cache-dtype", "fp8_e5m2" }, { "--kv-cache-dtype: 'fp8_e5m2'", "e5m2" } },
    { { "-q", "awq" }, { "-q", "--quantization" } },
};

Test(settings, bad_values_are_refused_naming_the_flag)
{
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        struct pgd__settings s;
        pgd__settings_init(&s);
        char err[512] = "";
        cr_assert_neq(parse(&s, BAD[i].words, err, sizeof err), PGD_OK, "%s", BAD[i].words[0]);
        for (int k = 0; k < 2; k++)
            cr_assert(strstr(err, BAD[i].in_message[k]), "%s: no '%s' in: %s", BAD[i].words[0],
                      BAD[i].in_message[k], err);
        pgd__settings_fini(&s);
    }
}

Test(settings, the_model_is_positional_or_a_flag_not_both)
{
    struct pgd__settings s;
    char err[512];
    pgd__settings_init(&s);
    const char *pos[] = { "--dtype", "auto", "models/llama", "--max-model-len", "8192", NULL };
    cr_assert_eq(parse(&s, pos, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_str_eq(pgd__settings_str(&s, PGD__S_MODEL), "models/llama");
    pgd__settings_fini(&s);
    pgd__settings_init(&s);
    const char *both[] = { "a", "--model", "b", NULL };
    cr_assert_eq(parse(&s, both, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "twice"), "%s", err);
    pgd__settings_fini(&s);
    pgd__settings_init(&s);
    const char *two[] = { "a", "b", NULL };
    cr_assert_eq(parse(&s, two, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "'b'"), "%s", err);
    pgd__settings_fini(&s);
    /* Repeatable rows collect; others keep the last. */
    pgd__settings_init(&s);
    const char *rep[] = { "--api-key", "k1", "--api-key", "k2", "--port", "1", "--port", "2",
                          NULL };
    cr_assert_eq(parse(&s, rep, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(s.v[PGD__S_API_KEY].n_items, 2);
    cr_assert_str_eq(s.v[PGD__S_API_KEY].items[0], "k1");
    cr_assert_eq(pgd__settings_int(&s, PGD__S_PORT), 2);
    pgd__settings_fini(&s);
    /* Flags replace a file's list as a whole (issue 16's precedence). */
    pgd__settings_init(&s);
    cr_assert_eq(pgd__settings_set(&s, PGD__S_API_KEY, "f1", PGD__SO_FILE, "d.ini:2", err,
                                   sizeof err), PGD_OK);
    cr_assert_eq(pgd__settings_set(&s, PGD__S_API_KEY, "f2", PGD__SO_FILE, "d.ini:3", err,
                                   sizeof err), PGD_OK);
    cr_assert_eq(s.v[PGD__S_API_KEY].n_items, 2);
    const char *flag[] = { "--api-key", "k1", NULL };
    cr_assert_eq(parse(&s, flag, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_eq(s.v[PGD__S_API_KEY].n_items, 1);
    cr_assert_str_eq(s.v[PGD__S_API_KEY].items[0], "k1");
    pgd__settings_fini(&s);
}

/* vLLM's --served-model-name NAME [NAME ...]: the words up to the next option, each one name
 * (the first is the reported one); the flag may also be repeated. */
Test(settings, several_served_model_names)
{
    struct pgd__settings s;
    char err[512];
    pgd__settings_init(&s);
    const char *words[] = { "--served-model-name", "llama", "org/llama-8b", "l8",
                            "--port", "1", "--served-model-name", "more", NULL };
    cr_assert_eq(parse(&s, words, err, sizeof err), PGD_OK, "%s", err);
    const struct pgd__setting_value *v = &s.v[PGD__S_SERVED_MODEL_NAME];
    cr_assert_eq(v->n_items, 4);
    const char *want[] = { "llama", "org/llama-8b", "l8", "more" };
    for (int i = 0; i < 4; i++)
        cr_assert_str_eq(v->items[i], want[i]);
    cr_assert_eq(pgd__settings_int(&s, PGD__S_PORT), 1);
    pgd__settings_fini(&s);
    pgd__settings_init(&s);
    const char *none[] = { "--served-model-name", NULL };
    cr_assert_eq(parse(&s, none, err, sizeof err), PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "--served-model-name"), "%s", err);
    pgd__settings_fini(&s);
}

Test(settings, human_readable_ints_as_vllm_reads_them)
{
    struct { const char *in; long long want; } ok[] = {
        { "1024", 1024 }, { "1k", 1000 }, { "1K", 1024 }, { "25.6k", 25600 },
        { "4G", 4LL << 30 }, { "2m", 2000000 }, { "1T", 1LL << 40 },
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        long long v = -1;
        cr_assert(pgd__parse_human_int(ok[i].in, &v), "%s", ok[i].in);
        cr_assert_eq(v, ok[i].want, "%s: %lld", ok[i].in, v);
    }
    const char *bad[] = { "", "k", "1.5K", "4GiB", "-1", "1.", "1e3", "12kk" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long v;
        cr_assert(!pgd__parse_human_int(bad[i], &v), "%s", bad[i]);
    }
}

static bool engine_params_differ(const struct pgd_engine_params *a,
                                 const struct pgd_engine_params *b)
{
    return a->block_size != b->block_size || a->num_blocks != b->num_blocks ||
           a->kv_cache_memory_bytes != b->kv_cache_memory_bytes ||
           a->max_num_seqs != b->max_num_seqs ||
           a->max_num_batched_tokens != b->max_num_batched_tokens ||
           a->max_model_len != b->max_model_len ||
           a->enable_prefix_caching != b->enable_prefix_caching ||
           a->enable_chunked_prefill != b->enable_chunked_prefill || a->policy != b->policy ||
           a->long_prefill_token_threshold != b->long_prefill_token_threshold ||
           a->seed != b->seed || a->gpu_memory_utilization != b->gpu_memory_utilization ||
           a->enforce_eager != b->enforce_eager || a->async_scheduling != b->async_scheduling ||
           a->batch_invariant != b->batch_invariant ||
           (a->tokenizer != b->tokenizer) ||
           (a->quantization != b->quantization) ||
           a->random_weights != b->random_weights ||
           a->max_seq_len_to_capture != b->max_seq_len_to_capture ||
           a->n_cuda_graph_sizes != b->n_cuda_graph_sizes ||
           (a->speculative_config != b->speculative_config &&
            (!a->speculative_config || !b->speculative_config ||
             strcmp(a->speculative_config, b->speculative_config))) ||
           a->tensor_parallel_size != b->tensor_parallel_size || a->task != b->task ||
           (a->pooler_config != b->pooler_config &&
            (!a->pooler_config || !b->pooler_config ||
             strcmp(a->pooler_config, b->pooler_config))) ||
           (a->kv_cache_dtype != b->kv_cache_dtype &&
            (!a->kv_cache_dtype || !b->kv_cache_dtype ||
             strcmp(a->kv_cache_dtype, b->kv_cache_dtype))) ||
           a->swap_space_bytes != b->swap_space_bytes ||
           a->preemption_mode != b->preemption_mode;
}

/* Not the default, for each engine row. */
static const char *other_value(int id)
{
    switch (id) {
    case PGD__S_TOKENIZER: return "tok";
    case PGD__S_LOAD_FORMAT: return "dummy";
    case PGD__S_MAX_MODEL_LEN: return "100";
    case PGD__S_SEED: return "7";
    case PGD__S_BLOCK_SIZE: return "32";
    case PGD__S_GPU_MEMORY_UTILIZATION: return "0.5";
    case PGD__S_KV_CACHE_MEMORY_BYTES: return "1G";
    case PGD__S_NUM_BLOCKS: return "10";
    case PGD__S_ENABLE_PREFIX_CACHING: return "false";
    case PGD__S_MAX_NUM_SEQS: return "3";
    case PGD__S_MAX_NUM_BATCHED_TOKENS: return "100";
    case PGD__S_ENABLE_CHUNKED_PREFILL: return "false";
    case PGD__S_LONG_PREFILL_TOKEN_THRESHOLD: return "512";
    case PGD__S_SCHEDULING_POLICY: return "priority";
    case PGD__S_ENFORCE_EAGER: return "true";
    case PGD__S_ASYNC_SCHEDULING: return "false";
    case PGD__S_BATCH_INVARIANT: return "true";
    case PGD__S_MAX_SEQ_LEN_TO_CAPTURE: return "100";
    case PGD__S_CUDA_GRAPH_SIZES: return "1 2";
    case PGD__S_SPECULATIVE_CONFIG: return SPEC_NGRAM;
    case PGD__S_TENSOR_PARALLEL_SIZE: return "2";
    case PGD__S_QUANTIZATION: return "fp8";
    case PGD__S_TASK: return "embed";
    case PGD__S_POOLER_CONFIG: return "{\"normalize\": false}";
    case PGD__S_KV_CACHE_DTYPE: return "fp8";
    case PGD__S_SWAP_SPACE: return "0.5";
    case PGD__S_PREEMPTION_MODE: return "recompute";
    default: return NULL;
    }
}

/* pgd__settings_engine_params_given (bench throughput's engine flags): rows left unset leave
 * their fields as the caller had them, and each row set alone lands as the full mapping
 * puts it. */
Test(settings, given_engine_rows_change_only_their_fields)
{
    struct pgd__settings none;
    pgd__settings_init(&none);
    int sizes[8];
    struct pgd_engine_params mine = pgd_engine_default_params(), want;
    mine.max_num_seqs = 7;
    mine.block_size = 32;
    mine.enforce_eager = true;
    mine.swap_space_bytes = 123;
    want = mine;
    pgd__settings_engine_params_given(&none, &mine, sizes, 8);
    cr_assert(!engine_params_differ(&mine, &want), "no row set, yet a field changed");
    pgd__settings_fini(&none);
    for (int id = 0; id < PGD__S_COUNT; id++) {
        if (pgd__setting_defs[id].dest != PGD__SD_ENGINE)
            continue;
        struct pgd__settings s;
        pgd__settings_init(&s);
        char err[256];
        cr_assert_eq(pgd__settings_set(&s, (enum pgd__setting_id)id, other_value(id),
                                       PGD__SO_FLAG, "t", err, sizeof err), PGD_OK, "%s", err);
        struct pgd_engine_params full = pgd_engine_default_params();
        struct pgd_engine_params given = pgd_engine_default_params();
        int s1[8], s2[8];
        pgd__settings_engine_params(&s, &full, s1, 8);
        pgd__settings_engine_params_given(&s, &given, s2, 8);
        cr_assert(!engine_params_differ(&full, &given), "%s set alone: the given rows' "
                  "mapping differs from the full one", pgd__setting_defs[id].name);
        pgd__settings_fini(&s);
    }
}

Test(settings, every_engine_row_reaches_the_engine_params)
{
    struct pgd__settings base;
    pgd__settings_init(&base);
    int sizes[8];
    struct pgd_engine_params ref = pgd_engine_default_params();
    pgd__settings_engine_params(&base, &ref, sizes, 8);
    /* The table's defaults are the engine's, except vLLM's own (none so far differ). */
    struct pgd_engine_params dflt = pgd_engine_default_params();
    cr_assert(!engine_params_differ(&ref, &dflt), "the table's engine defaults differ from "
              "pgd_engine_default_params()");
    for (int id = 0; id < PGD__S_COUNT; id++) {
        if (pgd__setting_defs[id].dest != PGD__SD_ENGINE)
            continue;
        const char *v = other_value(id);
        cr_assert_not_null(v, "engine row %s has no test value: add it here and to "
                           "pgd__settings_engine_params", pgd__setting_defs[id].name);
        struct pgd__settings s;
        pgd__settings_init(&s);
        char err[256];
        cr_assert_eq(pgd__settings_set(&s, (enum pgd__setting_id)id, v, PGD__SO_FLAG, "t", err,
                                       sizeof err), PGD_OK, "%s", err);
        struct pgd_engine_params ep = pgd_engine_default_params();
        int sz[8];
        pgd__settings_engine_params(&s, &ep, sz, 8);
        cr_assert(engine_params_differ(&ep, &ref), "setting %s = %s changes no engine "
                  "parameter", pgd__setting_defs[id].name, v);
        pgd__settings_fini(&s);
    }
    pgd__settings_fini(&base);
}

/* Reads what f writes into a malloc'd string. */
static char *capture(void (*f)(FILE *, const void *), const void *arg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    cr_assert_not_null(m);
    f(m, arg);
    fclose(m);
    return buf;
}

static void help_fn(FILE *f, const void *a) { pgd__settings_print_help(f, a); }
static void doc_fn(FILE *f, const void *a) { (void)a; pgd__settings_print_doc(f); }

Test(settings, help_and_doc_list_every_row_in_vllms_groups)
{
    char *help = capture(help_fn, "usage: x");
    char *doc = capture(doc_fn, NULL);
    const char *prev = help;
    for (int g = 0; g < PGD__SG_COUNT; g++) {
        char title[64];
        snprintf(title, sizeof title, "\n%s:\n", pgd__setting_group_titles[g]);
        const char *at = strstr(help, title);
        cr_assert(at && at >= prev, "group %s missing or out of order", title + 1);
        prev = at;
    }
    for (int id = 0; id < PGD__S_COUNT; id++) {
        char flag[80], key[96];
        snprintf(flag, sizeof flag, "--%s", pgd__setting_defs[id].name);
        for (char *p = flag; *p; p++)
            *p = *p == '_' ? '-' : *p;
        snprintf(key, sizeof key, "| %s |", pgd__setting_defs[id].name);
        if (pgd__setting_defs[id].dest == PGD__SD_REPL)
            cr_assert(!strstr(help, flag) || id == PGD__S_REPL_API_KEY ||
                      id == PGD__S_REPL_SEED, "--help has chat's %s", flag);
        else
            cr_assert(strstr(help, flag), "--help lacks %s", flag);
        cr_assert(strstr(doc, key), "the doc lacks %s", key);
    }
    for (size_t i = 0; i < pgd__n_refused_flags; i++)
        cr_assert(strstr(doc, pgd__refused_flags[i].flag), "%s", pgd__refused_flags[i].flag);
    free(help);
    free(doc);
}

Test(settings, device_and_dtype_resolution)
{
    struct pgd__device_choice d;
    char err[512];
#ifndef PGD_HAVE_CUDA
    cr_assert_eq(pgd__device_select("auto", &d, err, sizeof err), PGD_OK);
    cr_assert_eq(d.device, PGD_DEVICE_CPU);
    cr_assert(strstr(d.desc, "cpu") && strstr(d.desc, "no CUDA"), "%s", d.desc);
    cr_assert_eq(pgd__device_select("cuda", &d, err, sizeof err), PGD_ERR_UNSUPPORTED);
    cr_assert(strstr(err, "--device cuda") && strstr(err, "use --device cpu"), "%s", err);
    cr_assert_eq(pgd__device_select("cuda:1", &d, err, sizeof err), PGD_ERR_UNSUPPORTED);
#endif
    cr_assert_eq(pgd__device_select("cpu", &d, err, sizeof err), PGD_OK);
    cr_assert_eq(d.device, PGD_DEVICE_CPU);
    cr_assert_eq(pgd__device_select("tpu", &d, err, sizeof err), PGD_ERR_INVALID_ARG);

    struct { const char *in; enum pgd_device dev; enum pgd_status st; enum pgd_dtype want;
             bool warns; } dt[] = {
        { "auto", PGD_DEVICE_CUDA, PGD_OK, PGD_DTYPE_COUNT, false },
        { "bfloat16", PGD_DEVICE_CUDA, PGD_OK, PGD_DTYPE_BF16, false },
        { "bf16", PGD_DEVICE_CUDA, PGD_OK, PGD_DTYPE_BF16, false },
        { "half", PGD_DEVICE_CUDA, PGD_OK, PGD_DTYPE_F16, false },
        { "float16", PGD_DEVICE_CUDA, PGD_OK, PGD_DTYPE_F16, false },
        { "float32", PGD_DEVICE_CUDA, PGD_ERR_UNSUPPORTED, PGD_DTYPE_F32, false },
        { "float", PGD_DEVICE_CPU, PGD_OK, PGD_DTYPE_F32, false },
        { "bfloat16", PGD_DEVICE_CPU, PGD_OK, PGD_DTYPE_COUNT, true },
        { "int8", PGD_DEVICE_CPU, PGD_ERR_INVALID_ARG, PGD_DTYPE_COUNT, false },
    };
    for (size_t i = 0; i < sizeof dt / sizeof dt[0]; i++) {
        enum pgd_dtype got = PGD_DTYPE_COUNT;
        char warn[256];
        enum pgd_status st = pgd__dtype_select(dt[i].in, dt[i].dev, &got, warn, sizeof warn,
                                               err, sizeof err);
        cr_assert_eq(st, dt[i].st, "%s: %s", dt[i].in, err);
        if (st == PGD_OK) {
            cr_assert_eq(got, dt[i].want, "%s", dt[i].in);
            cr_assert_eq(warn[0] != '\0', dt[i].warns, "%s: '%s'", dt[i].in, warn);
        } else {
            cr_assert(strstr(err, dt[i].in), "%s", err);
        }
    }
}

/* A model directory holding only generation_config.json with text; returns its path. */
static char *gen_dir(const char *text)
{
    char tmpl[] = "/tmp/pgd-gencfg-XXXXXX";
    char *dir = strdup(mkdtemp(tmpl));
    char path[256];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return dir;
}

static void gen_dir_remove(char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    unlink(path);
    rmdir(dir);
    free(dir);
}

Test(settings, generation_config_defaults)
{
    char *dir = gen_dir("{\"temperature\": 0.6, \"top_p\": 0.9, \"top_k\": 20, "
                        "\"max_new_tokens\": 64, \"do_sample\": true, \"eos_token_id\": [1, 2]}");
    struct pgd__gen_defaults g;
    char err[512];
    cr_assert_eq(pgd__gen_defaults_load("auto", dir, NULL, &g, err, sizeof err), PGD_OK, "%s",
                 err);
    cr_assert_float_eq(g.sp.temperature, 0.6f, 1e-6);
    cr_assert_float_eq(g.sp.top_p, 0.9f, 1e-6);
    cr_assert_eq(g.sp.top_k, 20);
    cr_assert_eq(g.sp.max_tokens, 64);
    cr_assert_float_eq(g.sp.repetition_penalty, 1.0f, 1e-6);   /* not in the file: the API's */
    cr_assert_str_eq(g.json, "{\"max_tokens\":64,\"temperature\":0.6,\"top_k\":20,\"top_p\":0.9}");
    cr_assert(strstr(g.source, "generation_config.json"), "%s", g.source);
    pgd__gen_defaults_fini(&g);

    /* The override wins field by field; vllm reads no file. */
    cr_assert_eq(pgd__gen_defaults_load("auto", dir, "{\"temperature\": 0.1, \"min_p\": 0.05}",
                                        &g, err, sizeof err), PGD_OK, "%s", err);
    cr_assert_float_eq(g.sp.temperature, 0.1f, 1e-6);
    cr_assert_float_eq(g.sp.min_p, 0.05f, 1e-6);
    cr_assert_eq(g.sp.top_k, 20);
    pgd__gen_defaults_fini(&g);
    cr_assert_eq(pgd__gen_defaults_load("vllm", dir, NULL, &g, err, sizeof err), PGD_OK);
    cr_assert_str_eq(g.json, "{}");
    cr_assert_float_eq(g.sp.temperature, 1.0f, 1e-6);
    pgd__gen_defaults_fini(&g);
    /* DIR names another directory, which must have the file. */
    cr_assert_eq(pgd__gen_defaults_load(dir, "/nonexistent", NULL, &g, err, sizeof err), PGD_OK,
                 "%s", err);
    cr_assert_eq(g.sp.max_tokens, 64);
    pgd__gen_defaults_fini(&g);
    cr_assert_eq(pgd__gen_defaults_load("/nonexistent", dir, NULL, &g, err, sizeof err),
                 PGD_ERR_NOT_FOUND);
    cr_assert(strstr(err, "/nonexistent"), "%s", err);
    gen_dir_remove(dir);

    dir = gen_dir("{\"temperature\": \"hot\"}");
    cr_assert_eq(pgd__gen_defaults_load("auto", dir, NULL, &g, err, sizeof err), PGD_ERR_FORMAT);
    cr_assert(strstr(err, "generation_config.json") && strstr(err, "\"temperature\""), "%s",
              err);
    gen_dir_remove(dir);
    dir = gen_dir("{}");
    cr_assert_eq(pgd__gen_defaults_load("auto", dir, "{\"top_k\": 1.5}", &g, err, sizeof err),
                 PGD_ERR_FORMAT);
    cr_assert(strstr(err, "--override-generation-config") && strstr(err, "top_k"), "%s", err);
    gen_dir_remove(dir);
}

/* Creates the openai frontend (a server on a free loopback port) with key = value, or with
 * two values of key when value2 is set; destroys it again. */
static enum pgd_status frontend_takes(const struct pgd_frontend_ops *ops, const char *key,
                                      const char *value, const char *value2, char *err,
                                      size_t errlen)
{
    struct pgd_setting kv[] = { { "host", "127.0.0.1" }, { "port", "0" }, { key, value },
                                { key, value2 } };
    void *fe = NULL;
    enum pgd_status st = ops->create(kv, value2 ? 4 : 3, &fe, err, errlen);
    if (fe)
        ops->destroy(fe);
    return st;
}

/* The table's frontend rows are settings of the openai plugin: each row's default, and the
 * ends of an integer row's range, are taken by the plugin; the repeatable ones take several
 * values; the plugin refuses keys the table no longer has (timeout_s). */
Test(settings, frontend_rows_are_settings_of_the_openai_plugin)
{
    struct pgd_registry *reg = fixture_registry(NULL);
    const struct pgd_plugin *pl = pgd_registry_find(reg, PGD_PLUGIN_FRONTEND, "openai");
    cr_assert_not_null(pl, "no openai frontend on %s", pgd_registry_search_path(reg));
    const struct pgd_frontend_ops *ops = pl->frontend;
    char dir[] = "/tmp/pgd-settings-XXXXXX", keys[64], sock[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(sock, sizeof sock, "%s/sock", dir);
    FILE *f = fopen(keys, "w");
    cr_assert_not_null(f);
    fputs("# a key\nk1\n", f);
    fclose(f);
    chmod(keys, 0600);
    char err[1024];
    int n_rows = 0;
    for (int id = 0; id < PGD__S_COUNT; id++) {
        const struct pgd__setting_def *d = &pgd__setting_defs[id];
        if (d->dest != PGD__SD_FRONTEND)
            continue;
        n_rows++;
        const char *v = id == PGD__S_UDS ? sock : id == PGD__S_API_KEY_FILE ? keys
                        : d->type == PGD__ST_BOOL ? "true" : sample_value(id);
        cr_assert_eq(frontend_takes(ops, d->name, v, NULL, err, sizeof err), PGD_OK,
                     "%s = %s: %s", d->name, v, err);
        if (d->flags & PGD__SF_REPEATABLE)
            cr_assert_eq(frontend_takes(ops, d->name, v, v, err, sizeof err), PGD_OK,
                         "%s twice: %s", d->name, err);
        bool ranged = d->type == PGD__ST_INT || d->type == PGD__ST_HUMAN_INT;
        for (int end = 0; ranged && id != PGD__S_PORT && end < 2; end++) {
            char num[32];
            snprintf(num, sizeof num, "%.0f", end ? d->max : d->min);
            cr_assert_eq(frontend_takes(ops, d->name, num, NULL, err, sizeof err), PGD_OK,
                         "%s = %s (the table's range): %s", d->name, num, err);
        }
    }
    cr_assert_geq(n_rows, 17);
    cr_assert_eq(frontend_takes(ops, "timeout_s", "5", NULL, err, sizeof err),
                 PGD_ERR_INVALID_ARG);
    cr_assert(strstr(err, "unknown setting 'timeout_s'"), "%s", err);
    unlink(keys);
    rmdir(dir);
    pgd_registry_destroy(reg);
}
