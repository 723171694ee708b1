/* The workload of `pagoda bench serve` (see dataset.h): lengths drawn per dataset, prompts
 * made to those lengths, and the server's /tokenize used to count what the client cannot.
 *
 * Token ids for "random": the ids the server's tokenizer gives for a fixed English text,
 * i.e. ordinary tokens of this model's vocabulary (the client knows neither the vocabulary
 * size nor which ids are special), drawn at random from that pool. Without /tokenize the
 * prompts are text. */
#include "config.h"
#include "tools/bench/serve/dataset.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Common short English words: most are one token with their leading space. */
static const char *const WORDS[] = {
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "are", "as", "with", "his",
    "they", "at", "be", "this", "from", "have", "or", "by", "one", "had", "not", "but", "what",
    "all", "were", "when", "we", "there", "can", "an", "your", "which", "their", "said", "if",
    "do", "will", "each", "about", "how", "up", "out", "them", "then", "she", "many", "some",
    "so", "these", "would", "other", "into", "has", "more", "her", "two", "like", "him", "see",
    "time", "could", "no", "make", "than", "first", "been", "its", "who", "now", "people",
    "my", "made", "over", "did", "down", "only", "way", "find", "use", "may", "water", "long",
    "little", "very", "after", "words", "called", "just", "where", "most", "know", "get",
    "through", "back", "much", "before", "go", "good", "new", "write", "our", "used", "me",
    "man", "too", "any", "day", "same", "right", "look", "think", "also", "around", "another",
    "came", "come", "work", "three", "word", "must", "because", "does", "part", "even",
    "place", "well", "such", "here", "take", "why", "things", "help", "put", "years",
    "different", "away", "again", "off", "went", "old", "number", "great", "tell", "men",
    "say", "small", "every", "found", "still", "between", "name", "should", "home", "big",
    "give", "air", "line", "set", "own", "under", "read", "last", "never", "us", "left",
    "end", "along", "while", "might", "next", "sound", "below", "saw", "something", "thought",
    "both", "few", "those", "always", "show", "large", "often", "together", "asked", "house",
    "world", "going", "want", "school", "important", "until", "form", "food", "keep",
    "children", "feet", "land", "side", "without", "boy", "once", "animals", "life", "enough",
    "took", "sometimes", "four", "head", "above", "kind", "began", "almost", "live", "page",
    "got", "earth", "need", "far", "hand", "high", "year", "mother", "light", "parts",
    "country", "father", "let", "night", "following", "picture", "being", "study", "second",
    "eyes", "soon", "times", "story", "boys", "since", "white", "days", "paper", "hard",
    "near", "sentence", "better", "best", "across", "during", "today", "others", "however",
    "sure", "means", "knew", "try", "told", "young", "miles", "sun", "ways", "thing", "whole",
    "hear", "example", "heard", "several", "change", "answer", "room", "sea", "against", "top",
};
#define N_WORDS ((int)(sizeof WORDS / sizeof WORDS[0]))

/* The server's token count of text (no special tokens added), or -1 when it cannot say. */
static int count_tokens(const struct bs_conn *c, const char *text, json_t **ids)
{
    json_t *req = json_pack("{s:s, s:b}", "prompt", text, "add_special_tokens", 0);
    json_t *ans = NULL;
    long status = 0;
    char err[256];
    int n = -1;
    if (req && !bs_conn_json(c, "/tokenize", req, 60, &status, &ans, err, sizeof err) &&
        status == 200) {
        json_t *cnt = json_object_get(ans, "count"), *tok = json_object_get(ans, "tokens");
        n = json_is_integer(cnt) ? (int)json_integer_value(cnt)
            : json_is_array(tok) ? (int)json_array_size(tok) : -1;
        if (ids && json_is_array(tok))
            *ids = json_incref(tok);
    }
    json_decref(req);
    json_decref(ans);
    return n;
}

/* The pool of ordinary token ids (see the top of the file); NULL when the server has no
 * /tokenize. */
static json_t *token_pool(const struct bs_conn *c)
{
    size_t cap = 16 * N_WORDS;
    char *text = malloc(cap), *w = text;
    if (!text)
        return NULL;
    for (int i = 0; i < N_WORDS; i++)
        w += snprintf(w, cap - (size_t)(w - text), "%s%s", i ? " " : "", WORDS[i]);
    json_t *ids = NULL;
    int n = count_tokens(c, text, &ids);
    free(text);
    if (n <= 0 || !ids || json_array_size(ids) == 0) {
        json_decref(ids);
        return NULL;
    }
    return ids;
}

