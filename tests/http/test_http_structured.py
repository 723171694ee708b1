#!/usr/bin/env python3
"""Structured output, tool calls and reasoning through the clients users script against:
the openai package (response_format json_schema / json_object, chat.completions.parse with a
Pydantic model, tool_choice required / named / auto, streaming tool-call deltas, Responses
tool calls), langchain-openai (with_structured_output by its three methods, bind_tools with
tool_choice="required") and litellm (tools), on the tiny-chat fixture.

Its weights are random: only constrained output is meaningful, so every test here needs the
engine's constrained decoding (runtime/grammar/). The script first probes for it (a
guided_choice request whose answers must be one of the choices) and, when the output is not
constrained, says so and exits 77 (SKIP: nothing here is counted as passed)."""
import json
import os
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")   # no network at import
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_structured")
jsonschema, openai, pydantic = suite.need("jsonschema", "openai", "pydantic")
from typing import Any, Literal  # noqa: E402

M = "tiny-chat"
MSGS = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER_PARAMS = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
                   "days": {"type": "integer", "minimum": 1, "maximum": 9}},
    "required": ["city", "days"], "additionalProperties": False,
}
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "the weather",
                                      "parameters": WEATHER_PARAMS}},
    {"type": "function", "function": {"name": "get_time", "description": "the time",
                                      "parameters": {"type": "object", "properties": {
                                          "utc": {"type": "boolean"}},
                                          "required": ["utc"], "additionalProperties": False}}},
]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


class Weather(pydantic.BaseModel):
    city: Literal["Paris", "Rome", "Oslo"]
    days: int = pydantic.Field(ge=1, le=9)


class AnyObject(pydantic.BaseModel):
    """json_mode only promises a JSON object: any fields."""
    model_config = pydantic.ConfigDict(extra="allow")
    note: Any = None


def client(srv):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=120)


def check_call(name, arguments):
    assert name in SCHEMAS, name
    jsonschema.validate(json.loads(arguments), SCHEMAS[name])


def constrained(srv):
    """Whether the engine enforces guides: guided_choice answers are one of the choices."""
    c = client(srv)
    for seed in range(3):
        r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=8, temperature=1.0,
                                      seed=seed, extra_body={"guided_choice": ["yes", "no"]})
        if r.choices[0].message.content not in ("yes", "no"):
            return r.choices[0].message.content
    return None


# ---- openai --------------------------------------------------------------------------------

def test_response_format(srv):
    c = client(srv)
    r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=64, seed=1, response_format={
        "type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER_PARAMS,
                                               "strict": True}})
    jsonschema.validate(json.loads(r.choices[0].message.content), WEATHER_PARAMS)
    r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=128, seed=2,
                                  response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict), r
    r = c.completions.create(model=M, prompt="weather:", max_tokens=64, seed=3,
                             extra_body={"guided_json": WEATHER_PARAMS})
    jsonschema.validate(json.loads(r.choices[0].text), WEATHER_PARAMS)


def test_regex_choice_grammar(srv):
    c = client(srv)
    for extra, check in (
            ({"guided_regex": "[0-9]{3}-[a-c]{2}"},
             lambda t: len(t) == 6 and t[:3].isdigit() and t[3] == "-" and set(t[4:]) <= set("abc")),
            ({"structured_outputs": {"regex": "(ab)+!"}},
             lambda t: t.endswith("!") and set(t[:-1]) <= set("ab") and len(t) % 2 == 1),
            ({"structured_outputs": {"choice": ["left", "right"]}}, lambda t: t in ("left", "right")),
            ({"guided_grammar": 'root ::= "yes" | "no" | "maybe"'},
             lambda t: t in ("yes", "no", "maybe")),
            ({"structured_outputs": {"grammar": 'root ::= "x" [0-9]'}},
             lambda t: len(t) == 2 and t[0] == "x" and t[1].isdigit())):
        for seed in range(2):
            t = c.chat.completions.create(model=M, messages=MSGS, max_tokens=32, seed=seed,
                                          extra_body=extra).choices[0].message.content
            assert check(t), (extra, t)


