/* /v1/responses (OpenAI's Responses API, its basic shape): the request becomes a chat
 * request (instructions -> a system message, input -> messages, max_output_tokens ->
 * max_tokens, text.format -> response_format, tools in their flat Responses form -> chat
 * tools), and the answer is built back as a Response object: output items of type "message"
 * (output_text parts) and "function_call". generate.c runs it and calls the builders here;
 * streaming answers are events (response.created, response.output_text.delta, ...,
 * response.completed), each `event: TYPE` + `data: JSON` with a sequence_number. */
#include "plugins/frontend/openai/gen.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A Responses content (a string, or parts input_text / output_text / text) as chat text. */
static json_t *content_text(json_t *c, const char *param, struct oai_error *e)
{
    if (json_is_string(c))
        return json_copy(c);
    if (!json_is_array(c)) {
        OAI_BAD(e, param, "'%s' must be a string or a list of input_text parts", param);
        return NULL;
    }
    json_t *parts = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(c, i, p) {
        json_t *t = json_object_get(p, "text");
        const char *type = json_string_value(json_object_get(p, "type"));
        if (!json_is_string(t) || !type || (strcmp(type, "input_text") &&
                                            strcmp(type, "output_text") && strcmp(type, "text"))) {
            json_decref(parts);
            OAI_BAD(e, param, "'%s[%zu]': only text parts (input_text, output_text) are "
                    "supported", param, i);
            return NULL;
        }
        json_array_append_new(parts, json_pack("{s:s, s:O}", "type", "text", "text", t));
    }
    return parts;
}

/* One input item -> a chat message appended to msgs. */
static bool input_item(json_t *it, size_t i, json_t *msgs, struct oai_error *e)
{
    char param[48];
    snprintf(param, sizeof param, "input[%zu]", i);
    const char *type = json_string_value(json_object_get(it, "type"));
    if (type && !strcmp(type, "function_call")) {
        json_t *call = json_pack("{s:O?, s:s, s:{s:O?, s:O?}}", "id", json_object_get(it, "call_id"),
                                 "type", "function", "function", "name",
                                 json_object_get(it, "name"), "arguments",
                                 json_object_get(it, "arguments"));
        return !json_array_append_new(msgs, json_pack("{s:s, s:n, s:[o]}", "role", "assistant",
                                                      "content", "tool_calls", call));
    }
    if (type && !strcmp(type, "function_call_output")) {
        json_t *out = json_object_get(it, "output");
        if (!json_is_string(out)) {
            OAI_BAD(e, param, "'%s.output' must be a string", param);
            return false;
        }
        return !json_array_append_new(msgs, json_pack("{s:s, s:O, s:O?}", "role", "tool",
                                                      "content", out, "tool_call_id",
                                                      json_object_get(it, "call_id")));
    }
    json_t *role = json_object_get(it, "role");
    if (!json_is_object(it) || !json_is_string(role) || (type && strcmp(type, "message"))) {
        OAI_BAD(e, param, "'%s' must be a message {\"role\", \"content\"}, a function_call "
                "or a function_call_output", param);
        return false;
    }
    json_t *text = content_text(json_object_get(it, "content"), param, e);
    if (!text)
        return false;
    const char *r = json_string_value(role);
    return !json_array_append_new(msgs, json_pack("{s:s, s:o}", "role",
                                                  !strcmp(r, "developer") ? "system" : r,
                                                  "content", text));
}

/* Responses tools {"type": "function", "name", "description", "parameters"} -> chat tools. */
static json_t *chat_tools(json_t *tools, struct oai_error *e)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        const char *type = json_string_value(json_object_get(t, "type"));
        if (!type || strcmp(type, "function") || !json_is_string(json_object_get(t, "name"))) {
            json_decref(out);
            OAI_BAD(e, "tools", "tools[%zu]: only function tools {\"type\": \"function\", "
                    "\"name\", \"parameters\"} are supported", i);
            return NULL;
        }
        json_t *fn = json_pack("{s:O}", "name", json_object_get(t, "name"));
        const char *keys[] = { "description", "parameters" };
        for (int k = 0; k < 2; k++)
            if (oai_field(t, keys[k]))
                json_object_set(fn, keys[k], oai_field(t, keys[k]));
        json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
    }
    return out;
}

