/* Corrupt model files, one table of cases per reader: config.json (through a model load),
 * tokenizer.json and tokenizer_config.json (through the tokenizer and the chat-template
 * loaders), and the values of the weights (NaN, Inf and float16 overflow in a safetensors
 * file, through a model load). The safetensors header itself has its own table in
 * test_safetensors.c.
 *
 * Each case copies a fixture model to a temporary directory, makes one edit to one file
 * (replace a piece of text, replace the whole file, or cut it in half) and asserts that
 * loading fails with the status given (or any error) and a message naming the file and the
 * key or tensor that is wrong. Nothing may load silently, crash or leak. A case marked
 * `known` (a bug in a file another branch owns) prints [KNOWN] on stderr instead of failing
 * (cr_log_warn would make Criterion exit 1). */
#include <criterion/criterion.h>
#include "tests/lib/model_fixture.h"
#include "tests/lib/test_common.h"
#include "runtime/model/model.h"
#include "runtime/model/safetensors.h"
#include <pagoda/chat_template.h>
#include <pagoda/registry.h>
#include <pagoda/tokenizer.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ANY_ERROR ((enum pgd_status)-1)
#define CUT_IN_HALF ((const char *)1)

/* One corrupt file: in `file`, `from` replaced by `to` (from NULL: the whole file is `to`;
 * to CUT_IN_HALF: the file loses its second half; from "$key": the top-level JSON key set
 * to the JSON value `to`). */
struct corrupt_case {
    const char *label;
    const char *file;
    const char *from;
    const char *to;
    enum pgd_status want;      /* ANY_ERROR: any status but PGD_OK */
    const char *names[3];      /* the message must contain each */
    const char *msg_file;      /* the file the message must name (NULL: `file`) */
    const char *known;         /* a known failure outside this suite's files: why (the case
                                  then warns, visibly, instead of failing) */
};

/* ---- a temporary copy of a fixture ---------------------------------------------------- */