NUMBERS = {
    "type": "object",
    "properties": {"ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                   "temp": {"type": "number", "minimum": -12.5, "maximum": 4.25e1},
                   "tiny": {"type": "number", "minimum": 1e-3, "maximum": 0.0125},
                   "step": {"type": "integer", "multipleOf": 5, "minimum": 0, "maximum": 50}},
    "required": ["ratio", "temp", "tiny", "step"], "additionalProperties": False,
}


def test_number_bounds(srv):
    """Decimal and exponent bounds, exclusive ones and multipleOf: every output validates
    (random weights and sampling at temperature 1 wander over the whole range)."""
    c = client(srv)
    for seed in range(4):
        r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=160, seed=seed,
                                      temperature=1.0, response_format={
                                          "type": "json_schema", "json_schema": {
                                              "name": "numbers", "schema": NUMBERS}})
        assert r.choices[0].finish_reason == "stop", r
        jsonschema.validate(json.loads(r.choices[0].message.content), NUMBERS)
    for bad_schema, keyword in (({"type": "number", "multipleOf": 0.25}, "multipleOf"),
                                ({"type": "number", "minimum": 2.5, "maximum": 1}, "minimum")):
        try:
            c.chat.completions.create(model=M, messages=MSGS, max_tokens=4,
                                      extra_body={"guided_json": bad_schema})
            raise AssertionError(f"{bad_schema} was accepted")
        except openai.BadRequestError as e:
            assert e.status_code == 400 and keyword in e.message, e.message


def test_invalid_guides_are_400(srv):
    c = client(srv)
    nested = "root ::= " + "(" * 8 + ".)?" + "){10}" * 7 + ' "c"'    # 10^7 stacks at start
    for extra, says in (({"guided_regex": "(unclosed"}, "regex"),
                        ({"guided_grammar": "root ::= undefined_rule"}, "undefined_rule"),
                        ({"guided_json": {"type": "no-such-type"}}, "no-such-type"),
                        ({"guided_grammar": nested}, "grammar: too ambiguous to follow")):
        try:
            c.chat.completions.create(model=M, messages=MSGS, max_tokens=4, extra_body=extra)
            raise AssertionError(f"{extra} was accepted")
        except openai.BadRequestError as e:
            assert e.status_code == 400 and says in e.message, e


# Tens of thousands of parse stacks live in 41 classes of characters once past "ab" (`.*`
# or one of 40 pairs of letters): each token mask would take seconds, stalling every
# request's step. The engine stops the walk at its budget and ends the sample with the
# reason.
AMBIGUOUS = ('root ::= "a" [b-j] (.*' +
             "".join(f" | [\\u{0x100 + 2 * i:04x}-\\u{0x101 + 2 * i:04x}]" for i in range(40)) +
             "){2000}")


def test_too_ambiguous_grammar_fails_alone(srv):
    """A 400 with the reason, plain and streamed, while a request beside it is served whole;
    the server goes on serving."""
    import threading
    c = client(srv)
    beside = {}

    def free():
        r = c.completions.create(model=M, prompt="Once upon a time", max_tokens=24,
                                 temperature=0, extra_body={"ignore_eos": True})
        beside["r"] = r
    t = threading.Thread(target=free)
    t.start()
    try:
        c.chat.completions.create(model=M, messages=MSGS, max_tokens=16,
                                  extra_body={"guided_grammar": AMBIGUOUS})
        raise AssertionError("the ambiguous grammar was served")
    except openai.BadRequestError as e:
        assert e.status_code == 400 and "grammar: too ambiguous to follow" in e.message, e
    t.join()
    r = beside["r"]
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 24, r
    try:
        for _ in c.chat.completions.create(model=M, messages=MSGS, max_tokens=16, stream=True,
                                           extra_body={"guided_grammar": AMBIGUOUS}):
            pass
        raise AssertionError("the ambiguous grammar was streamed")
    except openai.APIError as e:
        assert "grammar: too ambiguous to follow" in e.message, e
        assert e.body.get("code") == 400, e.body
    t = c.chat.completions.create(model=M, messages=MSGS, max_tokens=8,
                                  extra_body={"guided_choice": ["left", "right"]})
    assert t.choices[0].message.content in ("left", "right"), t