/* Words [0, n) of the per-prompt word sequence drawn from seed, after prefix words. */
static char *words_text(uint64_t prefix_seed, int prefix, uint64_t seed, int n)
{
    size_t cap = (size_t)(prefix + n) * 16 + 1;
    char *s = malloc(cap), *w = s;
    if (!s)
        return NULL;
    *w = 0;
    uint64_t a = prefix_seed, b = seed;
    for (int i = 0; i < prefix + n; i++) {
        uint64_t r = pgd_tool_splitmix(i < prefix ? &a : &b);
        w += snprintf(w, cap - (size_t)(w - s), "%s%s", i ? " " : "", WORDS[r % N_WORDS]);
    }
    return s;
}

/* A text prompt of about `want` tokens: the word count is corrected from the server's count
 * (up to 4 rounds); prompt_len is the last count, or the word count without /tokenize. */
static int text_prompt(const struct bs_dataset_params *p, bool can_count, uint64_t prefix_seed,
                       uint64_t seed, int want, struct bs_prompt *out)
{
    int n = want - p->prefix_len > 1 ? want - p->prefix_len : 1, got = -1;
    char *s = NULL;
    for (int round = 0; round < 4; round++) {
        free(s);
        if (!(s = words_text(prefix_seed, p->prefix_len, seed, n)))
            return -1;
        got = can_count ? count_tokens(p->conn, s, NULL) : -1;
        if (got < 0 || got == want)
            break;
        int next = (int)lround((double)n * (want - p->prefix_len) / (got - p->prefix_len > 0 ?
                                                                    got - p->prefix_len : 1));
        next = next < 1 ? 1 : next;
        if (next == n)
            next = got > want ? n - 1 : n + 1;
        if (next < 1)
            break;
        n = next;
    }
    out->prompt = json_string(s);
    out->prompt_len = got >= 0 ? got : p->prefix_len + n;
    free(s);
    return out->prompt ? 0 : -1;
}

/* A prompt of exactly `want` ids: the shared prefix, then draws from the pool. */
static int ids_prompt(const json_t *pool, const json_t *prefix, uint64_t *rng, int want,
                      struct bs_prompt *out)
{
    json_t *a = json_array();
    if (!a || json_array_extend(a, (json_t *)prefix))
        return -1;
    size_t np = json_array_size(pool);
    for (int i = (int)json_array_size(prefix); i < want; i++)
        if (json_array_append(a, json_array_get(pool, pgd_tool_splitmix(rng) % np)))
            return -1;
    out->prompt = a;
    out->prompt_len = want;
    return 0;
}

/* Lengths of the random and synthetic datasets: in[i] counts the prefix. */
static void draw_lengths(const struct bs_dataset_params *p, uint64_t *rng, int *in, int *out)
{
    if (p->kind == BS_DATA_SHAREGPT) {
        pgd_tool_sharegpt_lengths(&p->shape, rng, in, out);
        return;
    }
    double r = p->range_ratio;
    int ilo = (int)floor(p->input_len * (1 - r)), ihi = (int)ceil(p->input_len * (1 + r));
    int olo = (int)floor(p->output_len * (1 - r)), ohi = (int)ceil(p->output_len * (1 + r));
    olo = olo < 1 ? 1 : olo;
    ohi = ohi < olo ? olo : ohi;
    *in = p->prefix_len + ilo + (int)(pgd_tool_splitmix(rng) % (uint64_t)(ihi - ilo + 1));
    *out = olo + (int)(pgd_tool_splitmix(rng) % (uint64_t)(ohi - olo + 1));
}

