/* Chat templates: the public API over the Jinja interpreter (compile, render with
 * transformers' variables and input normalization) and loading a model directory's
 * template and special tokens. */
#include <pagoda/chat_template.h>
#include "runtime/chat/jinja.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct pgd_chat_template {
    char *src;                  /* normalized source (owned) */
    size_t n;
    char *name;                 /* error prefix, may be NULL (owned) */
    struct pgd__jarena arena;   /* tokens and syntax tree */
    struct pgd__jnode *root;
    struct pgd_chat_template_limits limits;
};

struct pgd_chat_template_limits pgd_chat_template_default_limits(void)
{
    return (struct pgd_chat_template_limits){
        .max_steps = 100000000,
        .max_output_bytes = (size_t)64 << 20,
        .max_memory_bytes = (size_t)1 << 30,
        .max_depth = 400,
    };
}

void pgd_chat_template_set_limits(struct pgd_chat_template *tpl,
                                  const struct pgd_chat_template_limits *limits)
{
    tpl->limits = *limits;
    if (tpl->limits.max_depth < 8)
        tpl->limits.max_depth = 8;
}

/* Failure state of a compile or render: on the heap so that longjmp leaves it intact. */
struct failure {
    struct pgd__jfail fail;
    struct pgd__jarena ar;
    char msg[600];
};

/* Writes "name: msg" (or msg) into err. */
static void prefixed(char *err, size_t errlen, const char *name, const char *msg)
{
    if (!err || !errlen)
        return;
    if (name)
        snprintf(err, errlen, "%s: %s", name, msg);
    else
        snprintf(err, errlen, "%s", msg);
}

enum pgd_status pgd_chat_template_create(const char *source, const char *name,
                                         struct pgd_chat_template **out, char *err,
                                         size_t errlen)
{
    *out = NULL;
    if (!source)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s%schat template source is NULL",
                        name ? name : "", name ? ": " : "");
    size_t n = strlen(source), bad = pgd__utf8_validate(source, n);
    if (bad < n)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "%s%schat template is not valid UTF-8 (byte %zu)", name ? name : "",
                        name ? ": " : "", bad);
    struct pgd_chat_template *t = calloc(1, sizeof *t);
    if (!t)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    t->src = malloc(n + 1);
    t->name = name ? strdup(name) : NULL;
    if (!t->src || (name && !t->name)) {
        free(t->src);
        free(t->name);
        free(t);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    /* Jinja normalizes \r\n and \r to \n and drops one trailing newline */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (source[i] == '\r') {
            t->src[k++] = '\n';
            if (i + 1 < n && source[i + 1] == '\n')
                i++;
        } else {
            t->src[k++] = source[i];
        }
    }
    if (k > 0 && t->src[k - 1] == '\n')
        k--;
    t->src[k] = '\0';
    t->n = k;
    t->limits = pgd_chat_template_default_limits();

    /* what a longjmp must find intact lives on the heap, not in this frame */
    struct failure *fs = calloc(1, sizeof *fs);
    if (!fs) {
        pgd_chat_template_destroy(t);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    fs->fail.err = fs->msg;
    fs->fail.errlen = sizeof fs->msg;
    fs->fail.src = t->src;
    t->arena.fail = &fs->fail;
    if (setjmp(fs->fail.jb)) {
        enum pgd_status st = fs->fail.st;
        prefixed(err, errlen, name, fs->msg);
        free(fs);
        pgd_chat_template_destroy(t);
        return st;
    }
    struct pgd__jtoken *toks;
    size_t ntok;
    pgd__jlex(&t->arena, &fs->fail, t->src, t->n, &toks, &ntok);
    t->root = pgd__jparse(&t->arena, &fs->fail, toks, ntok);
    t->arena.fail = NULL;
    free(fs);
    *out = t;
    return PGD_OK;
}

void pgd_chat_template_destroy(struct pgd_chat_template *tpl)
{
    if (!tpl)
        return;
    pgd__jarena_free(&tpl->arena);
    free(tpl->src);
    free(tpl->name);
    free(tpl);
}

/* ---- render ----------------------------------------------------------------------------- */

static json_t *parse_json(const char *what, const char *text, char *err, size_t errlen,
                          enum pgd_status *st)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j)
        *st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "%s: invalid JSON at line %d, column "
                       "%d: %s", what, je.line, je.column, je.text);
    return j;
}

/* apply_chat_template's message normalization: drop keys whose value is null, then give a
 * message with reasoning (reasoning_content, thinking or reasoning) both `thinking` (first)
 * and `reasoning_content`. */
