/* The OpenAI frontend's parsers of model output (plugins/frontend/openai/parsers.c): tool
 * calls in the hermes, llama3_json and mistral syntaxes and the <think> reasoning split, fed
 * canned answers of those model families (random-weight fixtures never write them). Each
 * case is fed whole, then one byte at a time, then in 3-byte pieces: a stream must split
 * the text exactly as a plain answer does. */
#include "tests/lib/test_common.h"
#include "plugins/frontend/openai/parsers.h"
#include <string.h>

PGD_TEST_SUITE(oai_parsers);

struct tool_case {
    const char *parser;
    const char *text;              /* the model's answer */
    const char *content;           /* the content left */
    int n_calls;
    const char *names[3];
    const char *args[3];           /* compact JSON */
};

static const struct tool_case tool_cases[] = {
    /* hermes: Qwen2.5 / Qwen3 */
    { "hermes", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
      "\"Paris\"}}\n</tool_call>", "", 1, { "get_weather" }, { "{\"city\":\"Paris\"}" } },
    { "hermes", "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>"
      "\n<tool_call>\n{\"name\": \"b\", \"arguments\": {\"x\": [1, 2]}}\n</tool_call>",
      "Let me check.\n\n", 2, { "a", "b" }, { "{}", "{\"x\":[1,2]}" } },
    { "hermes", "no tools here, just < and <tool_ but not a call", "no tools here, just < "
      "and <tool_ but not a call", 0, { NULL }, { NULL } },
    { "hermes", "<tool_call>{\"name\": \"f\", \"arguments\": {\"q\": \"\\u00e9t\\u00e9\"}}",
      "", 1, { "f" }, { "{\"q\":\"\xc3\xa9t\xc3\xa9\"}" } },               /* unclosed */
    { "hermes", "<tool_call>{not json}</tool_call> after", "<tool_call>{not json}</tool_call>"
      " after", 0, { NULL }, { NULL } },
    { "hermes", "<tool_call>{\"name\": \"f\"}</tool_call>", "", 1, { "f" }, { "{}" } },
    /* llama3_json: Llama 3.1+ */
    { "llama3_json", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}", "", 1,
      { "get_weather" }, { "{\"city\":\"Oslo\"}" } },
    { "llama3_json", "<|python_tag|>{\"name\": \"a\", \"parameters\": {\"n\": 1}}; "
      "{\"name\": \"b\", \"parameters\": {}}", "", 2, { "a", "b" }, { "{\"n\":1}", "{}" } },
    { "llama3_json", "  The weather is fine {\"name\": 1}", "  The weather is fine "
      "{\"name\": 1}", 0, { NULL }, { NULL } },
    { "llama3_json", "{\"name\": \"a\", \"parameters\": {\"n\": 1}} trailing words",
      "{\"name\": \"a\", \"parameters\": {\"n\": 1}} trailing words", 0, { NULL }, { NULL } },
    { "llama3_json", "{\"answer\": 42}", "{\"answer\": 42}", 0, { NULL }, { NULL } },
    /* mistral */
    { "mistral", "[TOOL_CALLS][{\"name\": \"add\", \"arguments\": {\"a\": 1, \"b\": 2}}, "
      "{\"name\": \"neg\", \"arguments\": {\"a\": 3}}]", "", 2, { "add", "neg" },
      { "{\"a\":1,\"b\":2}", "{\"a\":3}" } },
    { "mistral", "Sure. [TOOL_CALLS][{\"name\": \"f\", \"arguments\": {}}]", "Sure. ", 1,
      { "f" }, { "{}" } },
    { "mistral", "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Rome\"}[TOOL_CALLS]f[ARGS]{}", "",
      2, { "get_weather", "f" }, { "{\"city\":\"Rome\"}", "{}" } },
    { "mistral", "[TOOL_CALLS] garbage", "[TOOL_CALLS] garbage", 0, { NULL }, { NULL } },
    { "mistral", "just [TOOL text", "just [TOOL text", 0, { NULL }, { NULL } },
};

/* Feeds text in pieces of step bytes (0: whole) and checks the case. */
static void run_tool_case(const struct tool_case *tc, size_t step)
{
    struct oai_tool_stream ts = { 0 };
    cr_assert(oai_tool_parser_from_name(tc->parser, &ts.kind), "%s", tc->parser);
    struct pgd__buf content = { 0 };
    struct oai_tool_call *calls = NULL;
    int n = 0;
    size_t len = strlen(tc->text);
    if (step == 0)
        step = len;
    for (size_t i = 0; i < len; i += step) {
        size_t k = len - i < step ? len - i : step;
        cr_assert(oai_tool_stream_feed(&ts, tc->text + i, k, false, &content, &calls, &n));
    }
    cr_assert(oai_tool_stream_feed(&ts, "", 0, true, &content, &calls, &n));
    cr_expect_str_eq(content.p ? content.p : "", tc->content, "%s step %zu: %s", tc->parser,
                     step, tc->text);
    cr_assert_eq(n, tc->n_calls, "%s step %zu: %s", tc->parser, step, tc->text);
    for (int i = 0; i < n; i++) {
        cr_expect_str_eq(calls[i].name, tc->names[i]);
        cr_expect_str_eq(calls[i].arguments, tc->args[i], "%s: %s", tc->parser, tc->text);
    }
    oai_tool_calls_free(calls, n);
    free(calls);
    pgd__buf_fini(&content);
    oai_tool_stream_fini(&ts);
}