/* text.format {"type": "json_schema", "name", "schema", "strict"} -> response_format. */
static json_t *response_format(json_t *text)
{
    json_t *f = oai_field(text, "format");
    const char *type = json_string_value(json_object_get(f, "type"));
    if (!f || !type)
        return NULL;
    if (!strcmp(type, "json_schema"))
        return json_pack("{s:s, s:{s:O?, s:O?, s:O?}}", "type", "json_schema", "json_schema",
                         "name", json_object_get(f, "name"), "schema",
                         json_object_get(f, "schema"), "strict", json_object_get(f, "strict"));
    return json_pack("{s:s}", "type", type);
}

json_t *oai_responses_to_chat(json_t *b, struct oai_error *e)
{
    json_t *msgs = json_array();
    json_t *ins = oai_field(b, "instructions"), *input = oai_field(b, "input");
    if (ins && !json_is_string(ins)) {
        OAI_BAD(e, "instructions", "'instructions' must be a string");
        goto fail;
    }
    if (ins)
        json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "system", "content", ins));
    if (json_is_string(input))
        json_array_append_new(msgs, json_pack("{s:s, s:O}", "role", "user", "content", input));
    else if (json_is_array(input) && json_array_size(input) > 0) {
        size_t i;
        json_t *it;
        json_array_foreach(input, i, it)
            if (!input_item(it, i, msgs, e))
                goto fail;
    } else {
        OAI_BAD(e, "input", "'input' must be a string or a non-empty list of items");
        goto fail;
    }
    json_t *chat = json_pack("{s:o}", "messages", msgs);
    static const char *const same[] = { "model", "stream", "temperature", "top_p", "tool_choice",
                                        "parallel_tool_calls", "priority", "cache_salt",
                                        "request_id" };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++)
        if (oai_field(b, same[i]))
            json_object_set(chat, same[i], oai_field(b, same[i]));
    if (oai_field(b, "max_output_tokens"))
        json_object_set(chat, "max_tokens", oai_field(b, "max_output_tokens"));
    json_t *tc = oai_field(b, "tool_choice");
    if (json_is_object(tc) && json_is_string(json_object_get(tc, "name")))
        json_object_set_new(chat, "tool_choice", json_pack("{s:s, s:{s:O}}", "type", "function",
                                                           "function", "name",
                                                           json_object_get(tc, "name")));
    if (oai_field(b, "tools") && json_array_size(oai_field(b, "tools"))) {
        json_t *tools = chat_tools(oai_field(b, "tools"), e);
        if (!tools) {
            json_decref(chat);
            return NULL;
        }
        json_object_set_new(chat, "tools", tools);
    }
    json_t *rf = oai_field(b, "text") ? response_format(oai_field(b, "text")) : NULL;
    if (rf)
        json_object_set_new(chat, "response_format", rf);
    return chat;
fail:
    json_decref(msgs);
    return NULL;
}

/* ---- the answer ------------------------------------------------------------------------- */

json_t *oai_responses_object(const char *id, long long created, const char *model,
                             const char *status, json_t *output, json_t *usage)
{
    json_t *r = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o, s:n, s:n, s:n, s:{}, s:b, s:s, "
                          "s:[], s:{s:{s:s}}}", "id", id, "object", "response", "created_at",
                          (json_int_t)created, "status", status, "model", model, "output",
                          output, "error", "incomplete_details", "instructions", "metadata",
                          "parallel_tool_calls", 1, "tool_choice", "auto", "tools", "text",
                          "format", "type", "text");
    json_object_set_new(r, "usage", usage ? usage : json_null());
    return r;
}

json_t *oai_responses_message(const char *item_id, json_t *text, const char *status)
{
    json_t *parts = text ? json_pack("[{s:s, s:o, s:[], s:[]}]", "type", "output_text", "text",
                                     text, "annotations", "logprobs")
                         : json_array();
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "type", "message", "id", item_id, "status",
                     status, "role", "assistant", "content", parts);
}

json_t *oai_responses_call(const char *item_id, const char *call_id, const char *name,
                           const char *arguments, const char *status)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", "function_call", "id", item_id,
                     "call_id", call_id, "name", name, "arguments", arguments, "status", status);
}