static struct pgd__jv *normalize_message(struct pgd__jarena *a, struct pgd__jv *m)
{
    struct pgd__jv *d = pgd__jv_dict(a, m->d.n + 2);
    for (size_t i = 0; i < m->d.n; i++)
        if (m->d.v[i]->kind != PGD__J_NONE)
            pgd__jdict_set(a, d, m->d.k[i], m->d.v[i]);
    static const char *fields[] = { "reasoning_content", "thinking", "reasoning" };
    struct pgd__jv *reasoning = NULL;
    for (size_t i = 0; i < 3 && !reasoning; i++)
        reasoning = pgd__jdict_gets(d, fields[i], strlen(fields[i]));
    if (!reasoning)
        return d;
    struct pgd__jv *r = pgd__jv_dict(a, d->d.n + 2);
    pgd__jdict_set(a, r, pgd__jv_cstr(a, "thinking"), reasoning);
    for (size_t i = 0; i < d->d.n; i++)
        pgd__jdict_set(a, r, d->d.k[i], d->d.v[i]);
    pgd__jdict_set(a, r, pgd__jv_cstr(a, "reasoning_content"), reasoning);
    return r;
}

/* The JSON a render is given, parsed and checked: messages (a non-empty array of objects),
 * tools (an array or null, may be absent) and chat_template_kwargs (an object or null, may be
 * absent, not setting a variable the render sets itself). Owned; render_inputs_free. */
struct render_inputs {
    json_t *messages, *tools, *kwargs;
};

static void render_inputs_free(struct render_inputs *in)
{
    json_decref(in->messages);
    json_decref(in->tools);
    json_decref(in->kwargs);
}

static enum pgd_status check_messages(const json_t *jm, char *err, size_t errlen)
{
    if (!json_is_array(jm))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "messages: expected a JSON array");
    /* transformers refuses an empty conversation the same way */
    if (json_array_size(jm) == 0)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "messages: cannot apply a chat template to an empty conversation");
    for (size_t i = 0; i < json_array_size(jm); i++)
        if (!json_is_object(json_array_get(jm, i)))
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "messages[%zu]: expected a JSON object", i);
    return PGD_OK;
}

static enum pgd_status check_kwargs(json_t *jk, char *err, size_t errlen)
{
    if (!json_is_object(jk) && !json_is_null(jk))
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                        "chat_template_kwargs: expected a JSON object");
    /* the variables apply_chat_template sets from its own arguments */
    static const char *reserved[] = { "messages", "tools", "documents", "add_generation_prompt" };
    for (size_t i = 0; json_is_object(jk) && i < 4; i++)
        if (json_object_get(jk, reserved[i]))
            return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG,
                            "chat_template_kwargs: '%s' cannot be set this way", reserved[i]);
    return PGD_OK;
}

/* Parses and checks the render's JSON arguments into in (all NULL on failure). */
static enum pgd_status parse_inputs(struct render_inputs *in, const char *messages_json,
                                    const char *tools_json, const char *extra_kwargs_json,
                                    char *err, size_t errlen)
{
    enum pgd_status st = PGD_OK;
    *in = (struct render_inputs){ 0 };
    if (!(in->messages = parse_json("messages", messages_json, err, errlen, &st)))
        return st;
    if ((st = check_messages(in->messages, err, errlen)))
        goto fail;
    if (tools_json && !(in->tools = parse_json("tools", tools_json, err, errlen, &st)))
        goto fail;
    if (in->tools && !json_is_array(in->tools) && !json_is_null(in->tools)) {
        st = pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "tools: expected a JSON array");
        goto fail;
    }
    if (extra_kwargs_json && !(in->kwargs = parse_json("chat_template_kwargs",
                                                       extra_kwargs_json, err, errlen, &st)))
        goto fail;
    if (in->kwargs && (st = check_kwargs(in->kwargs, err, errlen)))
        goto fail;
    return PGD_OK;
fail:
    render_inputs_free(in);
    *in = (struct render_inputs){ 0 };
    return st;
}

/* The variables a template sees, as transformers' apply_chat_template sets them: the Jinja
 * globals, bos_token / eos_token, the chat_template_kwargs (which may replace those two),
 * then messages (normalized), tools (none when absent), documents (none) and
 * add_generation_prompt. Throws through c->fail. */
