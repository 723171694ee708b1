/* The settings table: every deployment setting, its other spellings, and the vLLM flags
 * pagoda refuses (see settings.h). Names, defaults and value spellings are vLLM's where vLLM
 * has the setting (`vllm serve --help`, vLLM 0.10); pagoda's own rows say so in their help.
 * A new setting is one row here (and, for an engine row, one line in
 * pgd__settings_engine_params); --help, docs/CONFIG.md and the INI reader follow. */
#include "runtime/config/settings.h"
#include "runtime/spec/spec_config.h"
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- checks of values that passed their type ------------------------------------------- */

static bool check_device(const char *v, char *why, size_t n)
{
    if (!strcmp(v, "auto") || !strcmp(v, "cpu") || !strcmp(v, "cuda") || !strcmp(v, "gpu"))
        return true;
    if (!strncmp(v, "cuda:", 5) && v[5]) {
        char *end;
        long i = strtol(v + 5, &end, 10);
        if (!*end && i >= 0 && i < 1024)
            return true;
    }
    snprintf(why, n, "expected auto, cpu, cuda or cuda:N");
    return false;
}

/* vLLM's --cuda-graph-sizes: one or more batch sizes ("8", "1 2 4 8" or "1,2,4,8"). */
static bool check_sizes(const char *v, char *why, size_t n)
{
    int count = 0;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 1 || x > 65536 || (*end && *end != ' ' && *end != ',')) {
            snprintf(why, n, "expected batch sizes in [1, 65536], separated by spaces or commas");
            return false;
        }
        count++;
        p = end;
    }
    if (count == 0 || count > 64) {
        snprintf(why, n, "expected 1 to 64 batch sizes");
        return false;
    }
    return true;
}

/* vLLM's --kv-cache-dtype: auto (the compute dtype) or e4m3 (fp8 is fp8_e4m3, as in vLLM). */
static bool check_kv_cache_dtype(const char *v, char *why, size_t n)
{
    if (!strcmp(v, "auto") || !strcmp(v, "fp8") || !strcmp(v, "fp8_e4m3"))
        return true;
    if (!strcmp(v, "fp8_e5m2"))
        snprintf(why, n, "an e5m2 KV cache is not supported: use fp8 (= fp8_e4m3, which keeps "
                 "one more mantissa bit) or auto");
    else
        snprintf(why, n, "expected auto, fp8 or fp8_e4m3");
    return false;
}

static bool check_json_object(const char *v, char *why, size_t n)
{
    json_error_t je;
    json_t *j = json_loads(v, 0, &je);
    bool ok = json_is_object(j);
    if (!j)
        snprintf(why, n, "not JSON: %s (column %d)", je.text, je.column);
    else if (!ok)
        snprintf(why, n, "expected a JSON object, e.g. '{\"temperature\": 0.5}'");
    json_decref(j);
    return ok;
}

static bool check_top_p(const char *v, char *why, size_t n)
{
    if (strtod(v, NULL) > 0)
        return true;
    snprintf(why, n, "expected a number in (0, 1]");
    return false;
}

/* --speculative-config: the whole parse (runtime/spec/spec_config.c) at the flag. */
static bool check_spec_config(const char *v, char *why, size_t n)
{
    struct pgd__spec_config c;
    return pgd__spec_config_parse(v, &c, why, n) == PGD_OK;
}

/* --task: vLLM's values pagoda serves (embedding is vLLM's older spelling of embed); the
 * other pooling tasks are refused by name. */
static bool check_task(const char *v, char *why, size_t n)
{
    if (!strcmp(v, "auto") || !strcmp(v, "generate") || !strcmp(v, "embed") ||
        !strcmp(v, "embedding"))
        return true;
    if (!strcmp(v, "classify") || !strcmp(v, "score") || !strcmp(v, "reward") ||
        !strcmp(v, "transcription"))
        snprintf(why, n, "task %s is not supported: pagoda serves generate and embed", v);
    else
        snprintf(why, n, "expected auto, generate or embed");
    return false;
}

/* --pooler-config: the whole parse (the engine's) at the flag. */
static bool check_pooler_config(const char *v, char *why, size_t n)
{
    enum pgd_pooling_type t;
    bool norm;
    return pgd_pooler_config_parse(v, &t, &norm, why, n) == PGD_OK;
}

static bool check_key_value(const char *v, char *why, size_t n)
{
    const char *eq = strchr(v, '=');
    if (eq && eq != v)
        return true;
    snprintf(why, n, "expected KEY=VALUE");
    return false;
}

/* ---- conversions of other spellings ----------------------------------------------------- */

/* vLLM's --runner (newer than --task): generate, or pooling (embed: the one pooling task
 * pagoda serves); draft is --speculative-config's business. */
static bool convert_runner(const char *in, char *out, size_t n, char *why, size_t whylen)
{
    const char *task = !strcmp(in, "auto") ? "auto" : !strcmp(in, "generate") ? "generate"
                       : !strcmp(in, "pooling") ? "embed" : NULL;
    if (task) {
        snprintf(out, n, "%s", task);
        return true;
    }
    if (!strcmp(in, "draft"))
        snprintf(why, whylen, "runner draft is not supported: a draft model is given with "
                 "--speculative-config");
    else
        snprintf(why, whylen, "expected auto, generate or pooling");
    return false;
}

/* vLLM's --convert: a decoder converted for embeddings (embed) is pagoda's task embed; the
 * other conversions are refused by name. */