json_t *oai_responses_usage(long long input, long long output, long long cached)
{
    return json_pack("{s:I, s:{s:I}, s:I, s:{s:i}, s:I}", "input_tokens", (json_int_t)input,
                     "input_tokens_details", "cached_tokens", (json_int_t)cached,
                     "output_tokens", (json_int_t)output, "output_tokens_details",
                     "reasoning_tokens", 0, "total_tokens", (json_int_t)(input + output));
}

void oai_responses_event(struct pgd__buf *out, int *seq, const char *type, json_t *data)
{
    json_object_set_new(data, "type", json_string(type));
    json_object_set_new(data, "sequence_number", json_integer((*seq)++));
    char *t = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    if (!t) {
        out->failed = true;
        return;
    }
    pgd__buf_appendf(out, "event: %s\ndata: %s\n\n", type, t);
    free(t);
}

enum MHD_Result oai_route_responses(struct oai_server *s, struct MHD_Connection *c, json_t *b)
{
    struct oai_error e = { 0 };
    struct oai_gen g;
    memset(&g, 0, sizeof g);
    json_t *chat = oai_fields_check(s, OAI_API_RESPONSES, b, &e) ? oai_responses_to_chat(b, &e)
                                                                 : NULL;
    bool ok = chat && oai_gen_parse_api(s, OAI_API_RESPONSES, chat, &g, &e);
    json_decref(chat);
    if (ok && (g.sp.n != 1 || g.n_prompts != 1)) {
        OAI_BAD(&e, "input", "one response per request");
        ok = false;
    }
    if (!ok) {
        oai_gen_fini(&g);
        return oai_respond_error(s, c, R_RESPONSES, e.status, e.type, e.param, e.code, e.msg);
    }
    return oai_gen_run(s, c, &g);
}

/* ---- /v1/responses ------------------------------------------------------------------------ */

static void usage_totals(struct job *j, long long *prompt, long long *completion,
                         long long *cached)
{
    *prompt = *completion = *cached = 0;
    for (int p = 0; p < j->g.n_prompts; p++) {
        *prompt += j->prompt_tokens[p];
        *cached += j->cached_tokens[p];
    }
    for (int i = 0; i < j->n_ch; i++)
        *completion += j->ch[i].completion_tokens;
}

/* The output items of choice 0 (split already): its message (when it has text or no call)
 * and its calls; ids from the job's. */
static json_t *responses_output(struct job *j, struct choice *c)
{
    json_t *out = json_array();
    char id[200];
    if (!oai_blank(&c->content) || c->n_calls == 0) {
        snprintf(id, sizeof id, "msg_%s", j->id + 5);
        json_array_append_new(out, oai_responses_message(
            id, oai_json_str(c->content.p ? c->content.p : "", c->content.len), "completed"));
    }
    for (int k = 0; k < c->n_calls; k++) {
        char call_id[48];
        oai_make_id(j->s, "call_", call_id, sizeof call_id);
        snprintf(id, sizeof id, "fc_%s_%d", j->id + 5, k);
        json_array_append_new(out, oai_responses_call(id, call_id, c->calls[k].name,
                                                      c->calls[k].arguments, "completed"));
    }
    return out;
}

static json_t *responses_final(struct job *j, struct choice *c)
{
    long long in, out, cached;
    usage_totals(j, &in, &out, &cached);
    bool cut = c->finish == PGD_FINISH_LENGTH;
    json_t *r = oai_responses_object(j->id, (long long)j->created, j->s->model_name,
                                     cut ? "incomplete" : "completed", responses_output(j, c),
                                     oai_responses_usage(in, out, cached));
    if (cut)
        json_object_set_new(r, "incomplete_details",
                            json_pack("{s:s}", "reason", "max_output_tokens"));
    return r;
}

json_t *oai_responses_plain_body(struct job *j)
{
    struct choice *c = &j->ch[0];
    struct pgd__buf raw = c->text;
    c->text = (struct pgd__buf){ 0 };
    oai_post_feed(j, c, raw.p, raw.len, true, &c->reasoning, &c->content);
    pgd__buf_fini(&raw);
    return responses_final(j, c);
}