Test(oai_parsers, tool_calls_whole_and_streamed)
{
    for (size_t i = 0; i < sizeof tool_cases / sizeof *tool_cases; i++) {
        run_tool_case(&tool_cases[i], 0);
        run_tool_case(&tool_cases[i], 1);
        run_tool_case(&tool_cases[i], 3);
    }
}

/* A stream shows content before a call as soon as it comes, and holds back only what may be
 * the start of a marker. */
Test(oai_parsers, hermes_stream_emits_content_early)
{
    struct oai_tool_stream ts = { .kind = OAI_TP_HERMES };
    struct pgd__buf content = { 0 };
    struct oai_tool_call *calls = NULL;
    int n = 0;
    cr_assert(oai_tool_stream_feed(&ts, "Hello <tool", 11, false, &content, &calls, &n));
    cr_expect_str_eq(content.p, "Hello ");
    cr_assert(oai_tool_stream_feed(&ts, "_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>", 45,
                                   false, &content, &calls, &n));
    cr_expect_eq(n, 1, "the call is complete at </tool_call>, before the end");
    cr_expect_str_eq(content.p, "Hello ");
    oai_tool_calls_free(calls, n);
    free(calls);
    pgd__buf_fini(&content);
    oai_tool_stream_fini(&ts);
}

Test(oai_parsers, unknown_names)
{
    enum oai_tool_parser p;
    enum oai_reasoning_parser r;
    cr_expect(!oai_tool_parser_from_name("pythonic_x", &p));
    cr_expect(!oai_reasoning_parser_from_name("granite_x", &r));
    cr_expect(oai_reasoning_parser_from_name("deepseek_r1", &r) && r == OAI_RP_DEEPSEEK_R1);
}

Test(oai_parsers, constrained_outputs)
{
    struct oai_tool_call *calls = NULL;
    int n = 0;
    const char *req = "[{\"name\": \"a\", \"parameters\": {\"x\": 1}}, {\"name\": \"b\", "
                      "\"parameters\": {}}]";
    cr_assert(oai_tool_calls_from_constrained(req, strlen(req), NULL, &calls, &n));
    cr_assert_eq(n, 2);
    cr_expect_str_eq(calls[0].name, "a");
    cr_expect_str_eq(calls[0].arguments, "{\"x\":1}");
    cr_expect_str_eq(calls[1].arguments, "{}");
    const char *named = "{\"city\": \"Lima\"}";
    cr_assert(oai_tool_calls_from_constrained(named, strlen(named), "w", &calls, &n));
    cr_assert_eq(n, 3);
    cr_expect_str_eq(calls[2].name, "w");
    cr_expect_str_eq(calls[2].arguments, "{\"city\":\"Lima\"}");
    cr_expect(!oai_tool_calls_from_constrained("[]", 2, NULL, &calls, &n));
    cr_expect(!oai_tool_calls_from_constrained("{\"x\"", 4, "w", &calls, &n));
    cr_expect(!oai_tool_calls_from_constrained("[{\"name\": 3}]", 13, NULL, &calls, &n));
    cr_expect_eq(n, 3, "a refused output adds no call");
    oai_tool_calls_free(calls, n);
    free(calls);
}

struct reason_case {
    const char *parser, *text, *reasoning, *content;
};

static const struct reason_case reason_cases[] = {
    { "qwen3", "<think>\nLet me think.\n</think>\n\nThe answer is 4.", "\nLet me think.\n",
      "\n\nThe answer is 4." },
    { "qwen3", "The answer is 4.", "", "The answer is 4." },
    { "qwen3", "<think>still thinking when cut", "still thinking when cut", "" },
    { "qwen3", "<thinking> is not the marker", "", "<thinking> is not the marker" },
    { "qwen3", "<think></think>", "", "" },
    { "deepseek_r1", "Okay, 2+2.</think>It is 4.", "Okay, 2+2.", "It is 4." },
    { "deepseek_r1", "<think>Hmm.</think>Four.", "Hmm.", "Four." },
    { "deepseek_r1", "no end tag at all", "no end tag at all", "" },
    { "deepseek_r1", "a </thin b</think>c", "a </thin b", "c" },
};

static void run_reason_case(const struct reason_case *rc, size_t step)
{
    struct oai_reasoning_stream rs = { 0 };
    cr_assert(oai_reasoning_parser_from_name(rc->parser, &rs.kind));
    struct pgd__buf reasoning = { 0 }, content = { 0 };
    size_t len = strlen(rc->text);
    if (step == 0)
        step = len;
    for (size_t i = 0; i < len; i += step) {
        size_t k = len - i < step ? len - i : step;
        cr_assert(oai_reasoning_feed(&rs, rc->text + i, k, false, &reasoning, &content));
    }
    cr_assert(oai_reasoning_feed(&rs, "", 0, true, &reasoning, &content));
    cr_expect_str_eq(reasoning.p ? reasoning.p : "", rc->reasoning, "%s step %zu: %s",
                     rc->parser, step, rc->text);
    cr_expect_str_eq(content.p ? content.p : "", rc->content, "%s step %zu: %s", rc->parser,
                     step, rc->text);
    pgd__buf_fini(&reasoning);
    pgd__buf_fini(&content);
    oai_reasoning_fini(&rs);
}

Test(oai_parsers, reasoning_whole_and_streamed)
{
    for (size_t i = 0; i < sizeof reason_cases / sizeof *reason_cases; i++) {
        run_reason_case(&reason_cases[i], 0);
        run_reason_case(&reason_cases[i], 1);
        run_reason_case(&reason_cases[i], 4);
    }
}