def test_parse_pydantic(srv):
    r = client(srv).chat.completions.parse(model=M, messages=MSGS, max_tokens=64, seed=4,
                                           response_format=Weather)
    w = r.choices[0].message.parsed
    assert isinstance(w, Weather), r


def test_tool_choice_required_and_named(srv):
    c = client(srv)
    r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=400, seed=5, tools=TOOLS,
                                  tool_choice="required")
    ch = r.choices[0]
    assert ch.finish_reason == "tool_calls" and ch.message.tool_calls, ch
    for tc in ch.message.tool_calls:
        assert tc.id.startswith("call_") and tc.type == "function"
        check_call(tc.function.name, tc.function.arguments)
    r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=128, seed=6, tools=TOOLS,
                                  tool_choice="required", parallel_tool_calls=False)
    assert len(r.choices[0].message.tool_calls) == 1, r
    r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=64, seed=7, tools=TOOLS,
                                  tool_choice={"type": "function",
                                               "function": {"name": "get_time"}})
    calls = r.choices[0].message.tool_calls
    assert len(calls) == 1 and calls[0].function.name == "get_time", r
    check_call("get_time", calls[0].function.arguments)
    # the calls go back into the history, with the tool's answer, through the template
    msgs = MSGS + [r.choices[0].message.model_dump(exclude_none=True),
                   {"role": "tool", "tool_call_id": calls[0].id, "content": "12:00"}]
    r = c.chat.completions.create(model=M, messages=msgs, max_tokens=4)
    assert r.choices[0].finish_reason in ("length", "stop")


def reassemble(chunks):
    """OpenAI's streamed tool calls: by index, the id, type and name first, then arguments."""
    calls = {}
    for ch in chunks:
        for d in ch.choices[0].delta.tool_calls or []:
            if d.index not in calls:
                assert d.id and d.id.startswith("call_") and d.type == "function", d
                assert d.function.name, d
                calls[d.index] = {"name": d.function.name, "arguments": ""}
            calls[d.index]["arguments"] += d.function.arguments or ""
    return [calls[i] for i in sorted(calls)]


def test_streamed_tool_calls(srv):
    c = client(srv)
    chunks = list(c.chat.completions.create(model=M, messages=MSGS, max_tokens=400, seed=5,
                                            tools=TOOLS, tool_choice="required", stream=True))
    calls = reassemble(chunks)
    plain = c.chat.completions.create(model=M, messages=MSGS, max_tokens=400, seed=5,
                                      tools=TOOLS, tool_choice="required")
    assert [(x["name"], x["arguments"]) for x in calls] == \
        [(t.function.name, t.function.arguments) for t in plain.choices[0].message.tool_calls]
    for x in calls:
        check_call(x["name"], x["arguments"])
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


HERMES_REGEX = (r'<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "(Paris|Rome)", '
                r'"days": [1-9]\}\}\n</tool_call>')


def test_auto_hermes_end_to_end(srv):
    """tool_choice auto: the model's own <tool_call> syntax (forced here by a regex, since
    random weights never write it) is parsed into tool_calls, plain and streamed."""
    c = client(srv)
    kw = dict(model=M, messages=MSGS, max_tokens=200, seed=8, tools=TOOLS,
              extra_body={"guided_regex": HERMES_REGEX})
    r = c.chat.completions.create(**kw)
    m = r.choices[0].message
    assert m.content is None and len(m.tool_calls) == 1, m
    check_call(m.tool_calls[0].function.name, m.tool_calls[0].function.arguments)
    assert r.choices[0].finish_reason == "tool_calls"
    chunks = list(c.chat.completions.create(stream=True, **kw))
    assert reassemble(chunks) == [{"name": m.tool_calls[0].function.name,
                                   "arguments": m.tool_calls[0].function.arguments}]
    assert not "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)