/* Streaming events: created and in_progress, the message item and its part, a delta per
 * piece of text, then the done events, each call's item, and completed. */
void oai_responses_stream_take(struct job *j, struct choice *c, const struct pgd_output *o)
{
    char msg_id[200];
    snprintf(msg_id, sizeof msg_id, "msg_%s", j->id + 5);
    if (!c->started) {
        c->started = true;
        const char *ev[] = { "response.created", "response.in_progress" };
        for (int i = 0; i < 2; i++)
            oai_responses_event(&j->out, &j->seq, ev[i], json_pack("{s:o}", "response",
                oai_responses_object(j->id, (long long)j->created, j->s->model_name,
                                     "in_progress", json_array(), NULL)));
        oai_responses_event(&j->out, &j->seq, "response.output_item.added", json_pack(
            "{s:i, s:o}", "output_index", 0, "item",
            oai_responses_message(msg_id, NULL, "in_progress")));
        oai_responses_event(&j->out, &j->seq, "response.content_part.added", json_pack(
            "{s:s, s:i, s:i, s:{s:s, s:s, s:[]}}", "item_id", msg_id, "output_index", 0,
            "content_index", 0, "part", "type", "output_text", "text", "", "annotations"));
    }
    if (o->finish_reason == PGD_FINISH_ABORT || o->finish_reason == PGD_FINISH_ERROR)
        return;
    bool final = o->finish_reason != PGD_FINISH_NONE;
    struct pgd__buf ct = { 0 };
    oai_post_feed(j, c, o->text, o->text_len, final, &c->reasoning, &ct);
    if (ct.len)
        oai_responses_event(&j->out, &j->seq, "response.output_text.delta", json_pack(
            "{s:s, s:i, s:i, s:o, s:[]}", "item_id", msg_id, "output_index", 0,
            "content_index", 0, "delta", oai_json_str(ct.p, ct.len), "logprobs"));
    pgd__buf_append(&c->content, ct.p, ct.len);
    pgd__buf_fini(&ct);
    if (!final)
        return;
    json_t *text = oai_json_str(c->content.p ? c->content.p : "", c->content.len);
    oai_responses_event(&j->out, &j->seq, "response.output_text.done", json_pack(
        "{s:s, s:i, s:i, s:O, s:[]}", "item_id", msg_id, "output_index", 0, "content_index", 0,
        "text", text, "logprobs"));
    oai_responses_event(&j->out, &j->seq, "response.content_part.done", json_pack(
        "{s:s, s:i, s:i, s:{s:s, s:O, s:[]}}", "item_id", msg_id, "output_index", 0,
        "content_index", 0, "part", "type", "output_text", "text", text, "annotations"));
    oai_responses_event(&j->out, &j->seq, "response.output_item.done", json_pack(
        "{s:i, s:o}", "output_index", 0, "item", oai_responses_message(msg_id, text,
                                                                       "completed")));
    json_t *resp = responses_final(j, c);
    json_t *items = json_object_get(resp, "output");
    for (size_t k = 0; k < json_array_size(items); k++) {
        json_t *it = json_array_get(items, k);
        if (strcmp(json_string_value(json_object_get(it, "type")), "function_call"))
            continue;
        oai_responses_event(&j->out, &j->seq, "response.output_item.added",
                            json_pack("{s:i, s:O}", "output_index", (int)k + 1, "item", it));
        oai_responses_event(&j->out, &j->seq, "response.function_call_arguments.delta",
                            json_pack("{s:O, s:i, s:O}", "item_id", json_object_get(it, "id"),
                                      "output_index", (int)k + 1, "delta",
                                      json_object_get(it, "arguments")));
        oai_responses_event(&j->out, &j->seq, "response.function_call_arguments.done",
                            json_pack("{s:O, s:i, s:O}", "item_id", json_object_get(it, "id"),
                                      "output_index", (int)k + 1, "arguments",
                                      json_object_get(it, "arguments")));
        oai_responses_event(&j->out, &j->seq, "response.output_item.done",
                            json_pack("{s:i, s:O}", "output_index", (int)k + 1, "item", it));
    }
    oai_responses_event(&j->out, &j->seq, "response.completed",
                        json_pack("{s:o}", "response", resp));
}
