/* The `pagoda` subcommands: each lives in its own tools/cmd_<name>.c and returns the
 * process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef PGD_TOOLS_COMMANDS_H
#define PGD_TOOLS_COMMANDS_H

#include <pagoda/registry.h>
#include <pagoda/chat_template.h>
#include <stdbool.h>

int pgd_cmd_plugins(int argc, char **argv);   /* tools/cmd_plugins.c */

int pgd_cmd_generate(int argc, char **argv);
int pgd_cmd_serve(int argc, char **argv);       /* tools/cmd_serve.c */
int pgd_cmd_config(int argc, char **argv);      /* tools/cmd_config.c */
int pgd_cmd_chat_template(int argc, char **argv);  /* tools/cmd_chat_template.c */
int pgd_cmd_chat(int argc, char **argv);        /* tools/cmd_chat.c */

/* A model directory's chat template (tools/model_chat.c), for struct pgd_frontend_model's
 * render_chat (pgd_tool_chat_render, ctx = the struct pgd_tool_chat). */
struct pgd_tool_chat {
    struct pgd_chat_template_config cfg;
    struct pgd_chat_template *tpl;
};
/* Loads dir's chat template (tokenizer_config.json), or `override` when not NULL
 * (--chat-template: a file, or the template text itself); *found is false (and PGD_OK)
 * when there is none. */
enum pgd_status pgd_tool_chat_load(const char *dir, const char *override,
                                   struct pgd_tool_chat *c, bool *found, char *err,
                                   size_t errlen);
enum pgd_status pgd_tool_chat_render(void *ctx, const char *messages_json,
                                     const char *tools_json, bool add_generation_prompt,
                                     const char *kwargs_json, char **out, char *err,
                                     size_t errlen);
void pgd_tool_chat_fini(struct pgd_tool_chat *c);

/* Tensor parallelism (tools/tp_worker.c). pgd_tool_tp_worker: -1 when this process is rank
 * 0 or the model is not split (the command goes on), else it served as a worker rank and
 * returns the exit status. pgd_tool_tp_failed: a command that fails with status != 0 under
 * tensor parallelism ends the whole mpirun job (MPI_Abort), so that no rank waits forever
 * in a collective. */
struct pgd_engine_params;
int pgd_tool_tp_worker(const char *cmd, const struct pgd_engine_params *ep);
void pgd_tool_tp_failed(const struct pgd_engine_params *ep, int status);

int pgd_cmd_bench(int argc, char **argv);      /* tools/bench/cmd_bench.c */
int pgd_cmd_bench_throughput(int argc, char **argv);   /* tools/bench/cmd_bench_throughput.c */
/* `pagoda bench latency` in vLLM's form (--input-len, --output-len, --batch-size, ...), and
 * whether argv asks for it: tools/bench/cmd_bench_latency_e2e.c */
int pgd_cmd_bench_latency_e2e(int argc, char **argv);
bool pgd_bench_latency_is_e2e(int argc, char **argv);
int pgd_cmd_bench_scheduler(int argc, char **argv);    /* tools/bench/cmd_bench_sched.c */
int pgd_cmd_bench_gemv(int argc, char **argv);         /* tools/bench/cmd_bench_gemv.c */
int pgd_cmd_bench_gemm(int argc, char **argv);         /* tools/bench/cmd_bench_gemm.c */
int pgd_cmd_bench_quant(int argc, char **argv);        /* tools/bench/cmd_bench_quant.c */
int pgd_cmd_bench_attention(int argc, char **argv);    /* tools/bench/cmd_bench_attention.c */
int pgd_cmd_bench_serve(int argc, char **argv);        /* tools/bench/cmd_bench_serve.c */
int pgd_cmd_bench_spec(int argc, char **argv);         /* tools/bench/cmd_bench_spec.c */
int pgd_cmd_bench_grammar(int argc, char **argv);      /* tools/bench/cmd_bench_grammar.c */
int pgd_cmd_bench_allreduce(int argc, char **argv);    /* tools/bench/cmd_bench_allreduce.c */
/* The device's ceilings for the benchmarks' bounds: device-to-device copy bandwidth (GB/s,
 * read + write) and the rate of an 8192^3 GEMM in dt (TFLOP/s); both 0 on the CPU. desc
 * receives the device's name. Non-zero (message on stderr) on failure. */
