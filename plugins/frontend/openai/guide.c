/* Structured output and tools, as vLLM spells them, -> the engine's guide (guide_kind and
 * guide of struct pgd_sampling_params; the engine compiles it at submit and refuses an
 * invalid one with a message, which generate.c answers as a 400).
 *
 *   response_format      {"type": "text" | "json_object" | "json_schema", "json_schema":
 *                        {"name", "schema", "strict"}}
 *   structured_outputs   {"json" | "regex" | "choice" | "grammar" | "json_object": ...}
 *   guided_json, guided_regex, guided_choice, guided_grammar   (vLLM's older names)
 *   tools + tool_choice  "required": an array of calls {"name", "parameters"}, anyOf the
 *                        tools (vLLM's schema); a named function: that tool's parameters;
 *                        "auto": nothing constrained, the model's syntax is parsed after
 *                        (parsers.h), which needs --enable-auto-tool-choice and
 *                        --tool-call-parser, as in vLLM
 *
 * One way to constrain at a time: two are a 400. */
#include "plugins/frontend/openai/oai.h"
#include <stdlib.h>
#include <string.h>

/* Sets the guide (kind and text) once; a second source is the client's mistake. */
struct guide_pick {
    const char *from;              /* the field that set it, for the error */
    enum pgd_guide_kind kind;
    char *text;                    /* owned */
};

static bool pick(struct guide_pick *p, const char *from, enum pgd_guide_kind kind, char *text,
                 struct oai_error *e)
{
    if (p->from) {
        free(text);
        OAI_BAD(e, from, "'%s' and '%s' both constrain the output: use only one of "
                "response_format, structured_outputs, guided_json, guided_regex, "
                "guided_choice, guided_grammar and tool_choice \"required\" or a named tool",
                p->from, from);
        return false;
    }
    if (!text && kind != PGD_GUIDE_JSON_OBJECT) {
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
        return false;
    }
    *p = (struct guide_pick){ from, kind, text };
    return true;
}

/* A schema given as an object or as its JSON text (vLLM takes both). */
static bool pick_schema(struct guide_pick *p, const char *from, json_t *v, struct oai_error *e)
{
    if (json_is_string(v)) {
        json_t *parsed = json_loads(json_string_value(v), 0, NULL);
        bool ok = json_is_object(parsed) || json_is_boolean(parsed);
        json_decref(parsed);
        if (!ok) {
            OAI_BAD(e, from, "'%s' must be a JSON Schema (an object, or its JSON text)", from);
            return false;
        }
        return pick(p, from, PGD_GUIDE_JSON_SCHEMA, strdup(json_string_value(v)), e);
    }
    if (!json_is_object(v)) {
        OAI_BAD(e, from, "'%s' must be a JSON Schema (an object, or its JSON text)", from);
        return false;
    }
    return pick(p, from, PGD_GUIDE_JSON_SCHEMA, json_dumps(v, JSON_COMPACT), e);
}

static bool pick_string(struct guide_pick *p, const char *from, enum pgd_guide_kind kind,
                        json_t *v, struct oai_error *e)
{
    if (!json_is_string(v) || json_string_length(v) == 0) {
        OAI_BAD(e, from, "'%s' must be a non-empty string", from);
        return false;
    }
    return pick(p, from, kind, strdup(json_string_value(v)), e);
}

static bool pick_choice(struct guide_pick *p, const char *from, json_t *v, struct oai_error *e)
{
    bool ok = json_is_array(v) && json_array_size(v) > 0;
    for (size_t i = 0; ok && i < json_array_size(v); i++)
        ok = json_is_string(json_array_get(v, i));
    if (!ok) {
        OAI_BAD(e, from, "'%s' must be a non-empty list of strings", from);
        return false;
    }
    return pick(p, from, PGD_GUIDE_CHOICE, json_dumps(v, JSON_COMPACT), e);
}