static char tmpdir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void remove_tmpdir(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

PGD_TEST_SUITE_FIXTURE(corrupt, NULL, remove_tmpdir);

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void write_all(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* Copies the named files of fixture model `name` into a fresh temporary directory. */
static const char *copy_fixture(const char *name, const char *const *files)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pgd-corrupt-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    for (; *files; files++) {
        char src[4200], dst[200];
        snprintf(src, sizeof src, "%s/%s", fixture_dir(name), *files);
        snprintf(dst, sizeof dst, "%s/%s", tmpdir, *files);
        size_t n;
        char *data = read_all(src, &n);
        write_all(dst, data, n);
        free(data);
    }
    return tmpdir;
}

/* Applies c's edit to its file in dir. */
static void apply(const char *dir, const struct corrupt_case *c)
{
    char path[200];
    snprintf(path, sizeof path, "%s/%s", dir, c->file);
    size_t n;
    char *data = read_all(path, &n);
    if (c->to == CUT_IN_HALF) {
        write_all(path, data, n / 2);
    } else if (c->from && c->from[0] == '$') {
        json_t *root = json_loads(data, 0, NULL), *v = json_loads(c->to, JSON_DECODE_ANY, NULL);
        cr_assert(json_is_object(root) && v, "%s: bad JSON edit", c->label);
        json_object_set_new(root, c->from + 1, v);
        cr_assert_eq(json_dump_file(root, path, JSON_INDENT(1)), 0);
        json_decref(root);
    } else if (!c->from) {
        write_all(path, c->to, strlen(c->to));
    } else {
        char *at = strstr(data, c->from);
        cr_assert_not_null(at, "%s: the fixture's %s has no '%s'", c->label, c->file, c->from);
        FILE *f = fopen(path, "wb");
        fwrite(data, 1, (size_t)(at - data), f);
        fputs(c->to, f);
        fputs(at + strlen(c->from), f);
        fclose(f);
    }
    free(data);
}

/* What is wrong with the outcome st/err of case c ("" when it was refused with the wanted
 * status and a message naming the file and the keys). */
static void judge(const struct corrupt_case *c, enum pgd_status st, const char *err, char *why,
                  size_t len)
{
    const char *file = c->msg_file ? c->msg_file : c->file;
    why[0] = '\0';
    if (st == PGD_OK)
        snprintf(why, len, "loaded without an error");
    else if (c->want != ANY_ERROR && st != c->want)
        snprintf(why, len, "status %d, want %d: %s", st, c->want, err);
    else if (!strstr(err, file))
        snprintf(why, len, "the message does not name %s: %s", file, err);
    for (int i = 0; !why[0] && i < 3 && c->names[i]; i++)
        if (!strstr(err, c->names[i]))
            snprintf(why, len, "the message does not name '%s': %s", c->names[i], err);
}

static void check_refused(const struct corrupt_case *c, enum pgd_status st, const char *err)
{
    char why[1400];
    judge(c, st, err, why, sizeof why);
    if (c->known) {
        if (why[0])
            fprintf(stderr, "[KNOWN] %s: %s (%s)\n", c->label, c->known, why);
        else
            fprintf(stderr, "[XPASS] %s passes now: drop its known note (%s)\n", c->label,
                    c->known);
        return;
    }
    cr_expect(!why[0], "%s: %s", c->label, why);
}

/* ---- config.json ----------------------------------------------------------------------- */

static const char *const model_files[] = { "config.json", "model.safetensors", NULL };

/* models/common/decoder.c reads these keys; its ranges are issue 13's "config.json ranges"
 * item (another branch). */
#define ABI_RANGES "models/common/decoder.c does not check this key (issue 13: config.json ranges)"

static const struct corrupt_case config_cases[] = {
    { "truncated", "config.json", NULL, CUT_IN_HALF, PGD_ERR_FORMAT, { "invalid JSON" }, NULL,
      NULL },
    { "empty", "config.json", NULL, "", PGD_ERR_FORMAT, { "invalid JSON" }, NULL, NULL },
    { "not an object", "config.json", NULL, "[1, 2]", PGD_ERR_FORMAT, { "object" }, NULL, NULL },
    { "duplicate key", "config.json", "\"hidden_size\": 64,",
      "\"hidden_size\": 64, \"hidden_size\": 64,", PGD_ERR_FORMAT, { "hidden_size" }, NULL, NULL },
    { "architectures a string", "config.json", "[\n    \"LlamaForCausalLM\"\n  ]",
      "\"LlamaForCausalLM\"", ANY_ERROR, { "architectures" }, NULL, NULL },
    { "architectures empty", "config.json", "[\n    \"LlamaForCausalLM\"\n  ]", "[]", ANY_ERROR,
      { "architectures" }, NULL, NULL },
    { "architectures of numbers", "config.json", "[\n    \"LlamaForCausalLM\"\n  ]", "[5]",
      ANY_ERROR, { "architectures" }, NULL, NULL },
    { "hidden_size a string", "config.json", "\"hidden_size\": 64", "\"hidden_size\": \"64\"",
      PGD_ERR_FORMAT, { "hidden_size" }, NULL, NULL },
    { "hidden_size a real", "config.json", "\"hidden_size\": 64", "\"hidden_size\": 64.5",
      PGD_ERR_FORMAT, { "hidden_size" }, NULL, NULL },
    { "hidden_size negative", "config.json", "\"hidden_size\": 64", "\"hidden_size\": -64",
      ANY_ERROR, { "hidden_size" }, NULL, NULL },
    { "hidden_size zero", "config.json", "\"hidden_size\": 64", "\"hidden_size\": 0",
      ANY_ERROR, { "hidden_size" }, NULL, NULL },
    { "hidden_size huge", "config.json", "\"hidden_size\": 64",
      "\"hidden_size\": 4611686018427387904", ANY_ERROR, { "hidden_size" }, NULL, NULL },
    { "hidden_size past int", "config.json", "\"hidden_size\": 64",
      "\"hidden_size\": 4294967360", ANY_ERROR, { "hidden_size" }, NULL, NULL },
    { "hidden_size 1e300", "config.json", "\"hidden_size\": 64", "\"hidden_size\": 1e300",
      ANY_ERROR, { "hidden_size" }, NULL, NULL },
    { "hidden_size overflows a double", "config.json", "\"hidden_size\": 64",
      "\"hidden_size\": 1e999", PGD_ERR_FORMAT, { "invalid JSON" }, NULL, NULL },
    { "layers zero", "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 0",
      ANY_ERROR, { "num_hidden_layers" }, NULL, NULL },
    { "layers negative", "config.json", "\"num_hidden_layers\": 2",
      "\"num_hidden_layers\": -2", ANY_ERROR, { "num_hidden_layers" }, NULL, NULL },
    { "layers more than the file has", "config.json", "\"num_hidden_layers\": 2",
      "\"num_hidden_layers\": 3", PGD_ERR_NOT_FOUND, { "model.layers.2." }, "pgd-corrupt-", NULL },
    { "layers huge", "config.json", "\"num_hidden_layers\": 2",
      "\"num_hidden_layers\": 2000000000", ANY_ERROR, { "num_hidden_layers" }, NULL, NULL },
    { "heads zero", "config.json", "\"num_attention_heads\": 4", "\"num_attention_heads\": 0",
      ANY_ERROR, { "num_attention_heads" }, NULL, NULL },
    { "heads negative", "config.json", "\"num_attention_heads\": 4",
      "\"num_attention_heads\": -4", ANY_ERROR, { "num_attention_heads" }, NULL, NULL },
    { "kv heads zero", "config.json", "\"num_key_value_heads\": 2",
      "\"num_key_value_heads\": 0", ANY_ERROR, { "num_key_value_heads" }, NULL, NULL },
    { "kv heads not dividing heads", "config.json", "\"num_key_value_heads\": 2",
      "\"num_key_value_heads\": 3", ANY_ERROR, { "num_key_value_heads" }, NULL, NULL },
    { "kv heads a string", "config.json", "\"num_key_value_heads\": 2",
      "\"num_key_value_heads\": \"2\"", PGD_ERR_FORMAT, { "num_key_value_heads" }, NULL, NULL },
    { "head_dim zero", "config.json", "\"head_dim\": 16", "\"head_dim\": 0", ANY_ERROR,
      { "head_dim" }, NULL, NULL },
    { "head_dim negative", "config.json", "\"head_dim\": 16", "\"head_dim\": -16", ANY_ERROR,
      { "head_dim" }, NULL, NULL },
    { "head_dim odd", "config.json", "\"head_dim\": 16", "\"head_dim\": 15", ANY_ERROR,
      { "head_dim" }, NULL, NULL },
    { "intermediate_size wrong", "config.json", "\"intermediate_size\": 128",
      "\"intermediate_size\": 96", PGD_ERR_FORMAT, { "gate_proj.weight", "[128, 64]" },
      "model.safetensors", NULL },
    { "intermediate_size zero", "config.json", "\"intermediate_size\": 128",
      "\"intermediate_size\": 0", ANY_ERROR, { "intermediate_size" }, NULL, NULL },
    { "vocab_size zero", "config.json", "\"vocab_size\": 512", "\"vocab_size\": 0", ANY_ERROR,
      { "vocab_size" }, NULL, NULL },
    { "vocab_size negative", "config.json", "\"vocab_size\": 512", "\"vocab_size\": -512",
      ANY_ERROR, { "vocab_size" }, NULL, NULL },
    { "vocab_size wrong", "config.json", "\"vocab_size\": 512", "\"vocab_size\": 500",
      PGD_ERR_FORMAT, { "embed_tokens.weight", "[512, 64]" }, "model.safetensors", NULL },
    { "rms_norm_eps a string", "config.json", "\"rms_norm_eps\": 1e-05",
      "\"rms_norm_eps\": \"1e-05\"", PGD_ERR_FORMAT, { "rms_norm_eps" }, NULL, NULL },
    { "rms_norm_eps negative", "config.json", "\"rms_norm_eps\": 1e-05",
      "\"rms_norm_eps\": -1e-05", ANY_ERROR, { "rms_norm_eps" }, NULL, ABI_RANGES },
    { "rope_theta negative", "config.json", "\"rope_theta\": 500000.0",
      "\"rope_theta\": -500000.0", ANY_ERROR, { "rope_theta" }, NULL, NULL },
    { "rope_theta zero", "config.json", "\"rope_theta\": 500000.0", "\"rope_theta\": 0",
      ANY_ERROR, { "rope_theta" }, NULL, NULL },
    { "rope_theta a string", "config.json", "\"rope_theta\": 500000.0",
      "\"rope_theta\": \"big\"", PGD_ERR_FORMAT, { "rope_theta" }, NULL, NULL },
    { "rope factor zero", "config.json", "\"factor\": 8.0", "\"factor\": 0", PGD_ERR_FORMAT,
      { "factor" }, NULL, NULL },
    { "rope factor a string", "config.json", "\"factor\": 8.0", "\"factor\": \"8\"",
      PGD_ERR_FORMAT, { "factor" }, NULL, NULL },
    { "rope high <= low", "config.json", "\"high_freq_factor\": 4.0",
      "\"high_freq_factor\": 0.5", PGD_ERR_FORMAT, { "high_freq_factor" }, NULL, NULL },
    { "rope_parameters a list", "config.json", "$rope_parameters", "[]", ANY_ERROR,
      { "rope_parameters" }, NULL, NULL },
    { "rope_parameters a string", "config.json", "$rope_parameters", "\"llama3\"",
      ANY_ERROR, { "rope_parameters" }, NULL, NULL },
    { "max_position_embeddings zero", "config.json", "\"max_position_embeddings\": 256",
      "\"max_position_embeddings\": 0", ANY_ERROR, { "max_position_embeddings" }, NULL,
      ABI_RANGES },
    { "max_position_embeddings negative", "config.json", "\"max_position_embeddings\": 256",
      "\"max_position_embeddings\": -256", ANY_ERROR, { "max_position_embeddings" }, NULL,
      ABI_RANGES },
    { "tie_word_embeddings a string", "config.json", "\"tie_word_embeddings\": false",
      "\"tie_word_embeddings\": \"no\"", PGD_ERR_FORMAT, { "tie_word_embeddings" }, NULL, NULL },
    { "attention_bias a number", "config.json", "\"attention_bias\": false",
      "\"attention_bias\": 0", PGD_ERR_FORMAT, { "attention_bias" }, NULL, NULL },
    { "hidden_act unknown", "config.json", "\"hidden_act\": \"silu\"",
      "\"hidden_act\": \"swish7\"", ANY_ERROR, { "hidden_act" }, NULL, NULL },
    { "hidden_act a number", "config.json", "\"hidden_act\": \"silu\"", "\"hidden_act\": 7",
      ANY_ERROR, { "hidden_act" }, NULL, ABI_RANGES },
};

Test(corrupt, config_json_table)
{
    size_t n = sizeof config_cases / sizeof config_cases[0];
    for (size_t i = 0; i < n; i++) {
        const struct corrupt_case *c = &config_cases[i];
        const char *dir = copy_fixture("llama-f32", model_files);
        apply(dir, c);
        char err[1024] = "";
        check_refused(c, fixture_load_status(dir, err, sizeof err), err);
    }
}

/* ---- tokenizer.json and tokenizer_config.json ----------------------------------------- */

static const char *const tokenizer_files[] = { "tokenizer.json", "tokenizer_config.json", NULL };

/* The tokenizer, then the chat template (both read tokenizer_config.json): the first
 * refusal. */
static enum pgd_status load_tokenizer_files(const char *dir, char *err, size_t errlen)
{
    struct pgd_tokenizer *tok = NULL;
    enum pgd_status st = pgd_tokenizer_load(dir, &tok, err, errlen);
    pgd_tokenizer_destroy(tok);
    if (st != PGD_OK)
        return st;
    struct pgd_chat_template_config cfg = { 0 };
    st = pgd_chat_template_config_load(dir, &cfg, err, errlen);
    if (st == PGD_OK && cfg.source) {
        struct pgd_chat_template *tpl = NULL;
        st = pgd_chat_template_create(cfg.source, cfg.path, &tpl, err, errlen);
        pgd_chat_template_destroy(tpl);
    }
    pgd_chat_template_config_fini(&cfg);
    return st;
}

static const struct corrupt_case tokenizer_cases[] = {
    { "truncated", "tokenizer.json", NULL, CUT_IN_HALF, PGD_ERR_FORMAT, { "JSON" }, NULL, NULL },
    { "empty", "tokenizer.json", NULL, "", PGD_ERR_FORMAT, { "JSON" }, NULL, NULL },
    { "not an object", "tokenizer.json", NULL, "[]", PGD_ERR_FORMAT, { "object" }, NULL, NULL },
    { "no model", "tokenizer.json", "\"model\":", "\"x_model\":", ANY_ERROR, { "model" }, NULL,
      NULL },
    { "model a string", "tokenizer.json", "\"model\": {", "\"model\": \"BPE\", \"x\": {",
      ANY_ERROR, { "model" }, NULL, NULL },
    { "model type unknown", "tokenizer.json", "\"type\": \"BPE\"", "\"type\": \"Unigram7\"",
      ANY_ERROR, { "Unigram7" }, NULL, NULL },
    { "vocab a list", "tokenizer.json", "\"vocab\": {", "\"vocab\": [], \"x\": {", ANY_ERROR,
      { "vocab" }, NULL, NULL },
    { "vocab id a string", "tokenizer.json", "\"\xc4\x80\": 0", "\"\xc4\x80\": \"0\"", ANY_ERROR,
      { "vocab" }, NULL, NULL },
    { "vocab id negative", "tokenizer.json", "\"\xc4\x80\": 0", "\"\xc4\x80\": -1", ANY_ERROR,
      { "vocab" }, NULL, NULL },
    { "vocab id huge", "tokenizer.json", "\"\xc4\x80\": 0", "\"\xc4\x80\": 4000000000", ANY_ERROR,
      { "vocab" }, NULL, NULL },
    { "vocab id large", "tokenizer.json", "\"\xc4\x80\": 0", "\"\xc4\x80\": 1000000000", ANY_ERROR,
      { "vocab" }, NULL, NULL },
    { "merges an object", "tokenizer.json", "\"merges\": [", "\"merges\": {}, \"x\": [",
      ANY_ERROR, { "merges" }, NULL, NULL },
    { "merge a number", "tokenizer.json", "\"merges\": [", "\"merges\": [5, ", ANY_ERROR,
      { "merges" }, NULL, NULL },
    { "merge of unknown tokens", "tokenizer.json", "\"merges\": [",
      "\"merges\": [[\"zzzq\", \"qqqz\"], ", ANY_ERROR, { "merges", "zzzq" }, NULL, NULL },
    { "added_tokens an object", "tokenizer.json", "\"added_tokens\": [",
      "\"added_tokens\": {}, \"x\": [", PGD_ERR_FORMAT, { "added_tokens" }, NULL, NULL },
    { "added token id negative", "tokenizer.json", "\"id\": 317", "\"id\": -317",
      PGD_ERR_FORMAT, { "added_tokens[0]" }, NULL, NULL },
    { "added token id huge", "tokenizer.json", "\"id\": 317", "\"id\": 3000000000",
      PGD_ERR_FORMAT, { "added_tokens[0]" }, NULL, NULL },
    { "added token id large", "tokenizer.json", "\"id\": 317", "\"id\": 1000000000",
      ANY_ERROR, { "added_tokens[0]" }, NULL, NULL },
    { "added token content a number", "tokenizer.json", "\"content\": \"<|endoftext|>\"",
      "\"content\": 5", PGD_ERR_FORMAT, { "added_tokens[0]" }, NULL, NULL },
    { "pre_tokenizer unknown", "tokenizer.json", "\"type\": \"ByteLevel\"",
      "\"type\": \"ByteLevel9\"", ANY_ERROR, { "ByteLevel9" }, NULL, NULL },
    { "pre_tokenizer a string", "tokenizer.json", "\"pre_tokenizer\": {",
      "\"pre_tokenizer\": \"x\", \"y\": {", ANY_ERROR, { "pre_tokenizer" }, NULL, NULL },
    { "decoder a number", "tokenizer.json", "\"decoder\": {", "\"decoder\": 5, \"y\": {",
      ANY_ERROR, { "decoder" }, NULL, NULL },
    { "normalizer unknown", "tokenizer.json", "\"normalizer\": null",
      "\"normalizer\": {\"type\": \"Sparkle\"}", ANY_ERROR, { "Sparkle" }, NULL, NULL },
};

static const struct corrupt_case tokenizer_config_cases[] = {
    { "truncated", "tokenizer_config.json", NULL, CUT_IN_HALF, PGD_ERR_FORMAT, { "JSON" }, NULL,
      NULL },
    { "not an object", "tokenizer_config.json", NULL, "5", PGD_ERR_FORMAT, { "JSON" }, NULL, NULL },
    { "a list", "tokenizer_config.json", NULL, "[]", PGD_ERR_FORMAT, { "object" }, NULL, NULL },
    { "eos_token not a token", "tokenizer_config.json", "\"eos_token\": \"<|im_end|>\"",
      "\"eos_token\": \"<nope>\"", PGD_ERR_FORMAT, { "eos_token" }, NULL, NULL },
    { "eos_token a number", "tokenizer_config.json", "\"eos_token\": \"<|im_end|>\"",
      "\"eos_token\": 319", ANY_ERROR, { "eos_token" }, NULL, NULL },
    { "eos_token content a number", "tokenizer_config.json", "\"eos_token\": \"<|im_end|>\"",
      "\"eos_token\": {\"content\": 319}", ANY_ERROR, { "eos_token" }, NULL, NULL },
    { "bos_token a list", "tokenizer_config.json", "\"bos_token\": null",
      "\"bos_token\": []", ANY_ERROR, { "bos_token" }, NULL, NULL },
    { "add_bos_token a string", "tokenizer_config.json",
      "\"tokenizer_class\": \"PreTrainedTokenizerFast\"",
      "\"tokenizer_class\": \"LlamaTokenizerFast\", \"add_bos_token\": \"yes\"", ANY_ERROR,
      { "add_bos_token" }, NULL, NULL },
    { "add_eos_token a number", "tokenizer_config.json",
      "\"tokenizer_class\": \"PreTrainedTokenizerFast\"",
      "\"tokenizer_class\": \"LlamaTokenizerFast\", \"add_eos_token\": 1", ANY_ERROR,
      { "add_eos_token" }, NULL, NULL },
    { "chat_template a number", "tokenizer_config.json", "\"chat_template\": \"",
      "\"chat_template\": 5, \"x\": \"", ANY_ERROR, { "chat_template" }, NULL, NULL },
    { "chat_template a list without names", "tokenizer_config.json", "\"chat_template\": \"",
      "\"chat_template\": [{\"template\": \"x\"}], \"x\": \"", ANY_ERROR, { "chat_template" },
      NULL, NULL },
    { "chat_template syntax error", "tokenizer_config.json", "{% for message in messages %}",
      "{% for message in %}", PGD_ERR_TEMPLATE, { "line 1" }, NULL, NULL },
};

static void run_tokenizer_table(const struct corrupt_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct corrupt_case *c = &cases[i];
        const char *dir = copy_fixture("tiny-chat", tokenizer_files);
        apply(dir, c);
        char err[1024] = "";
        check_refused(c, load_tokenizer_files(dir, err, sizeof err), err);
    }
}

