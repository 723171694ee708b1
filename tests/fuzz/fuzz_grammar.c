/* Fuzz target: the structured-output compilers (runtime/grammar/): an input is one byte
 * choosing the kind (0 grammar, 1 regex, 2 JSON Schema, 3 choice, 4 json_object), the guide
 * text, and optionally a NUL byte and a text to feed the matcher.
 *
 * Checked: a refusal is PGD_ERR_INVALID_ARG (or NOMEM) with a message naming the kind; an
 * accepted guide gives a matcher that takes the text's bytes one at a time, and at every
 * state the token mask over a small vocabulary (single bytes, UTF-8 pieces, words) equals
 * the brute-force answer (a token is allowed iff feeding it keeps the matcher alive). */
#include "tests/fuzz/fuzz.h"
#include "runtime/grammar/guide.h"
#include <string.h>

static const char *const PIECES[] = {
    "a", "b", "{", "}", "[", "]", "\"", ":", ",", " ", "\n", "0", "1", "9", "-", ".", "e",
    "true", "false", "null", "\":", "\", \"", "{\"", "\"}", "ab", "abc", "\\", "\\n", "\\u00",
    "\xc3", "\xa9", "\xc3\xa9", "\xe2\x82", "\xac", "\xe2\x82\xac", "\xf0\x9f", "\x98\x80",
    "\xe4\xb8\xad", "x", "yes", "no", "  ", "12", "2024-", "@", "_", "Z",
};
#define N_PIECES (sizeof PIECES / sizeof *PIECES)
#define N_VOCAB (256 + N_PIECES + 1)        /* bytes, pieces, and EOS last */

static struct pgd__vocab *vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static uint8_t bytes1[256];
    const uint8_t *b[N_VOCAB];
    uint32_t len[N_VOCAB];
    for (int i = 0; i < 256; i++) {
        bytes1[i] = (uint8_t)i;
        b[i] = &bytes1[i];
        len[i] = 1;
    }
    for (size_t i = 0; i < N_PIECES; i++) {
        b[256 + i] = (const uint8_t *)PIECES[i];
        len[256 + i] = (uint32_t)strlen(PIECES[i]);
    }
    b[N_VOCAB - 1] = NULL;                  /* EOS: never text */
    len[N_VOCAB - 1] = 0;
    char err[256];
    FUZZ_CHECK(pgd__vocab_create(N_VOCAB, b, len, &vocab, err, sizeof err) == PGD_OK, "%s", err);
    return 0;
}

/* The walk's budget here: the brute force below feeds every token to a copy, which costs
 * at least what the walk does (it shares no prefixes), so a state whose walk needs more
 * than this (nested empty repetitions such as (((){82}){20}){20} push 600,000 stack entries
 * a character) is refused (the refusal checked) rather than checked token by token for a
 * minute under ASan. */
#define MASK_CHECK_BUDGET (1ull << 20)

/* The walk over m's state within MASK_CHECK_BUDGET, and with brute, every token's bit
 * against feeding it to a copy. false: the walk was refused for its budget (the refusal
 * checked), a state too costly to go on feeding text to. */
static bool check_mask(struct pgd__gmatch *m, bool brute)
{
    uint32_t mask[(N_VOCAB + 31) / 32];
    int32_t eos = N_VOCAB - 1;
    size_t before = m->n_nodes;
    char err[256];
    enum pgd_status st = pgd__gmask_fill(m, vocab, &eos, 1, MASK_CHECK_BUDGET, mask, err,
                                         sizeof err);
    FUZZ_CHECK(m->n_nodes == before, "the walk changed the matcher");
    if (st != PGD_OK) {     /* a refusal says why; the mask is not to be read */
        FUZZ_CHECK(err[0] && (st == PGD_ERR_INVALID_ARG || st == PGD_ERR_NOMEM),
                   "a failed mask: status %d '%s'", st, err);
        return st != PGD_ERR_INVALID_ARG;
    }
    if (!brute)
        return true;
    bool any = false;
    for (int32_t t = 0; t < (int32_t)N_VOCAB - 1; t++) {
        size_t len;
        const uint8_t *p = pgd__vocab_token(vocab, t, &len);
        struct pgd__gmatch c;
        if (!pgd__gmatch_copy(&c, m))
            return true;
        bool want = pgd__gmatch_accept(&c, p, len);
        pgd__gmatch_fini(&c);
        any |= want;
        bool got = (mask[t >> 5] >> (t & 31)) & 1;
        FUZZ_CHECK(got == want, "token %d: mask %d, brute force %d", t, got, want);
    }
    bool eos_got = (mask[eos >> 5] >> (eos & 31)) & 1;
    FUZZ_CHECK(eos_got == (pgd__gmatch_accepting(m) || !any), "EOS bit %d", eos_got);
    return true;
}

/* The brute force copies the matcher once a token, so on a state of thousands of live
 * stacks (ambiguous repetitions such as (.* | "h"){900}) a check costs seconds: it runs on
 * states of up to MASK_CHECK_MAX_STACKS, the walk alone up to FEED_MAX_STACKS, and text is
 * fed to states up to that. */
#define MASK_CHECK_MAX_STACKS 256
#define FEED_MAX_STACKS 4096

/* check_mask, by brute force up to MASK_CHECK_MAX_STACKS; false: m's state is too costly to
 * go on feeding text to (over FEED_MAX_STACKS stacks, or a walk past its budget: nested
 * empty repetitions keep 21 stacks live and push 600,000 entries a byte, 64 bytes 17 s
 * under ASan). The harness's time, not a finding. */
static bool check_masks(struct pgd__gmatch *m)
{
    return m->n_set <= FEED_MAX_STACKS && check_mask(m, m->n_set <= MASK_CHECK_MAX_STACKS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    static const enum pgd_guide_kind KINDS[5] = { PGD_GUIDE_GRAMMAR, PGD_GUIDE_REGEX,
                                                  PGD_GUIDE_JSON_SCHEMA, PGD_GUIDE_CHOICE,
                                                  PGD_GUIDE_JSON_OBJECT };
    enum pgd_guide_kind kind = KINDS[data[0] % 5];
    const uint8_t *nul = memchr(data + 1, 0, size - 1);
    size_t glen = nul ? (size_t)(nul - data - 1) : size - 1;
    char *guide = malloc(glen + 1);
    if (!guide)
        return 0;
    memcpy(guide, data + 1, glen);
    guide[glen] = '\0';
    struct pgd__grammar *g = NULL;
    char err[512] = "";
    enum pgd_status st = pgd__guide_compile(kind, guide, &g, err, sizeof err);
    free(guide);
    if (st != PGD_OK) {
        FUZZ_CHECK(!g && (st == PGD_ERR_INVALID_ARG || st == PGD_ERR_NOMEM), "status %d", st);
        FUZZ_CHECK(strstr(err, pgd__guide_kind_name(kind)) != NULL || st == PGD_ERR_NOMEM,
                   "a refusal without the kind's name: %s", err);
        return 0;
    }
    struct pgd__gmatch m;
    if (pgd__gmatch_init(&m, g)) {
        bool go = check_masks(&m);
        const uint8_t *text = nul ? nul + 1 : NULL;
        size_t tlen = nul ? size - (size_t)(nul - data) - 1 : 0;
        for (size_t i = 0; go && i < tlen && i < 64; i++) {
            if (!pgd__gmatch_accept(&m, text + i, 1))
                break;
            if (i % 8 == 7)
                go = check_masks(&m);
        }
        pgd__gmatch_fini(&m);
    }
    pgd__grammar_free(g);
    return 0;
}