static bool parse_response_format(json_t *rf, struct guide_pick *p, struct oai_error *e)
{
    json_t *type = json_object_get(rf, "type");
    if (!json_is_object(rf) || !json_is_string(type)) {
        OAI_BAD(e, "response_format", "'response_format' must be an object with a string "
                "'type'");
        return false;
    }
    const char *t = json_string_value(type);
    if (!strcmp(t, "text"))
        return true;
    if (!strcmp(t, "json_object"))
        return pick(p, "response_format", PGD_GUIDE_JSON_OBJECT, NULL, e);
    if (!strcmp(t, "json_schema")) {
        json_t *js = oai_field(rf, "json_schema");
        json_t *schema = js ? oai_field(js, "schema") : NULL;
        json_t *strict = js ? oai_field(js, "strict") : NULL;
        if (!json_is_object(js) || !schema) {
            OAI_BAD(e, "response_format.json_schema", "'response_format' of type "
                    "\"json_schema\" needs 'json_schema': {\"name\": ..., \"schema\": {...}}");
            return false;
        }
        if (strict && !json_is_boolean(strict)) {
            OAI_BAD(e, "response_format.json_schema.strict", "'strict' must be a boolean");
            return false;
        }
        /* strict or not, the schema is enforced: constrained decoding has no weaker mode. */
        return pick_schema(p, "response_format", schema, e);
    }
    if (!strcmp(t, "structural_tag")) {
        OAI_BAD(e, "response_format.type", "'response_format' of type \"structural_tag\" is "
                "not supported by this server");
        return false;
    }
    OAI_BAD(e, "response_format.type", "'response_format.type' must be \"text\", "
            "\"json_object\" or \"json_schema\" (got \"%.64s\")", t);
    return false;
}

static bool parse_structured_outputs(json_t *so, struct guide_pick *p, struct oai_error *e)
{
    if (!json_is_object(so)) {
        OAI_BAD(e, "structured_outputs", "'structured_outputs' must be an object");
        return false;
    }
    static const char *const unsupported[] = { "structural_tag", "whitespace_pattern" };
    for (size_t i = 0; i < 2; i++)
        if (oai_field(so, unsupported[i])) {
            OAI_BAD(e, "structured_outputs", "'structured_outputs.%s' is not supported by "
                    "this server", unsupported[i]);
            return false;
        }
    json_t *v;
    if ((v = oai_field(so, "json")) && !pick_schema(p, "structured_outputs.json", v, e))
        return false;
    if ((v = oai_field(so, "regex")) &&
        !pick_string(p, "structured_outputs.regex", PGD_GUIDE_REGEX, v, e))
        return false;
    if ((v = oai_field(so, "choice")) && !pick_choice(p, "structured_outputs.choice", v, e))
        return false;
    if ((v = oai_field(so, "grammar")) &&
        !pick_string(p, "structured_outputs.grammar", PGD_GUIDE_GRAMMAR, v, e))
        return false;
    if ((v = oai_field(so, "json_object")) && json_is_true(v) &&
        !pick(p, "structured_outputs.json_object", PGD_GUIDE_JSON_OBJECT, NULL, e))
        return false;
    return true;
}

/* ---- tools ------------------------------------------------------------------------------- */

static bool check_tools(json_t *tools, struct oai_error *e)
{
    if (!json_is_array(tools)) {
        OAI_BAD(e, "tools", "'tools' must be a list of tools");
        return false;
    }
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *type = json_object_get(t, "type");
        json_t *fn = json_object_get(t, "function");
        json_t *params = fn ? oai_field(fn, "parameters") : NULL;
        if (!json_is_object(t) || (type && (!json_is_string(type) ||
                                            strcmp(json_string_value(type), "function"))) ||
            !json_is_object(fn) || !json_is_string(json_object_get(fn, "name")) ||
            (params && !json_is_object(params))) {
            OAI_BAD(e, "tools", "tools[%zu] must be {\"type\": \"function\", \"function\": "
                    "{\"name\": str, \"description\": str, \"parameters\": {JSON Schema}}}", i);
            return false;
        }
    }
    return true;
}