static void set_template_vars(struct pgd__jctx *c, struct pgd__jframe *globals,
                              const struct render_inputs *in, bool add_generation_prompt,
                              const char *bos_token, const char *eos_token)
{
    struct pgd__jarena *A = c->ar;
    pgd__jglobals_install(c, globals);
    if (bos_token)
        pgd__jframe_set(A, globals, "bos_token", pgd__jv_cstr(A, bos_token));
    if (eos_token)
        pgd__jframe_set(A, globals, "eos_token", pgd__jv_cstr(A, eos_token));
    if (in->kwargs && json_is_object(in->kwargs)) {
        const char *key;
        json_t *val;
        json_object_foreach(in->kwargs, key, val)
            pgd__jframe_set(A, globals, pgd__jstrndup(A, key, strlen(key)),
                            pgd__jv_from_json(A, val));
    }
    struct pgd__jv *msgs = pgd__jv_from_json(A, in->messages);
    for (size_t i = 0; i < msgs->l.n; i++)
        msgs->l.v[i] = normalize_message(A, msgs->l.v[i]);
    pgd__jframe_set(A, globals, "messages", msgs);
    pgd__jframe_set(A, globals, "tools", in->tools ? pgd__jv_from_json(A, in->tools)
                                                   : &pgd__j_none);
    pgd__jframe_set(A, globals, "documents", &pgd__j_none);
    pgd__jframe_set(A, globals, "add_generation_prompt", pgd__jv_bool(add_generation_prompt));
}

/* A malloc'd, NUL-terminated copy of the rendered text into *out (and its length). */
static enum pgd_status copy_result(const struct pgd__jbuf *result, char **out, size_t *out_len,
                                   char *err, size_t errlen)
{
    char *s = malloc(result->n + 1);
    if (!s)
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    memcpy(s, result->p, result->n + 1);
    *out = s;
    if (out_len)
        *out_len = result->n;
    return PGD_OK;
}

enum pgd_status pgd_chat_template_render(const struct pgd_chat_template *tpl,
                                         const char *messages_json, const char *tools_json,
                                         bool add_generation_prompt,
                                         const char *extra_kwargs_json, const char *bos_token,
                                         const char *eos_token, char **out, size_t *out_len,
                                         char *err, size_t errlen)
{
    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!tpl || !messages_json)
        return pgd_errf(err, errlen, PGD_ERR_INVALID_ARG, "chat template render: %s is NULL",
                        tpl ? "messages" : "template");
    struct render_inputs in;
    enum pgd_status st = parse_inputs(&in, messages_json, tools_json, extra_kwargs_json, err,
                                      errlen);
    if (st)
        return st;

    struct failure *fs = calloc(1, sizeof *fs);
    if (!fs) {
        render_inputs_free(&in);
        return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    fs->fail.err = fs->msg;
    fs->fail.errlen = sizeof fs->msg;
    fs->fail.src = tpl->src;
    fs->ar.limit = tpl->limits.max_memory_bytes;
    fs->ar.fail = &fs->fail;
    /* every error below (template errors, limits, arena out of memory) longjmps here */
    if (setjmp(fs->fail.jb)) {
        render_inputs_free(&in);
        pgd__jarena_free(&fs->ar);
        prefixed(err, errlen, fs->fail.raised ? NULL : tpl->name, fs->msg);
        st = fs->fail.st;
        free(fs);
        return st;
    }
    struct pgd__jarena *const A = &fs->ar;
    struct pgd__jctx c = {
        .ar = A,
        .fail = &fs->fail,
        .max_steps = tpl->limits.max_steps,
        .max_depth = tpl->limits.max_depth,
        .max_output = tpl->limits.max_output_bytes,
    };
    struct pgd__jframe *globals = pgd__jalloc(A, sizeof *globals);
    c.globals = globals;
    set_template_vars(&c, globals, &in, add_generation_prompt, bos_token, eos_token);

    struct pgd__jbuf result = { 0 };
    pgd__jbuf_put(A, &result, "", 0);
    c.out = &result;
    /* the template's own top-level sets go to a frame below the globals */
    struct pgd__jframe *root = pgd__jalloc(A, sizeof *root);
    root->parent = globals;
    pgd__jrender(&c, tpl->root, root);

    st = copy_result(&result, out, out_len, err, errlen);
    render_inputs_free(&in);
    pgd__jarena_free(A);
    free(fs);
    return st;
}

/* ---- model directory -------------------------------------------------------------------- */

static char *join_path(const char *dir, const char *file)
{
    size_t a = strlen(dir), b = strlen(file);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (k && p[k - 1] != '/')
        p[k++] = '/';
    memcpy(p + k, file, b + 1);
    return p;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Parses the JSON file at path into *out (the caller's reference); a parse error names the
 * file, line and column. */
static enum pgd_status load_json(const char *path, json_t **out, char *err, size_t errlen)
{
    json_error_t je;
    *out = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
    if (!*out)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: line %d, column %d: %s", path, je.line,
                        je.column, je.text);
    return PGD_OK;
}

/* A special token: a string, null, or an AddedToken-like object {"content": "..."}. */
static enum pgd_status token_field(const char *path, json_t *cfg, const char *field,
                                   char **out, char *err, size_t errlen)
{
    *out = NULL;
    json_t *v = json_object_get(cfg, field);
    if (!v || json_is_null(v))
        return PGD_OK;
    if (json_is_object(v))
        v = json_object_get(v, "content");
    if (!json_is_string(v))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: %s must be a string or an object with a string \"content\"", path,
                        field);
    *out = strdup(json_string_value(v));
    return *out ? PGD_OK : pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
}