static bool convert_convert(const char *in, char *out, size_t n, char *why, size_t whylen)
{
    if (!strcmp(in, "embed")) {
        snprintf(out, n, "embed");
        return true;
    }
    if (!strcmp(in, "classify") || !strcmp(in, "reward"))
        snprintf(why, whylen, "convert %s is not supported: pagoda converts decoders to embed "
                 "only", in);
    else if (!strcmp(in, "auto") || !strcmp(in, "none"))
        snprintf(why, whylen, "convert %s does nothing for pagoda's decoders: drop it "
                 "(--runner pooling or --convert embed embeds)", in);
    else
        snprintf(why, whylen, "expected embed");
    return false;
}

/* vLLM's --allowed-origins '["a", "b"]' -> "a,b". */
static bool convert_json_list(const char *in, char *out, size_t n, char *why, size_t whylen)
{
    json_t *j = json_loads(in, 0, NULL);
    bool ok = json_is_array(j) && json_array_size(j) > 0;
    size_t len = 0, i;
    json_t *e;
    out[0] = '\0';
    json_array_foreach(j, i, e) {
        const char *o = json_string_value(e);
        if (!ok || !o || !*o || strchr(o, ',')) {
            ok = false;
            break;
        }
        int w = snprintf(out + len, n - len, "%s%s", i ? "," : "", o);
        if (w < 0 || (size_t)w >= n - len) {
            ok = false;
            break;
        }
        len += (size_t)w;
    }
    json_decref(j);
    if (!ok)
        snprintf(why, whylen, "expected a JSON list of origins, e.g. '[\"https://a.example\"]'"
                 " or '[\"*\"]'");
    return ok;
}

/* pagoda's older --kv-cache-mib N -> N MiB in bytes. */
static bool convert_mib(const char *in, char *out, size_t n, char *why, size_t whylen)
{
    char *end;
    long long v = strtoll(in, &end, 10);
    if (!*in || *end || v < 1 || v > (1LL << 30)) {
        snprintf(why, whylen, "expected a number of MiB in [1, 2^30]");
        return false;
    }
    snprintf(out, n, "%lld", v << 20);
    return true;
}

/* ---- the rows -------------------------------------------------------------------------- */

#define MODEL "model"
#define ENGINE "engine"
#define PLUGINS "plugins"
#define OPENAI "frontend.openai"
#define LOG "log"
#define REPL "frontend.repl"
/* Applied by a running server on SIGHUP (settings_reload.c). */
#define RELOAD PGD__SF_RELOADABLE

const char *const pgd__setting_sections[] = { MODEL, ENGINE, PLUGINS, OPENAI, REPL, LOG };
const size_t pgd__n_setting_sections = sizeof pgd__setting_sections /
                                       sizeof pgd__setting_sections[0];