/* The parameters schema of a tool ({"type": "object", "properties": {}} when it has none). */
static json_t *tool_params(json_t *tool)
{
    json_t *p = oai_field(json_object_get(tool, "function"), "parameters");
    return p && json_object_size(p) ? json_deep_copy(p)
                                    : json_pack("{s:s, s:{}}", "type", "object", "properties");
}

/* vLLM's schema for tool_choice "required": [{"name": one of the tools, "parameters": its
 * schema}, ...]; the tools' $defs move to the root, where their $refs point. */
static char *required_schema(json_t *tools, bool parallel, struct oai_error *e)
{
    json_t *any = json_array(), *defs = json_object();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *params = tool_params(t);
        json_t *d = json_object_get(params, "$defs");
        const char *k;
        json_t *v;
        json_object_foreach(d, k, v) {
            json_t *have = json_object_get(defs, k);
            if (have && !json_equal(have, v)) {
                OAI_BAD(e, "tools", "tool definition '%.64s' has several schemas, which is "
                        "not supported", k);
                json_decref(params);
                json_decref(any);
                json_decref(defs);
                return NULL;
            }
            json_object_set(defs, k, v);
        }
        json_object_del(params, "$defs");
        const char *name = json_string_value(json_object_get(json_object_get(t, "function"),
                                                             "name"));
        json_array_append_new(any, json_pack("{s:{s:{s:s, s:[s]}, s:o}, s:[s, s]}",
                                             "properties", "name", "type", "string", "enum",
                                             name, "parameters", params, "required", "name",
                                             "parameters"));
    }
    json_t *schema = json_pack("{s:s, s:i, s:{s:s, s:o}}", "type", "array", "minItems", 1,
                               "items", "type", "object", "anyOf", any);
    if (!parallel)
        json_object_set_new(schema, "maxItems", json_integer(1));
    if (json_object_size(defs))
        json_object_set(schema, "$defs", defs);
    json_decref(defs);
    char *text = json_dumps(schema, JSON_COMPACT);
    json_decref(schema);
    if (!text)
        oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
    return text;
}

static json_t *find_tool(json_t *tools, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        json_t *n = json_object_get(json_object_get(t, "function"), "name");
        if (!strcmp(json_string_value(n), name))
            return t;
    }
    return NULL;
}