Test(corrupt, tokenizer_json_table)
{
    run_tokenizer_table(tokenizer_cases, sizeof tokenizer_cases / sizeof tokenizer_cases[0]);
}

Test(corrupt, tokenizer_config_json_table)
{
    run_tokenizer_table(tokenizer_config_cases,
                        sizeof tokenizer_config_cases / sizeof tokenizer_config_cases[0]);
}

/* The fixtures themselves load: the tables above fail because of their edits. */
Test(corrupt, fixtures_load_unedited)
{
    char err[1024] = "";
    const char *dir = copy_fixture("tiny-chat", tokenizer_files);
    cr_assert_eq(load_tokenizer_files(dir, err, sizeof err), PGD_OK, "%s", err);
    dir = copy_fixture("llama-f32", model_files);
    cr_assert_eq(fixture_load_status(dir, err, sizeof err), PGD_OK, "%s", err);
}

/* ---- weights: values that would poison every output ----------------------------------- */

/* One element of a tensor overwritten with raw bytes. */
struct poison_case {
    const char *label;
    const char *fixture;       /* llama-f32 (F32 weights) or llama-bf16 (BF16) */
    const char *tensor;
    size_t element;
    uint32_t bits;             /* the element's new bits (F32, or BF16 in the low 16) */
    const char *want;          /* the message names this (besides the file and tensor) */
};