/* "chat_template": a string, or a list of {"name", "template"}. */
static enum pgd_status template_field(const char *path, json_t *v,
                                      struct pgd_chat_template_config *cfg, char *err,
                                      size_t errlen)
{
    if (json_is_string(v)) {
        cfg->source = strdup(json_string_value(v));
        return cfg->source ? PGD_OK : pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    if (!json_is_array(v))
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: chat_template must be a string or a list of {name, template}",
                        path);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
        json_t *name = json_object_get(item, "name"), *tpl = json_object_get(item, "template");
        if (!json_is_string(name) || !json_is_string(tpl))
            return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                            "%s: chat_template[%zu] needs string \"name\" and \"template\"",
                            path, i);
        char **dst = !strcmp(json_string_value(name), "default")    ? &cfg->source
                     : !strcmp(json_string_value(name), "tool_use") ? &cfg->tool_use_source
                                                                    : NULL;
        if (dst && !*dst && !(*dst = strdup(json_string_value(tpl))))
            return pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
    }
    if (!cfg->source)
        return pgd_errf(err, errlen, PGD_ERR_FORMAT,
                        "%s: chat_template lists named templates but none named \"default\"",
                        path);
    return PGD_OK;
}

enum pgd_status pgd_chat_template_config_load(const char *model_dir,
                                              struct pgd_chat_template_config *cfg, char *err,
                                              size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    enum pgd_status st = PGD_OK;
    char *jinja = join_path(model_dir, "chat_template.jinja");
    char *tcfg = join_path(model_dir, "tokenizer_config.json");
    char *ctjson = join_path(model_dir, "chat_template.json");
    if (!jinja || !tcfg || !ctjson) {
        st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (file_exists(tcfg)) {
        json_t *j;
        if ((st = load_json(tcfg, &j, err, errlen)))
            goto done;
        if (!json_is_object(j)) {
            json_decref(j);
            st = pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: expected a JSON object", tcfg);
            goto done;
        }
        if ((st = token_field(tcfg, j, "bos_token", &cfg->bos_token, err, errlen)) ||
            (st = token_field(tcfg, j, "eos_token", &cfg->eos_token, err, errlen))) {
            json_decref(j);
            goto done;
        }
        json_t *ct = json_object_get(j, "chat_template");
        if (ct && !json_is_null(ct) && !file_exists(jinja)) {
            st = template_field(tcfg, ct, cfg, err, errlen);
            if (!st && !(cfg->path = strdup(tcfg)))
                st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
        }
        json_decref(j);
        if (st)
            goto done;
    }
    if (file_exists(jinja)) {
        if ((st = pgd__read_file(jinja, &cfg->source, NULL, err, errlen)))
            goto done;
        if (!(cfg->path = strdup(jinja))) {
            st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
            goto done;
        }
    } else if (!cfg->source && file_exists(ctjson)) {
        json_t *j;
        if ((st = load_json(ctjson, &j, err, errlen)))
            goto done;
        json_t *ct = json_object_get(j, "chat_template");
        st = ct ? template_field(ctjson, ct, cfg, err, errlen)
                : pgd_errf(err, errlen, PGD_ERR_FORMAT, "%s: no \"chat_template\"", ctjson);
        json_decref(j);
        if (!st && !(cfg->path = strdup(ctjson)))
            st = pgd_errf(err, errlen, PGD_ERR_NOMEM, "out of memory");
        if (st)
            goto done;
    }
    if (!cfg->source)
        st = pgd_errf(err, errlen, PGD_ERR_NOT_FOUND,
                      "%s: no chat template (looked for chat_template.jinja, a \"chat_template\" "
                      "in tokenizer_config.json, and chat_template.json)", model_dir);
done:
    free(jinja);
    free(tcfg);
    free(ctjson);
    if (st)
        pgd_chat_template_config_fini(cfg);
    return st;
}

void pgd_chat_template_config_fini(struct pgd_chat_template_config *cfg)
{
    free(cfg->source);
    free(cfg->tool_use_source);
    free(cfg->bos_token);
    free(cfg->eos_token);
    free(cfg->path);
    memset(cfg, 0, sizeof *cfg);
}