def test_reasoning_end_to_end(srv):
    c = client(srv)
    kw = dict(model=M, messages=MSGS, max_tokens=100, seed=9,
              extra_body={"guided_regex": "<think>[a-z]{1,8}</think>(yes|no)"})
    m = c.chat.completions.create(**kw).choices[0].message
    assert m.content in ("yes", "no") and m.reasoning_content.isalpha(), m
    chunks = list(c.chat.completions.create(stream=True, **kw))
    r = "".join(getattr(ch.choices[0].delta, "reasoning_content", None) or ""
                for ch in chunks if ch.choices)
    t = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert (r, t) == (m.reasoning_content, m.content), (r, t, m)


def test_responses_tools(srv):
    r = client(srv).responses.create(
        model=M, input="weather in Rome?", max_output_tokens=128,
        tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMS}],
        tool_choice="required", parallel_tool_calls=False)
    calls = [o for o in r.output if o.type == "function_call"]
    assert calls and calls[0].call_id.startswith("call_"), r
    check_call(calls[0].name, calls[0].arguments)


# ---- langchain, litellm ---------------------------------------------------------------------

def test_langchain(srv):
    from langchain_openai import ChatOpenAI
    llm = ChatOpenAI(model=M, base_url=srv.url + "/v1", api_key="none", max_tokens=128,
                     seed=10, max_retries=0)
    for method in ("function_calling", "json_schema"):
        w = llm.with_structured_output(Weather, method=method).invoke("weather in Oslo?")
        assert isinstance(w, Weather), (method, w)
    # json_mode constrains to any JSON object, whose length under random weights is the draw's
    # (a string closes only when its quote is drawn among thousands of tokens): greedy, this
    # prompt's object closes within the budget, whatever the sampler's draw order.
    free = ChatOpenAI(model=M, base_url=srv.url + "/v1", api_key="none", max_tokens=128,
                      temperature=0, max_retries=0)
    o = free.with_structured_output(AnyObject, method="json_mode").invoke("answer in JSON")
    assert isinstance(o, AnyObject), o

    def get_weather(city: Literal["Paris", "Rome", "Oslo"], days: int) -> str:
        """The weather in a city for some days."""
        return "sunny"
    msg = llm.bind_tools([get_weather], tool_choice="required",
                         parallel_tool_calls=False).invoke("weather?")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather", msg
    assert msg.tool_calls[0]["args"]["city"] in ("Paris", "Rome", "Oslo"), msg


def test_litellm(srv):
    import litellm
    r = litellm.completion(model="openai/" + M, api_base=srv.url + "/v1", api_key="none",
                           messages=MSGS, tools=TOOLS, tool_choice="required", max_tokens=128,
                           seed=11, parallel_tool_calls=False)
    calls = r.choices[0].message.tool_calls
    assert calls, r
    for tc in calls:
        check_call(tc.function.name, tc.function.arguments)


def main():
    srv = suite.start_server("--tool-call-parser", "hermes", "--enable-auto-tool-choice",
                             "--reasoning-parser", "qwen3")
    loose = constrained(srv)
    if loose is not None:
        srv.stop()
        print(f"SKIP: constrained decoding is not in this build: a guided_choice "
              f"[\"yes\", \"no\"] request answered {loose!r} (runtime/grammar/ applies "
              f"guides in the engine; the request side is tested by test_http_fields.py)")
        print("[====] Synthesis: Tested: 0 | Passing: 0 | Failing: 0 | Crashing: 0")
        sys.exit(77)
    for t in (test_response_format, test_regex_choice_grammar, test_number_bounds,
              test_invalid_guides_are_400, test_too_ambiguous_grammar_fails_alone,
              test_parse_pydantic, test_tool_choice_required_and_named,
              test_streamed_tool_calls, test_auto_hermes_end_to_end, test_reasoning_end_to_end,
              test_responses_tools, test_langchain, test_litellm):
        suite.run(t, srv)

    def test_clean_exit():
        h.wait_idle(srv.port)
        assert srv.stop() == 0, srv.log()
    suite.run(test_clean_exit)
    suite.finish()


if __name__ == "__main__":
    main()
