/* A checkpoint written at test time for the tensor-parallel tests (see tp_fixture.h). */
#include "tests/dist/tp_fixture.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The shape: every bias on (q/k/v column-sharded, o/down row-parallel: added once), one KV
 * head (replicated on every rank), a vocabulary of 250 (uneven over 4 ranks: 63, 63, 63,
 * 61), an untied head. */
enum { HID = 32, INTER = 48, HEADS = 4, KV = 1, HD = 8, LAYERS = 2, VOCAB = 250 };

static const char CONFIG[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 32, "
    "\"intermediate_size\": 48, \"num_attention_heads\": 4, \"num_key_value_heads\": 1, "
    "\"num_hidden_layers\": 2, \"vocab_size\": 250, \"head_dim\": 8, "
    "\"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
    "\"attention_bias\": true, \"mlp_bias\": true, \"tie_word_embeddings\": false, "
    "\"torch_dtype\": \"float32\", \"bos_token_id\": 1, \"eos_token_id\": 2}\n";

struct tensor_spec {
    char name[96];
    int64_t rows, cols;                /* cols 0: a vector */
    bool norm;
};

static int list_tensors(struct tensor_spec *t)
{
    int n = 0;
#define ADD(r, c, nm, ...)                                                                  \
    do {                                                                                    \
        snprintf(t[n].name, sizeof t[n].name, nm, __VA_ARGS__);                             \
        t[n].rows = (r);                                                                    \
        t[n].cols = (c);                                                                    \
        t[n].norm = strstr(t[n].name, "norm") != NULL;                                      \
        n++;                                                                                \
    } while (0)
    ADD(VOCAB, HID, "model.embed_tokens.weight%s", "");
    ADD(HID, 0, "model.norm.weight%s", "");
    ADD(VOCAB, HID, "lm_head.weight%s", "");
    const char *proj[4] = { "q_proj", "k_proj", "v_proj", "o_proj" };
    int64_t outs[4] = { HEADS * HD, KV * HD, KV * HD, HID }, ins[4] = { HID, HID, HID, HEADS * HD };
    for (int l = 0; l < LAYERS; l++) {
        ADD(HID, 0, "model.layers.%d.input_layernorm.weight", l);
        ADD(HID, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        for (int i = 0; i < 4; i++) {
            ADD(outs[i], ins[i], "model.layers.%d.self_attn.%s.weight", l, proj[i]);
            ADD(outs[i], 0, "model.layers.%d.self_attn.%s.bias", l, proj[i]);
        }
        ADD(INTER, HID, "model.layers.%d.mlp.gate_proj.weight", l);
        ADD(INTER, 0, "model.layers.%d.mlp.gate_proj.bias", l);
        ADD(INTER, HID, "model.layers.%d.mlp.up_proj.weight", l);
        ADD(INTER, 0, "model.layers.%d.mlp.up_proj.bias", l);
        ADD(HID, INTER, "model.layers.%d.mlp.down_proj.weight", l);
        ADD(HID, 0, "model.layers.%d.mlp.down_proj.bias", l);
    }
#undef ADD
    return n;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    int rc = fwrite(data, 1, len, fp) == len ? 0 : -1;
    return fclose(fp) == 0 ? rc : -1;
}

int tp_fixture_write(const char *dir)
{
    struct tensor_spec t[64];
    int n = list_tensors(t);
    char *header = malloc(16384), path[4200];
    if (!header)
        return -1;
    size_t hl = (size_t)snprintf(header, 16384, "{");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)(t[i].rows * (t[i].cols ? t[i].cols : 1)) * 4;
        if (t[i].cols)
            hl += (size_t)snprintf(header + hl, 16384 - hl, "%s\"%s\": {\"dtype\": \"F32\", "
                                   "\"shape\": [%lld, %lld], \"data_offsets\": [%llu, %llu]}",
                                   i ? ", " : "", t[i].name, (long long)t[i].rows,
                                   (long long)t[i].cols, (unsigned long long)off,
                                   (unsigned long long)(off + bytes));
        else
            hl += (size_t)snprintf(header + hl, 16384 - hl, "%s\"%s\": {\"dtype\": \"F32\", "
                                   "\"shape\": [%lld], \"data_offsets\": [%llu, %llu]}",
                                   i ? ", " : "", t[i].name, (long long)t[i].rows,
                                   (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    hl += (size_t)snprintf(header + hl, 16384 - hl, "}");
    while (hl % 8)             /* the data starts 8-byte aligned, as the Python writer pads */
        header[hl++] = ' ';
    size_t total = 8 + hl + off;
    unsigned char *file = malloc(total);
    if (!file) {
        free(header);
        return -1;
    }
    uint64_t hl64 = hl;
    for (int b = 0; b < 8; b++)
        file[b] = (unsigned char)(hl64 >> (8 * b));
    memcpy(file + 8, header, hl);
    float *data = (float *)(file + 8 + hl);
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (uint64_t i = 0, k = 0; k < (uint64_t)n; k++) {
        uint64_t cnt = (uint64_t)(t[k].rows * (t[k].cols ? t[k].cols : 1));
        for (uint64_t j = 0; j < cnt; j++, i++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            float u = (float)(state >> 40) / 16777216.0f;          /* [0, 1) */
            data[i] = t[k].norm ? 0.8f + 0.4f * u : (u - 0.5f) * 0.6f;
        }
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = write_file(path, file, total);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!rc)
        rc = write_file(path, CONFIG, sizeof CONFIG - 1);
    free(file);
    free(header);
    return rc;
}