const struct pgd__setting_def pgd__setting_defs[PGD__S_COUNT] = {
    [PGD__S_MODEL] = { MODEL, "model", PGD__ST_PATH, NULL, 0, 0, NULL, "MODEL",
        "The model: a directory (config.json, *.safetensors, tokenizer.json), a Hugging Face "
        "hub id ORG/NAME[@REV] or a catalog short name (`pagoda models`), fetched into the hub "
        "cache when missing (docs/FETCH.md); a hub id or short name is also the default "
        "served model name. Also the command line's positional MODEL, as in `vllm serve "
        "MODEL`, and pagoda's older -m DIR. Required.",
        PGD__SG_MODEL, PGD__SD_TOOL, PGD__SF_POSITIONAL, NULL },
    [PGD__S_REVISION] = { MODEL, "revision", PGD__ST_STRING, NULL, 0, 0, NULL, "REV",
        "For a hub id: the branch, tag or commit to serve. Default: main (or the id's @REV).",
        PGD__SG_MODEL, PGD__SD_TOOL, 0, NULL },
    [PGD__S_DOWNLOAD_DIR] = { MODEL, "download_dir", PGD__ST_PATH, NULL, 0, 0, NULL, "DIR",
        "For a hub id: the cache directory to find or fetch it in. Default: the Hugging Face "
        "cache (HF_HUB_CACHE, or HF_HOME/hub, or ~/.cache/huggingface/hub).",
        PGD__SG_MODEL, PGD__SD_TOOL, 0, NULL },
    [PGD__S_TOKENIZER] = { MODEL, "tokenizer", PGD__ST_PATH, NULL, 0, 0, NULL, "DIR",
        "The directory of tokenizer.json and tokenizer_config.json (chat template, special "
        "tokens). Default: the model's directory.",
        PGD__SG_MODEL, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_LOAD_FORMAT] = { MODEL, "load_format", PGD__ST_CHOICE, "auto", 0, 0,
        "auto|safetensors|dummy", "FORMAT",
        "auto and safetensors read the checkpoint's *.safetensors; dummy reads config.json "
        "alone and makes random weights (from --seed), as vLLM's dummy format does: for "
        "benchmarks of a model shape without its checkpoint. With a quantization (config.json's "
        "quantization_config, or --quantization: gptq and awq 4-bit in groups of 128, fp8 a "
        "scale per channel) the linear layers are random quantized ones of that layout.",
        PGD__SG_MODEL, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_DTYPE] = { MODEL, "dtype", PGD__ST_CHOICE, "auto", 0, 0,
        "auto|bfloat16|float16|float32|half|float|bf16|fp16", "DTYPE",
        "The compute dtype. auto: the checkpoint's torch_dtype on the GPU, bfloat16 for a "
        "float32 checkpoint there; float32 on the CPU (the CPU backend computes in float32 "
        "only). half = float16, float = float32; bf16 and fp16 are pagoda's older spellings.",
        PGD__SG_MODEL, PGD__SD_TOOL, 0, NULL },
    [PGD__S_MAX_MODEL_LEN] = { MODEL, "max_model_len", PGD__ST_HUMAN_INT, NULL, 1, INT_MAX,
        "auto", "N",
        "The longest sequence (prompt + output) in tokens; accepts vLLM's suffixes (32k, 8K). "
        "Default (or auto): the model's max_position_embeddings.",
        PGD__SG_MODEL, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_CHAT_TEMPLATE] = { MODEL, "chat_template", PGD__ST_STRING, NULL, 0, 0, NULL,
        "FILE",
        "A Jinja chat template: a file, or the template itself. Default: the tokenizer's "
        "(tokenizer_config.json, chat_template.jinja).",
        PGD__SG_FRONTEND, PGD__SD_TOOL, 0, NULL },
    [PGD__S_GENERATION_CONFIG] = { MODEL, "generation_config", PGD__ST_STRING, "auto", 0, 0,
        NULL, "auto|vllm|DIR",
        "Sampling defaults for requests that do not set them: auto reads the model's "
        "generation_config.json (temperature, top_p, top_k, min_p, repetition_penalty, "
        "max_new_tokens as the default max_tokens), DIR reads DIR/generation_config.json, "
        "vllm uses none (vLLM's own defaults).",
        PGD__SG_MODEL, PGD__SD_TOOL, 0, NULL },
    [PGD__S_OVERRIDE_GENERATION_CONFIG] = { MODEL, "override_generation_config", PGD__ST_JSON,
        NULL, 0, 0, NULL, "JSON",
        "Sampling defaults that override (or add to) the generation config's, e.g. "
        "'{\"temperature\": 0.5}'.",
        PGD__SG_MODEL, PGD__SD_TOOL, 0, check_json_object },
    [PGD__S_TRUST_REMOTE_CODE] = { MODEL, "trust_remote_code", PGD__ST_BOOL, "false", 0, 0,
        NULL, NULL,
        "Accepted for vLLM command lines and ignored with a warning: pagoda runs no code "
        "from a checkpoint.",
        PGD__SG_MODEL, PGD__SD_TOOL, PGD__SF_NEGATABLE, NULL },
    [PGD__S_QUANTIZATION] = { MODEL, "quantization", PGD__ST_CHOICE, NULL, 0, 0,
        "auto|gptq|awq|fp8|compressed-tensors", "METHOD",
        "The method the weights are quantized with: gptq, awq, fp8, compressed-tensors "
        "(llm-compressor's pack-quantized W4A16/W8A16 and FP8 W8A8). Default (or auto): the "
        "checkpoint's (config.json's quantization_config, or the compression_config older "
        "llm-compressor releases wrote, or quantize_config.json / quant_config.json beside "
        "it); a checkpoint quantized with "
        "another method is refused. fp8 on a bfloat16/float16 checkpoint quantizes its linear "
        "layers at load (e4m3, one scale per output channel; activations per token).",
        PGD__SG_MODEL, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_KV_CACHE_DTYPE] = { ENGINE, "kv_cache_dtype", PGD__ST_CHOICE, "auto", 0, 0,
        "auto|fp8|fp8_e4m3|fp8_e5m2", "DTYPE",
        "The KV cache's dtype. auto: the compute dtype (--dtype). fp8 (= fp8_e4m3, as vLLM's): "
        "one e4m3 byte an element, so the same memory holds twice the tokens of a 16-bit "
        "cache; values are divided by a per-layer scale and saturated to +-448 when written, "
        "multiplied by it when read. The scales are the checkpoint's (k_scale / v_scale, or "
        "kv_scale, as llm-compressor and ModelOpt write them), else 1.0 (logged). fp8_e5m2 "
        "is refused.",
        PGD__SG_CACHE, PGD__SD_ENGINE, 0, check_kv_cache_dtype },
    [PGD__S_SWAP_SPACE] = { ENGINE, "swap_space", PGD__ST_FLOAT, "4", 0, 1048576, NULL, "GIB",
        "Host memory for the KV blocks of sequences preempted by swapping, in GiB (vLLM v0's "
        "--swap-space): pinned memory on a GPU, allocated at start (at most as many blocks as "
        "the KV cache has). 0: none, every preemption recomputes. Not used under tensor "
        "parallelism.",
        PGD__SG_CACHE, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_PREEMPTION_MODE] = { ENGINE, "preemption_mode", PGD__ST_CHOICE, "auto", 0, 0,
        "auto|swap|recompute", "MODE",
        "What a sequence preempted for lack of KV blocks does with them (vLLM v0's "
        "--preemption-mode). recompute: gives them up and computes its tokens again later; "
        "swap: copies them to the swap space and back before any new request is admitted "
        "(recompute when the swap space is full); auto: swap when it has computed at least "
        "256 tokens (copying them both ways costs less than computing them again), else "
        "recompute.",
        PGD__SG_SCHEDULER, PGD__SD_ENGINE, 0, NULL },

    [PGD__S_DEVICE] = { ENGINE, "device", PGD__ST_STRING, "auto", 0, 0, NULL,
        "auto|cuda|cpu|cuda:N",
        "Where the model runs. auto: the GPU when this build and machine have one, else the "
        "CPU (the choice is logged with the card's name and memory); cuda:N picks card N.",
        PGD__SG_DEVICE, PGD__SD_TOOL, 0, check_device },
    [PGD__S_SEED] = { ENGINE, "seed", PGD__ST_INT, "0", 0, 9.2e18, NULL, "N",
        "Seeds the per-request seeds of requests that set none.",
        PGD__SG_MODEL, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_BATCH_INVARIANT] = { ENGINE, "batch_invariant", PGD__ST_BOOL, "false", 0, 0, NULL,
        NULL,
        "A request's outputs are the same bits whatever it is batched with (vLLM's "
        "VLLM_BATCH_INVARIANT=1), so that a seeded request gives the same tokens under any "
        "load. CPU device only: its linears then go a row at a time, slower on large "
        "batches; refused on a GPU.",
        PGD__SG_MODEL, PGD__SD_ENGINE, PGD__SF_NEGATABLE, NULL },
    [PGD__S_BLOCK_SIZE] = { ENGINE, "block_size", PGD__ST_INT, "16", 1, 1024, NULL, "N",
        "Tokens per KV cache block.",
        PGD__SG_CACHE, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_GPU_MEMORY_UTILIZATION] = { ENGINE, "gpu_memory_utilization", PGD__ST_FLOAT, "0.9",
        0.001, 1, NULL, "FRACTION",
        "The share of the GPU's memory this server may use: the KV cache gets it minus the "
        "weights and a profiling step's activations.",
        PGD__SG_CACHE, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_KV_CACHE_MEMORY_BYTES] = { ENGINE, "kv_cache_memory_bytes", PGD__ST_HUMAN_INT, NULL,
        1, 1.1e15, NULL, "BYTES",
        "The KV cache's size in bytes (vLLM's suffixes: 4G = 4 GiB, 4g = 4e9), on any device; "
        "overrides gpu_memory_utilization. Default: sized from gpu_memory_utilization on the "
        "GPU, 256 MiB on the CPU.",
        PGD__SG_CACHE, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_NUM_BLOCKS] = { ENGINE, "num_blocks", PGD__ST_INT, NULL, 1, INT_MAX, NULL, "N",
        "pagoda: the number of KV cache blocks, overriding every other sizing (vLLM's "
        "--num-gpu-blocks-override).",
        PGD__SG_CACHE, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_ENABLE_PREFIX_CACHING] = { ENGINE, "enable_prefix_caching", PGD__ST_BOOL, "true",
        0, 0, NULL, NULL,
        "Share the KV blocks of common prompt prefixes between requests.",
        PGD__SG_CACHE, PGD__SD_ENGINE, PGD__SF_NEGATABLE, NULL },
    [PGD__S_MAX_NUM_SEQS] = { ENGINE, "max_num_seqs", PGD__ST_INT, "256", 1, 65536, NULL, "N",
        "The most sequences in one step.",
        PGD__SG_SCHEDULER, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_MAX_NUM_BATCHED_TOKENS] = { ENGINE, "max_num_batched_tokens", PGD__ST_HUMAN_INT,
        "2048", 1, INT_MAX, NULL, "N",
        "The most tokens in one step (the profiling step's size on the GPU).",
        PGD__SG_SCHEDULER, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_ENABLE_CHUNKED_PREFILL] = { ENGINE, "enable_chunked_prefill", PGD__ST_BOOL, "true",
        0, 0, NULL, NULL,
        "Split long prompts over several steps; off: a prompt is computed whole.",
        PGD__SG_SCHEDULER, PGD__SD_ENGINE, PGD__SF_NEGATABLE, NULL },
    [PGD__S_LONG_PREFILL_TOKEN_THRESHOLD] = { ENGINE, "long_prefill_token_threshold",
        PGD__ST_HUMAN_INT, "0", 0, INT_MAX, NULL, "N",
        "With chunked prefill, the most tokens one request computes in a step: a longer "
        "prompt takes steps of N, so a step that carries it beside running decodes stays "
        "short (their inter-token latency) at some cost in its time to first token. 0: "
        "only max_num_batched_tokens bounds it.",
        PGD__SG_SCHEDULER, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_SCHEDULING_POLICY] = { ENGINE, "scheduling_policy", PGD__ST_CHOICE, "fcfs", 0, 0,
        "fcfs|priority", "POLICY",
        "fcfs: first come, first served; priority: the request's `priority` (lower first), "
        "then arrival.",
        PGD__SG_SCHEDULER, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_ASYNC_SCHEDULING] = { ENGINE, "async_scheduling", PGD__ST_BOOL, "true", 0, 0,
        NULL, NULL,
        "Plan and queue each step while the one before it runs, with its sampled tokens "
        "still on the device (vLLM's async scheduling), so that the GPU does not wait for "
        "the host between steps. Steps whose requests need the last token on the host "
        "first (structured output, bad words; on a GPU, for now, penalties) and "
        "speculative decoding run in turn as before. On by default, as vLLM's; a new "
        "request's first token then comes a step later.",
        PGD__SG_SCHEDULER, PGD__SD_ENGINE, PGD__SF_NEGATABLE, NULL },
    [PGD__S_ENFORCE_EAGER] = { ENGINE, "enforce_eager", PGD__ST_BOOL, "false", 0, 0, NULL,
        NULL,
        "GPU: no CUDA graphs; every step launches its kernels one by one.",
        PGD__SG_MODEL, PGD__SD_ENGINE, PGD__SF_NEGATABLE, NULL },
    [PGD__S_MAX_SEQ_LEN_TO_CAPTURE] = { ENGINE, "max_seq_len_to_capture", PGD__ST_INT, "8192",
        1, INT_MAX, NULL, "N",
        "GPU: the longest context CUDA graphs cover; decode steps over longer contexts run "
        "eagerly.",
        PGD__SG_MODEL, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_CUDA_GRAPH_SIZES] = { ENGINE, "cuda_graph_sizes", PGD__ST_STRING, NULL, 0, 0, NULL,
        "N [N ...]",
        "GPU: the decode batch sizes captured as CUDA graphs. Default: 1, 2, 4, ... 64, 96, "
        "128, 192, 256, 384, 512, ... (every 128) up to max_num_seqs; one N: the same up to "
        "N; several: exactly those. All are captured before /health answers 200.",
        PGD__SG_SCHEDULER, PGD__SD_ENGINE, 0, check_sizes },
    [PGD__S_SPECULATIVE_CONFIG] = { ENGINE, "speculative_config", PGD__ST_JSON, NULL, 0, 0,
        NULL, "JSON",
        "Speculative decoding, as vLLM's JSON: '{\"method\": \"ngram\", "
        "\"num_speculative_tokens\": 4, \"prompt_lookup_max\": 4, \"prompt_lookup_min\": "
        "2}' proposes up to num_speculative_tokens (1..16) tokens a step by prompt lookup "
        "(the tokens after the latest earlier occurrence of the sequence's last n tokens, n "
        "from prompt_lookup_max down to prompt_lookup_min, both 5 by default) and verifies "
        "them in one forward pass; the output is exactly what it is without speculation "
        "(greedy, and seeded sampling token for token). '{\"method\": \"draft_model\", "
        "\"model\": \"DIR\", \"num_speculative_tokens\": 4}' proposes with a small model "
        "of the same vocabulary (a directory; greedy drafting, as vLLM's; its KV cache has "
        "as many blocks as the target's, and both fit the memory budget). "
        "disable_by_batch_size N: no proposals while more than N sequences run. Default: "
        "off.",
        PGD__SG_VLLM, PGD__SD_ENGINE, 0, check_spec_config },
    [PGD__S_TENSOR_PARALLEL_SIZE] = { ENGINE, "tensor_parallel_size", PGD__ST_INT, "1", 1, 1024,
        NULL, "N",
        "Splits the model over N processes, one per GPU (or CPU rank), started with `mpirun "
        "-np N pagoda serve ...`: Megatron tensor parallelism, each rank loading only its "
        "shard; rank 0 serves and the others follow its steps. Needs a build with MPI (NCCL on "
        "GPUs). docs/TENSOR_PARALLEL.md.",
        PGD__SG_DEVICE, PGD__SD_ENGINE, 0, NULL },
    [PGD__S_TASK] = { ENGINE, "task", PGD__ST_STRING, "auto", 0, 0, NULL, "TASK",
        "What the model serves. auto or generate: text (chat and completions); embed (vLLM's "
        "older spelling embedding; --runner pooling, --convert embed): embeddings at "
        "/v1/embeddings, pooled from the decoder's last hidden state after its final norm "
        "(--pooler-config), while /v1/chat/completions and /v1/completions answer 400. "
        "classify, score, reward and transcription are refused.",
        PGD__SG_MODEL, PGD__SD_ENGINE, 0, check_task },
    [PGD__S_POOLER_CONFIG] = { ENGINE, "pooler_config", PGD__ST_JSON, NULL, 0, 0, NULL, "JSON",
        "With --task embed: how a prompt's hidden states become its embedding, as vLLM's "
        "JSON: '{\"pooling_type\": \"MEAN\", \"normalize\": false}'. pooling_type LAST "
        "(the last token's), MEAN (the mean over every token's) or CLS (the first token's); "
        "normalize: divide by the L2 norm. Default: LAST, normalized (vLLM's for a "
        "decoder). Other keys are refused by name.",
        PGD__SG_MODEL, PGD__SD_ENGINE, 0, check_pooler_config },

    [PGD__S_PLUGIN_DIR] = { PLUGINS, "plugin_dir", PGD__ST_PATH, NULL, 0, 0, NULL, "DIR",
        "pagoda: also look for plugins in DIR (repeatable; before PAGODA_PLUGIN_PATH and the "
        "install directory).",
        PGD__SG_OPTIONS, PGD__SD_TOOL, PGD__SF_REPEATABLE, NULL },
    [PGD__S_FRONTEND] = { PLUGINS, "frontend", PGD__ST_STRING, "openai", 0, 0, NULL, "NAME",
        "pagoda: the frontend plugin that serves the model.",
        PGD__SG_OPTIONS, PGD__SD_TOOL, 0, NULL },

    [PGD__S_HOST] = { OPENAI, "host", PGD__ST_STRING, "127.0.0.1", 0, 0, NULL, "HOST",
        "The address to listen on (vLLM listens on every address by default; pagoda on the "
        "loopback only: say --host 0.0.0.0 to serve others, or '::' for every IPv6 and IPv4 "
        "address, dual-stack). A port in use is an error (no SO_REUSEPORT).",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_PORT] = { OPENAI, "port", PGD__ST_INT, "8000", 0, 65535, NULL, "PORT",
        "The TCP port (0: any free port; the log says which).",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_UDS] = { OPENAI, "uds", PGD__ST_PATH, NULL, 0, 0, NULL, "PATH",
        "Listen on this Unix domain socket instead of host and port.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_API_KEY] = { OPENAI, "api_key", PGD__ST_STRING, NULL, 0, 0, NULL, "KEY",
        "Require 'Authorization: Bearer KEY' (repeatable: any of the keys; not on /health and "
        "/metrics).",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, PGD__SF_REPEATABLE | RELOAD, NULL },
    [PGD__S_API_KEY_FILE] = { OPENAI, "api_key_file", PGD__ST_PATH, NULL, 0, 0, NULL, "FILE",
        "pagoda: more API keys from FILE, one a line, blank lines and lines starting with '#' "
        "skipped (keeps them out of `ps`; a warning when FILE is readable by group or "
        "others).",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, PGD__SF_REPEATABLE | RELOAD, NULL },
    [PGD__S_SERVED_MODEL_NAME] = { OPENAI, "served_model_name", PGD__ST_STRING, NULL, 0, 0,
        NULL, "NAME [NAME ...]",
        "The model's names in the API: a request's 'model' may be any of them, /v1/models "
        "lists them all, and the first is the one responses and the metrics' model_name "
        "label report. Default: the model directory's last part.",
        PGD__SG_MODEL, PGD__SD_FRONTEND, PGD__SF_REPEATABLE, NULL },
    [PGD__S_RESPONSE_ROLE] = { OPENAI, "response_role", PGD__ST_STRING, "assistant", 0, 0,
        NULL, "ROLE",
        "The role of the generated message in chat completions.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_RETURN_TOKENS_AS_TOKEN_IDS] = { OPENAI, "return_tokens_as_token_ids", PGD__ST_BOOL,
        "false", 0, 0, NULL, NULL,
        "With logprobs, name tokens as 'token_id:N' instead of their text.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, PGD__SF_NEGATABLE, NULL },
    [PGD__S_MAX_LOGPROBS] = { OPENAI, "max_logprobs", PGD__ST_INT, "20", 0, 20, NULL, "N",
        "The most logprobs (top alternatives per token) a request may ask for.",
        PGD__SG_MODEL, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_TOOL_CALL_PARSER] = { OPENAI, "tool_call_parser", PGD__ST_CHOICE, NULL, 0, 0,
        "hermes|llama3_json|mistral", "NAME",
        "How the model writes tool calls, parsed into message.tool_calls when tool_choice is "
        "\"auto\": hermes (Qwen2.5, Qwen3), llama3_json (Llama 3.1+), mistral.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_ENABLE_AUTO_TOOL_CHOICE] = { OPENAI, "enable_auto_tool_choice", PGD__ST_BOOL,
        "false", 0, 0, NULL, NULL,
        "Allow tool_choice \"auto\" (the default when a request has tools); needs "
        "--tool-call-parser.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_REASONING_PARSER] = { OPENAI, "reasoning_parser", PGD__ST_CHOICE, NULL, 0, 0,
        "qwen3|deepseek_r1", "NAME",
        "Split the model's <think>...</think> section into reasoning_content: qwen3 (an "
        "answer opening with <think>), deepseek_r1 (the answer reasons until </think>).",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_TRUST_REQUEST_CHAT_TEMPLATE] = { OPENAI, "trust_request_chat_template",
        PGD__ST_BOOL, "false", 0, 0, NULL, NULL,
        "Render chats with a request's own chat_template (else such a request gets 400).",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_ROOT_PATH] = { OPENAI, "root_path", PGD__ST_STRING, NULL, 0, 0, NULL, "PATH",
        "Accepted for vLLM command lines (FastAPI's root_path behind a path-stripping "
        "proxy); pagoda serves no documentation pages, so it changes nothing (a warning "
        "says so).",
        PGD__SG_FRONTEND, PGD__SD_TOOL, 0, NULL },
    [PGD__S_CORS_ORIGINS] = { OPENAI, "cors_origins", PGD__ST_STRING, NULL, 0, 0, NULL, "LIST",
        "Origins allowed by CORS, comma-separated, or '*'. Default: no CORS headers.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_MAX_BODY_BYTES] = { OPENAI, "max_body_bytes", PGD__ST_HUMAN_INT, "4194304", 64,
        1.1e12, NULL, "BYTES",
        "pagoda: larger request bodies get 413.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_MAX_CONNECTIONS] = { OPENAI, "max_connections", PGD__ST_INT, "4096", 1, 65536,
        NULL, "N",
        "pagoda: the most open connections served; past it a new one gets 503 with "
        "Retry-After. The default leaves room for `vllm bench serve`-style runs of a "
        "thousand requests at once from one address (the per-address share is half).",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_MAX_CONNECTIONS_PER_IP] = { OPENAI, "max_connections_per_ip", PGD__ST_INT, NULL,
        0, 65536, NULL, "N",
        "pagoda: the most open connections from one client address (past it: 503 with "
        "Retry-After); 0: no per-address limit. Default: half of max_connections.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_MAX_N] = { OPENAI, "max_n", PGD__ST_INT, "64", 1, 256, NULL, "N",
        "pagoda: the most choices (prompts x n) one request may ask for.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_TIMEOUT_KEEP_ALIVE] = { OPENAI, "timeout_keep_alive", PGD__ST_INT, "5", 1, 86400,
        NULL, "SECONDS",
        "How long an idle keep-alive connection stays open.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_HEADER_TIMEOUT] = { OPENAI, "header_timeout", PGD__ST_INT, "10", 1, 3600, NULL,
        "SECONDS",
        "pagoda: how long a client may take to send a whole request head, from its "
        "connection or its previous answer.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_WRITE_TIMEOUT] = { OPENAI, "write_timeout", PGD__ST_INT, "60", 1, 86400, NULL,
        "SECONDS",
        "pagoda: how long a client may take none of the bytes of an answer waiting for it "
        "(a stream's clock restarts with each new piece); then its request is aborted, "
        "which frees its KV blocks and batch slot, and the connection closes.",
        PGD__SG_FRONTEND, PGD__SD_FRONTEND, 0, NULL },
    [PGD__S_GRACE] = { OPENAI, "grace", PGD__ST_FLOAT, "30", 0, 86400, NULL, "SECONDS",
        "pagoda: on SIGTERM or SIGINT, how long running requests may finish before the rest "
        "are aborted (a second SIGTERM or SIGINT ends it at once).",
        PGD__SG_FRONTEND, PGD__SD_TOOL, 0, NULL },
    [PGD__S_FRONTEND_OPT] = { OPENAI, "frontend_opt", PGD__ST_STRING, NULL, 0, 0, NULL,
        "KEY=VALUE",
        "pagoda: any other setting of the frontend plugin (repeatable).",
        PGD__SG_FRONTEND, PGD__SD_TOOL, PGD__SF_REPEATABLE, check_key_value },

    [PGD__S_REPL_URL] = { REPL, "url", PGD__ST_STRING, NULL, 0, 0, NULL, "URL",
        "pagoda chat: chat with this OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1) "
        "instead of running the model in-process; [model] model is then the server's model "
        "name (default: the first of its /v1/models).",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },
    [PGD__S_REPL_API_KEY] = { REPL, "api_key", PGD__ST_STRING, NULL, 0, 0, NULL, "KEY",
        "pagoda chat: the server's API key (sent as 'Authorization: Bearer KEY'); "
        "${NAME} keeps it out of the file.",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },
    [PGD__S_REPL_SYSTEM] = { REPL, "system", PGD__ST_STRING, NULL, 0, 0, NULL, "TEXT",
        "pagoda chat: the system message every conversation starts with.",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },
    [PGD__S_REPL_TEMPERATURE] = { REPL, "temperature", PGD__ST_FLOAT, NULL, 0, 2, NULL, "T",
        "pagoda chat: the sampling temperature (0: greedy). Default: the model's "
        "generation_config.json or the server's.",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },
    [PGD__S_REPL_TOP_P] = { REPL, "top_p", PGD__ST_FLOAT, NULL, 0, 1, NULL, "P",
        "pagoda chat: nucleus sampling, in (0, 1].",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, check_top_p },
    [PGD__S_REPL_TOP_K] = { REPL, "top_k", PGD__ST_INT, NULL, -1, 16777216, NULL, "K",
        "pagoda chat: top-k sampling (-1: off).",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },
    [PGD__S_REPL_MAX_TOKENS] = { REPL, "max_tokens", PGD__ST_INT, NULL, 1, 16777216, NULL,
        "N",
        "pagoda chat: the longest answer in tokens. Default: up to max_model_len.",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },
    [PGD__S_REPL_SEED] = { REPL, "seed", PGD__ST_INT, NULL, 0, 9.2e18, NULL, "N",
        "pagoda chat: the sampling seed of every answer (the same question, the same "
        "answer).",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },
    [PGD__S_REPL_NO_STATS] = { REPL, "no_stats", PGD__ST_BOOL, "false", 0, 0, NULL, NULL,
        "pagoda chat: no dim line (tokens, tokens/s, time to first token) after an answer.",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },
    [PGD__S_REPL_HISTORY_FILE] = { REPL, "history_file", PGD__ST_PATH, NULL, 0, 0, NULL,
        "FILE",
        "pagoda chat: where typed lines are kept across runs. Default: "
        "$XDG_STATE_HOME/pagoda/chat_history (~/.local/state/pagoda/chat_history).",
        PGD__SG_FRONTEND, PGD__SD_REPL, 0, NULL },

    [PGD__S_LOG_LEVEL] = { LOG, "log_level", PGD__ST_CHOICE, "info", 0, 0,
        "debug|info|warning|warn|error|critical|trace", "LEVEL",
        "The log level (vLLM's --uvicorn-log-level; trace = debug, critical = error). The "
        "environment's PAGODA_LOG sets it when no flag does.",
        PGD__SG_FRONTEND, PGD__SD_TOOL, RELOAD, NULL },
    [PGD__S_LOG_FORMAT] = { LOG, "log_format", PGD__ST_CHOICE, "text", 0, 0, "text|json",
        "FORMAT",
        "pagoda: text: '[HH:MM:SS.mmm pagoda LEVEL] message' lines; json: one JSON object a "
        "line with ts (RFC 3339, UTC), level, msg and the line's key=value fields.",
        PGD__SG_OBSERVABILITY, PGD__SD_TOOL, RELOAD, NULL },
    [PGD__S_LOG_FILE] = { LOG, "log_file", PGD__ST_PATH, NULL, 0, 0, NULL, "FILE",
        "pagoda: append the log to FILE instead of stderr; SIGHUP reopens it (after "
        "logrotate has moved it).",
        PGD__SG_OBSERVABILITY, PGD__SD_TOOL, RELOAD, NULL },
    [PGD__S_ACCESS_LOG] = { LOG, "access_log", PGD__ST_BOOL, "true", 0, 0, NULL, NULL,
        "One line per request: method, path, status, tokens in and out, time to first "
        "token, total time, request id (off: --disable-log-requests or "
        "--disable-uvicorn-access-log).",
        PGD__SG_OBSERVABILITY, PGD__SD_FRONTEND, PGD__SF_NEGATABLE | RELOAD, NULL },
    [PGD__S_DISABLE_LOG_STATS] = { LOG, "disable_log_stats", PGD__ST_BOOL, "false", 0, 0, NULL,
        NULL,
        "No periodic stats line (throughput, running and waiting requests, KV cache usage, "
        "prefix cache hit rate).",
        PGD__SG_OPTIONS, PGD__SD_TOOL, PGD__SF_NEGATABLE | RELOAD, NULL },
    [PGD__S_LOG_STATS_INTERVAL] = { LOG, "log_stats_interval", PGD__ST_FLOAT, "10", 0.05, 3600,
        NULL, "SECONDS",
        "pagoda: how often the stats line is written while there is traffic (vLLM's "
        "VLLM_LOG_STATS_INTERVAL).",
        PGD__SG_OBSERVABILITY, PGD__SD_TOOL, RELOAD, NULL },
};

const char *const pgd__setting_group_titles[PGD__SG_COUNT] = {
    [PGD__SG_POSITIONAL] = "positional arguments",
    [PGD__SG_OPTIONS] = "options",
    [PGD__SG_FRONTEND] = "Frontend",
    [PGD__SG_MODEL] = "ModelConfig",
    [PGD__SG_CACHE] = "CacheConfig",
    [PGD__SG_SCHEDULER] = "SchedulerConfig",
    [PGD__SG_DEVICE] = "DeviceConfig",
    [PGD__SG_OBSERVABILITY] = "ObservabilityConfig",
    [PGD__SG_VLLM] = "VllmConfig",
};

const struct pgd__setting_alias pgd__setting_aliases[] = {
    /* vLLM's spellings where the row's name is another */
    { "kv-cache-memory", PGD__S_KV_CACHE_MEMORY_BYTES, NULL, NULL, NULL },
    { "num-gpu-blocks-override", PGD__S_NUM_BLOCKS, NULL, NULL, NULL },
    { "allowed-origins", PGD__S_CORS_ORIGINS, NULL,
      "a JSON list, e.g. '[\"https://a.example\"]'", convert_json_list },
    { "uvicorn-log-level", PGD__S_LOG_LEVEL, NULL, NULL, NULL },
    { "enable-log-requests", PGD__S_ACCESS_LOG, "true", NULL, NULL },
    { "disable-log-requests", PGD__S_ACCESS_LOG, "false", NULL, NULL },
    { "disable-uvicorn-access-log", PGD__S_ACCESS_LOG, "false", NULL, NULL },
    { "runner", PGD__S_TASK, NULL, "pooling = embed", convert_runner },
    { "convert", PGD__S_TASK, NULL, "embed only", convert_convert },
    { "override-pooler-config", PGD__S_POOLER_CONFIG, NULL, NULL, NULL },
    /* pagoda's older spellings */
    { "no-prefix-caching", PGD__S_ENABLE_PREFIX_CACHING, "false", NULL, NULL },
    { "kv-cache-mib", PGD__S_KV_CACHE_MEMORY_BYTES, NULL, "in MiB", convert_mib },
};
const size_t pgd__n_setting_aliases = sizeof pgd__setting_aliases / sizeof pgd__setting_aliases[0];

#define ONE_GPU "pagoda splits a model by tensor parallelism only (--tensor-parallel-size): " \
                "run one server per group of GPUs behind a load balancer"
#define NO_LORA "LoRA adapters are not supported: merge the adapter into the weights"
#define NO_TLS "pagoda speaks plain HTTP: terminate TLS in a reverse proxy (nginx, envoy, caddy)"
#define NO_CORS "CORS: --allowed-origins (or --cors-origins) only; methods and headers are fixed"

const struct pgd__refused_flag pgd__refused_flags[] = {
    { "-tp", "spell it --tensor-parallel-size N" },
    { "--pipeline-parallel-size", ONE_GPU }, { "-pp", ONE_GPU },
    { "--data-parallel-size", ONE_GPU }, { "-dp", ONE_GPU },
    { "--distributed-executor-backend", ONE_GPU }, { "--api-server-count", ONE_GPU },
    { "-q", "spell it --quantization" },
    { "--cpu-offload-gb", "weights stay on the GPU: use a card with room for them" },
    { "--tokenizer-revision", "the tokenizer comes from the model's revision (--revision), or "
                              "from a directory (--tokenizer)" },
    { "--code-revision", "pagoda runs no code from a checkpoint" },
    { "--tokenizer-mode", "pagoda has one tokenizer (tokenizer.json)" },
    { "--enable-lora", NO_LORA }, { "--lora-modules", NO_LORA }, { "--max-loras", NO_LORA },
    { "--max-lora-rank", NO_LORA },
    { "--ssl-keyfile", NO_TLS }, { "--ssl-certfile", NO_TLS }, { "--ssl-ca-certs", NO_TLS },
    { "--ssl-cert-reqs", NO_TLS },
    { "--middleware", "pagoda runs no Python middleware: put a reverse proxy in front" },
    { "--allowed-methods", NO_CORS }, { "--allowed-headers", NO_CORS },
    { "--allow-credentials", NO_CORS },
    { "--chat-template-content-format", "pagoda renders message contents as strings" },
    { "--disable-frontend-multiprocessing", "pagoda's frontend always runs in the serving "
                                            "process: drop the flag" },
    { "--disable-fastapi-docs", "pagoda serves no documentation pages: drop the flag" },
    { "--compilation-config", "pagoda has no torch.compile: --enforce-eager and "
                              "--cuda-graph-sizes control CUDA graphs" },
    { "-O", "pagoda has no torch.compile: --enforce-eager and --cuda-graph-sizes control "
            "CUDA graphs" },
    { "--hf-overrides", "edit the checkpoint's config.json" },
    { "--rope-scaling", "pagoda reads rope_scaling from config.json" },
    { "--rope-theta", "pagoda reads rope_theta from config.json" },
    { "--limit-mm-per-prompt", "pagoda serves text-only models" },
    { "--guided-decoding-backend", "structured outputs are not supported yet" },
    { "--structured-outputs-config", "structured outputs are not supported yet" },
    { "--enable-sleep-mode", "sleep mode is not supported" },
    { "--otlp-traces-endpoint", "no tracing: scrape /metrics and read the access log" },
    { "--kv-transfer-config", "disaggregated prefill is not supported" },
};
const size_t pgd__n_refused_flags = sizeof pgd__refused_flags / sizeof pgd__refused_flags[0];