int pgd_tool_bench_ceilings(enum pgd_device dev, enum pgd_dtype dt, double *gbps, double *tflops,
                            char *desc, size_t desclen);
/* --random-weights PATH: a config.json (or its directory) -> its directory. */
int pgd_tool_model_dir_of(const char *path, char *dir, size_t n);

/* --device auto|cpu|cuda|cuda:N and --dtype auto|bfloat16|float16|float32 (and half, float,
 * bf16, fp16), as `pagoda serve` reads them (runtime/config/device_select.h); messages on
 * stderr, non-zero when refused. Once every flag is read, pgd_tool_check_dtype refuses
 * float32 on the GPU and makes the CPU's dtype its float32 (PGD_DTYPE_COUNT). The default
 * device: cuda when this build and machine have one, else cpu. */
int pgd_tool_parse_device(const char *s, enum pgd_device *out);
/* A whole decimal integer in [lo, hi] (no sign games, no trailing text) into *out. */
bool pgd_tool_parse_int(const char *s, long lo, long hi, int *out);
int pgd_tool_parse_dtype(const char *s, enum pgd_dtype *out);
int pgd_tool_check_dtype(enum pgd_device dev, enum pgd_dtype *dt);
enum pgd_device pgd_tool_default_device(void);

/* Plugin directories an uninstalled build adds to the search path (NULL when installed):
 * the build tree's plugin folders, when this binary runs from the build tree. */
const char *pgd_tool_build_plugin_dirs(void);

/* A registry loaded from the tool's search path: plugin_dirs (--plugin-dir, colon-separated,
 * may be NULL), PAGODA_PLUGIN_PATH, the build tree's plugins when run from it, then the
 * install directory. *out is owned by the caller: pgd_registry_destroy. */
/* The engine's plugin_path for a tool: plugin_dirs (--plugin-dir, colon-separated, may be
 * NULL or ""), then the build tree's plugins when run from it, into buf. Returns buf, or
 * NULL when there are none; -1 in *too_long when buf is too small. */
const char *pgd_tool_engine_plugin_path(const char *plugin_dirs, char *buf, size_t buflen,
                                        int *too_long);
enum pgd_status pgd_tool_registry(const char *plugin_dirs, struct pgd_registry **out, char *err,
                                  size_t errlen);
int pgd_cmd_fetch(int argc, char **argv);      /* tools/cmd_fetch.c */
int pgd_cmd_models(int argc, char **argv);     /* tools/cmd_models.c */
/* Everywhere a model is named: *model (a directory, an ORG/NAME[@REV] hub id or a catalog
 * short name) becomes the directory to load, fetched into the hub cache when missing
 * (runtime/hub/resolve.c); revision and download_dir are vLLM's --revision and
 * --download-dir (NULL: none). Non-zero (message on stderr) on failure. */
int pgd_tool_resolve_model(const char **model, const char *revision, const char *download_dir);
/* --speculative-config's draft "model" (a hub id or catalog short name) resolved as
 * pgd_tool_resolve_model does: *spec_json then points at buf [buflen] holding the JSON with
 * the directory (unchanged when the JSON names no model or a directory). Non-zero (message
 * on stderr) on failure. An unparsable JSON is left for the engine to refuse. */
int pgd_tool_resolve_spec_model(const char **spec_json, char *buf, size_t buflen);
/* The --quantization a catalog name implies: "fp8" when its catalog entry says quant = fp8
 * (a 16-bit repo served quantized at load, or an FP8 checkpoint); NULL for anything else
 * (a directory, a hub id, another quant, which the checkpoint's config says itself). */
const char *pgd_tool_catalog_quantization(const char *model);
int pgd_cmd_tokenize(int argc, char **argv);
int pgd_cmd_detokenize(int argc, char **argv);

#endif