static const struct poison_case poison_cases[] = {
    { "F32 NaN", "llama-f32", "model.layers.0.mlp.down_proj.weight", 5, 0x7fc00000u, "NaN" },
    { "F32 +Inf", "llama-f32", "model.layers.1.self_attn.q_proj.weight", 0, 0x7f800000u, "Inf" },
    { "F32 -Inf in a norm", "llama-f32", "model.norm.weight", 63, 0xff800000u, "Inf" },
    { "F32 NaN in the embedding", "llama-f32", "model.embed_tokens.weight", 1000, 0xffc00001u,
      "NaN" },
    { "BF16 NaN", "llama-bf16", "model.layers.0.self_attn.k_proj.weight", 3, 0x7fc1u, "NaN" },
    { "BF16 -Inf", "llama-bf16", "model.embed_tokens.weight", 7, 0xff80u, "Inf" },
};

/* Overwrites element `element` of `tensor` in dir/model.safetensors with `bits`. */
static void poison(const char *dir, const struct poison_case *c)
{
    char path[200], err[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct pgd__st_file *f = NULL;
    cr_assert_eq(pgd__st_file_open(path, &f, err, sizeof err), PGD_OK, "%s", err);
    const struct pgd__st_tensor *t = NULL;
    for (size_t i = 0; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[i].name, c->tensor))
            t = &f->tensors[i];
    cr_assert_not_null(t, "%s: no tensor %s", c->label, c->tensor);
    size_t esz = pgd_dtype_size(t->dtype);
    cr_assert_lt(c->element * esz, t->nbytes);
    long pos = (long)(f->data_start + t->offset + c->element * esz);
    pgd__st_file_close(f);
    FILE *fp = fopen(path, "r+b");
    cr_assert_not_null(fp);
    fseek(fp, pos, SEEK_SET);
    uint8_t b[4] = { c->bits & 0xff, (c->bits >> 8) & 0xff, (c->bits >> 16) & 0xff,
                     c->bits >> 24 };
    fwrite(b, 1, esz, fp);
    fclose(fp);
}

Test(corrupt, non_finite_weights_are_refused_by_name)
{
    for (size_t i = 0; i < sizeof poison_cases / sizeof poison_cases[0]; i++) {
        const struct poison_case *c = &poison_cases[i];
        const char *dir = copy_fixture(c->fixture, model_files);
        poison(dir, c);
        char err[1024] = "";
        enum pgd_status st = fixture_load_status(dir, err, sizeof err);
        cr_expect_eq(st, PGD_ERR_FORMAT, "%s: status %d (%s)", c->label, st, err);
        cr_expect(strstr(err, "model.safetensors") && strstr(err, c->tensor) &&
                  strstr(err, c->want), "%s: %s", c->label, err);
        char elem[32];
        snprintf(elem, sizeof elem, "element %zu", c->element);
        cr_expect(strstr(err, elem), "%s: the message does not say '%s': %s", c->label, elem,
                  err);
    }
}