/* random, and sharegpt without a file. */
static int synthetic(const struct bs_dataset_params *p, struct bs_prompt *v, bool *exact,
                     char *err, size_t errlen)
{
    uint64_t lrng = p->seed * 0x2545F4914F6CDD1DULL + 1, irng = p->seed ^ 0xA5A5A5A5DEADBEEFULL;
    json_t *pool = p->text ? NULL : token_pool(p->conn), *prefix = json_array();
    bool can_count = pool != NULL || (p->text && count_tokens(p->conn, "hello", NULL) >= 0);
    int rc = -1;
    if (!prefix)
        goto oom;
    for (int i = 0; pool && i < p->prefix_len; i++)
        if (json_array_append(prefix, json_array_get(pool, pgd_tool_splitmix(&irng) %
                                                              json_array_size(pool))))
            goto oom;
    *exact = can_count;
    uint64_t prefix_seed = pgd_tool_splitmix(&irng);
    for (int i = 0; i < p->num_prompts; i++) {
        int in, out;
        draw_lengths(p, &lrng, &in, &out);
        if (in < 1)
            in = 1;
        v[i].output_len = out;
        int r = pool ? ids_prompt(pool, prefix, &irng, in, &v[i])
                     : text_prompt(p, can_count, prefix_seed, pgd_tool_splitmix(&irng), in, &v[i]);
        if (r)
            goto oom;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    json_decref(pool);
    json_decref(prefix);
    return rc;
}

/* The first two turns of a ShareGPT entry ({"conversations": [{"from", "value"}, ...]}). */
static bool sharegpt_pair(const json_t *e, const char **q, const char **a)
{
    const json_t *c = json_object_get(e, "conversations");
    if (!json_is_array(c) || json_array_size(c) < 2)
        return false;
    const json_t *v0 = json_object_get(json_array_get(c, 0), "value");
    const json_t *v1 = json_object_get(json_array_get(c, 1), "value");
    if (!json_is_string(v0) || !json_is_string(v1))
        return false;
    *q = json_string_value(v0);
    *a = json_string_value(v1);
    return true;
}

/* A ShareGPT file: entries in a seeded random order, the first two turns of each as prompt
 * and reply; pairs outside vLLM's bounds (under 4 tokens, a prompt over 1024, both over 2048)
 * are skipped unless --sharegpt-output-len fixes the output; too few valid pairs are
 * reused from the start (vLLM oversamples too). */
static int sharegpt_file(const struct bs_dataset_params *p, struct bs_prompt *v, bool *exact,
                         char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(p->path, 0, &je);
    if (!json_is_array(root)) {
        snprintf(err, errlen, "--dataset-path %s: %s", p->path,
                 root ? "not a JSON list of ShareGPT entries" : je.text);
        json_decref(root);
        return -1;
    }
    size_t n = json_array_size(root);
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) {
        json_decref(root);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint64_t rng = p->seed * 0x2545F4914F6CDD1DULL + 7;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) {           /* Fisher-Yates */
        size_t j = pgd_tool_splitmix(&rng) % i, t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    bool can_count = count_tokens(p->conn, "hello", NULL) >= 0;
    *exact = can_count;
    int got = 0;
    for (size_t k = 0; k < n && got < p->num_prompts; k++) {
        const char *q, *a;
        if (!sharegpt_pair(json_array_get(root, order[k]), &q, &a))
            continue;
        int pl = can_count ? count_tokens(p->conn, q, NULL) : (int)(strlen(q) + 3) / 4;
        int ol = p->sharegpt_output_len ? p->sharegpt_output_len
                 : can_count ? count_tokens(p->conn, a, NULL) : (int)(strlen(a) + 3) / 4;
        if (!p->sharegpt_output_len && (pl < 4 || ol < 4 || pl > 1024 || pl + ol > 2048))
            continue;
        if (!(v[got].prompt = json_string(q)))
            break;
        v[got].prompt_len = pl;
        v[got++].output_len = ol;
    }
    free(order);
    json_decref(root);
    if (got == 0) {
        snprintf(err, errlen, "--dataset-path %s: no usable ShareGPT conversation (two turns "
                 "of 4 to 1024 prompt and up to 2048 total tokens)", p->path);
        return -1;
    }
    for (int i = got; i < p->num_prompts; i++) {   /* oversample */
        v[i] = v[i % got];
        json_incref(v[i].prompt);
    }
    return 0;
}

int bs_dataset_build(const struct bs_dataset_params *p, struct bs_prompt **out,
                     const char **counted, char *err, size_t errlen)
{
    struct bs_prompt *v = calloc((size_t)p->num_prompts, sizeof *v);
    bool exact = false;
    if (!v) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = p->kind == BS_DATA_SHAREGPT && p->path ? sharegpt_file(p, v, &exact, err, errlen)
                                                    : synthetic(p, v, &exact, err, errlen);
    if (rc) {
        bs_dataset_free(v, p->num_prompts);
        return -1;
    }
    *out = v;
    *counted = exact ? "exact" : "estimated";
    return 0;
}

void bs_dataset_free(struct bs_prompt *p, int n)
{
    for (int i = 0; p && i < n; i++)
        json_decref(p[i].prompt);
    free(p);
}