static bool parse_tool_choice(struct oai_server *s, json_t *b, struct oai_gen *g,
                              struct guide_pick *p, struct oai_error *e)
{
    json_t *tools = oai_field(b, "tools");
    json_t *tc = oai_field(b, "tool_choice");
    if (tools && !check_tools(tools, e))
        return false;
    g->parallel_tool_calls = true;
    json_t *par = oai_field(b, "parallel_tool_calls");
    if (par && !json_is_boolean(par)) {
        OAI_BAD(e, "parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
        return false;
    }
    if (par)
        g->parallel_tool_calls = json_is_true(par);
    bool have = tools && json_array_size(tools) > 0;
    if (!tc) {                      /* OpenAI: "auto" when tools are given */
        if (!have)
            return true;
        g->tool_choice = OAI_TOOLS_AUTO;
    } else if (json_is_string(tc) && !strcmp(json_string_value(tc), "none")) {
        return true;
    } else if (!tools) {
        OAI_BAD(e, "tool_choice", "When using 'tool_choice', 'tools' must be set");
        return false;
    } else if (json_is_string(tc) && !strcmp(json_string_value(tc), "auto")) {
        g->tool_choice = have ? OAI_TOOLS_AUTO : OAI_TOOLS_NONE;
    } else if (json_is_string(tc) && !strcmp(json_string_value(tc), "required")) {
        g->tool_choice = have ? OAI_TOOLS_REQUIRED : OAI_TOOLS_NONE;   /* as OpenAI */
    } else if (json_is_object(tc)) {
        json_t *fn = json_object_get(tc, "function");
        json_t *name = json_is_object(fn) ? json_object_get(fn, "name") : NULL;
        if (!json_is_string(name) || json_string_length(name) == 0) {
            OAI_BAD(e, "tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" "
                    "or {\"type\": \"function\", \"function\": {\"name\": \"my_function\"}}");
            return false;
        }
        if (!find_tool(tools, json_string_value(name))) {
            OAI_BAD(e, "tool_choice", "The tool '%.64s' named in 'tool_choice' is not one of "
                    "'tools'", json_string_value(name));
            return false;
        }
        g->tool_choice = OAI_TOOLS_NAMED;
        if (!(g->tool_name = strdup(json_string_value(name)))) {
            oai_err_set(e, 500, "internal_error", NULL, NULL, "out of memory");
            return false;
        }
    } else {
        OAI_BAD(e, "tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or "
                "{\"type\": \"function\", \"function\": {\"name\": \"my_function\"}}");
        return false;
    }
    if (g->tool_choice == OAI_TOOLS_AUTO &&
        (!s->cfg.enable_auto_tool_choice || s->cfg.tool_call_parser == OAI_TP_NONE)) {
        OAI_BAD(e, "tool_choice", "\"auto\" tool choice requires --enable-auto-tool-choice and "
                "--tool-call-parser to be set (or send tool_choice \"required\", a named "
                "tool, or \"none\")");
        return false;
    }
    if (g->tool_choice == OAI_TOOLS_REQUIRED) {
        char *schema = required_schema(tools, g->parallel_tool_calls, e);
        return schema && pick(p, "tool_choice", PGD_GUIDE_JSON_SCHEMA, schema, e);
    }
    if (g->tool_choice == OAI_TOOLS_NAMED) {
        json_t *params = tool_params(find_tool(tools, g->tool_name));
        char *schema = json_dumps(params, JSON_COMPACT);
        json_decref(params);
        return pick(p, "tool_choice", PGD_GUIDE_JSON_SCHEMA, schema, e);
    }
    return true;
}

bool oai_guide_parse(struct oai_server *s, json_t *b, struct oai_gen *g, struct oai_error *e)
{
    struct guide_pick p = { 0 };
    json_t *v;
    bool ok = true;
    if (ok && (v = oai_field(b, "response_format")))
        ok = parse_response_format(v, &p, e);
    if (ok && (v = oai_field(b, "structured_outputs")))
        ok = parse_structured_outputs(v, &p, e);
    if (ok && (v = oai_field(b, "guided_json")))
        ok = pick_schema(&p, "guided_json", v, e);
    if (ok && (v = oai_field(b, "guided_regex")))
        ok = pick_string(&p, "guided_regex", PGD_GUIDE_REGEX, v, e);
    if (ok && (v = oai_field(b, "guided_choice")))
        ok = pick_choice(&p, "guided_choice", v, e);
    if (ok && (v = oai_field(b, "guided_grammar")))
        ok = pick_string(&p, "guided_grammar", PGD_GUIDE_GRAMMAR, v, e);
    if (ok && g->chat)
        ok = parse_tool_choice(s, b, g, &p, e);
    if (!ok) {
        free(p.text);
        return false;
    }
    g->guide = p.text;
    g->sp.guide_kind = p.kind;
    g->sp.guide = p.text;
    return true;
}

/* ---- the history the template sees ------------------------------------------------------- */

json_t *oai_messages_for_template(json_t *messages)
{
    json_t *out = json_deep_copy(messages);
    size_t i;
    json_t *m;
    json_array_foreach(out, i, m) {
        json_t *calls = json_object_get(m, "tool_calls");
        size_t k;
        json_t *c;
        json_array_foreach(calls, k, c) {
            json_t *fn = json_object_get(c, "function");
            json_t *args = json_object_get(fn, "arguments");
            if (!json_is_string(args))
                continue;
            /* Templates write arguments with `| tojson` or iterate them: they want the object
             * the API sends as JSON text (vLLM converts it the same way). */
            json_t *obj = json_loads(json_string_value(args), 0, NULL);
            if (json_is_object(obj))
                json_object_set_new(fn, "arguments", obj);
            else
                json_decref(obj);
        }
    }
    return out;
}
