#!/usr/bin/env python3
"""Every request field of vLLM's ChatCompletionRequest and CompletionRequest (and the OpenAI-
only ones) against a real `pagoda serve` (tiny-chat): each is honoured (its effect checked),
refused (a 400 naming it) or ignored (named in the server's warning, with unknown fields).
Also the endpoints of issue 19: /ping, /v1/models/{id}, /tokenize return_token_strs,
/v1/responses (plain and streamed), chat n > 1 streamed, and \\u0000 in JSON strings."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_fields")
(openai,) = suite.need("openai")

M = "tiny-chat"
PROMPT = "the quick brown fox"
MSGS = [{"role": "user", "content": "hello, how are you?"}]
LONG = "the quick brown fox jumps over the lazy dog " * 4   # > one KV block of tokens

# vLLM's request fields (vllm/entrypoints/openai/protocol.py), by endpoint: the table below
# must say what pagoda does with each.
VLLM_CHAT = """messages model frequency_penalty logit_bias logprobs top_logprobs max_tokens
max_completion_tokens n presence_penalty response_format seed stop stream stream_options
temperature top_p tools tool_choice reasoning_effort include_reasoning parallel_tool_calls user
best_of use_beam_search top_k min_p repetition_penalty length_penalty stop_token_ids
include_stop_str_in_output ignore_eos min_tokens skip_special_tokens
spaces_between_special_tokens truncate_prompt_tokens prompt_logprobs allowed_token_ids
bad_words echo add_generation_prompt continue_final_message add_special_tokens documents
chat_template chat_template_kwargs mm_processor_kwargs guided_json guided_regex guided_choice
guided_grammar structural_tag guided_decoding_backend guided_whitespace_pattern priority
request_id logits_processors return_tokens_as_token_ids cache_salt kv_transfer_params
vllm_xargs structured_outputs""".split()
VLLM_COMPLETIONS = """model prompt prompt_embeds best_of echo frequency_penalty logit_bias
logprobs max_tokens n presence_penalty seed stop stream stream_options suffix temperature top_p
user use_beam_search top_k min_p repetition_penalty length_penalty stop_token_ids
include_stop_str_in_output ignore_eos min_tokens skip_special_tokens
spaces_between_special_tokens truncate_prompt_tokens allowed_token_ids prompt_logprobs
add_special_tokens response_format guided_json guided_regex guided_choice guided_grammar
guided_decoding_backend guided_whitespace_pattern priority request_id logits_processors
return_tokens_as_token_ids cache_salt kv_transfer_params vllm_xargs""".split()

# Refused: a non-default value is a 400 naming the field.
REFUSED = {
    "use_beam_search": True, "length_penalty": 2.0, "spaces_between_special_tokens": False,
    "logits_processors": ["my.Processor"], "structural_tag": "{}",
    "guided_whitespace_pattern": " *", "kv_transfer_params": {"do_remote_decode": True},
    "vllm_xargs": {"a": 1},
}
REFUSED_CHAT = {"documents": [{"title": "t", "text": "x"}], "functions": [{"name": "f"}],
                "function_call": "auto", "audio": {"voice": "alloy"}}
REFUSED_COMPLETIONS = {"suffix": "def f():", "prompt_embeds": "AAAA"}
# Ignored: accepted, named in the request's warning.
IGNORED = {"user": "u1", "store": True, "metadata": {"k": "v"}, "service_tier": "auto",
           "mm_processor_kwargs": {}, "guided_decoding_backend": "xgrammar",
           "prompt_cache_key": "k", "safety_identifier": "s"}
IGNORED_CHAT = {"reasoning_effort": "low", "modalities": ["text"], "verbosity": "low",
                "prediction": {"type": "content", "content": "x"},
                "web_search_options": {}}


def post(srv, path, body):
    st, _, b = h.post(srv.port, path, body)
    return st, json.loads(b)


def chat(srv, **kw):
    body = {"model": M, "messages": MSGS, "max_tokens": 6, "temperature": 0, "ignore_eos": True}
    body.update(kw)
    return post(srv, "/v1/chat/completions", body)


def cmpl(srv, **kw):
    body = {"model": M, "prompt": PROMPT, "max_tokens": 6, "temperature": 0, "ignore_eos": True}
    body.update(kw)
    return post(srv, "/v1/completions", body)


def ok(r):
    st, b = r
    assert st == 200, (st, b)
    return b


def bad(r, param, text=None):
    st, b = r
    assert st == 400, (st, b)
    assert b["error"]["param"] == param, (param, b)
    if text:
        assert text in b["error"]["message"], (text, b)
    return b


def tokenize(srv, **body):
    return ok(post(srv, "/tokenize", body))["tokens"]


def text(b, i=0):
    ch = b["choices"][i]
    return ch["message"]["content"] if "message" in ch else ch["text"]


# ---- honoured: each field's effect --------------------------------------------------------

def h_model(srv):
    st, b = chat(srv, model="nope")
    assert st == 404 and b["error"]["code"] == "model_not_found", b


def h_sampling_ranges(srv):
    for f, v in (("frequency_penalty", 3), ("presence_penalty", -3), ("repetition_penalty", 0),
                 ("temperature", -1), ("top_p", 0), ("min_p", 2), ("top_k", -2), ("n", 0),
                 ("seed", "x"), ("min_tokens", -1), ("max_tokens", 0),
                 ("max_completion_tokens", 0)):
        bad(chat(srv, **{f: v}), f)
        if f != "max_completion_tokens":
            bad(cmpl(srv, **{f: v}), f)


def h_greedy_equivalents(srv):
    g = text(ok(cmpl(srv, max_tokens=10)))
    for kw in ({"top_k": 1}, {"top_p": 1e-6}, {"min_p": 1.0}):
        assert text(ok(cmpl(srv, max_tokens=10, temperature=1.0, seed=3, **kw))) == g, kw
    assert text(ok(cmpl(srv, max_tokens=16, frequency_penalty=2.0))) != text(ok(cmpl(
        srv, max_tokens=16))), "frequency_penalty changes a repetitive greedy answer"
    assert text(ok(cmpl(srv, max_tokens=16, presence_penalty=2.0))) != text(ok(cmpl(
        srv, max_tokens=16))), "presence_penalty changes a repetitive greedy answer"
    assert text(ok(cmpl(srv, max_tokens=16, repetition_penalty=5.0))) != text(ok(cmpl(
        srv, max_tokens=16))), "repetition_penalty changes a repetitive greedy answer"


def h_seed_n_max_tokens(srv):
    a = ok(chat(srv, temperature=1.0, seed=5, n=3, max_tokens=7))
    b = ok(chat(srv, temperature=1.0, seed=5, n=3, max_tokens=7))
    assert [text(a, i) for i in range(3)] == [text(b, i) for i in range(3)]
    assert len(a["choices"]) == 3 and a["usage"]["completion_tokens"] == 21, a["usage"]
    b = ok(chat(srv, max_completion_tokens=4, max_tokens=9))
    assert b["usage"]["completion_tokens"] == 4, "max_completion_tokens wins"


def h_logit_bias_stop(srv):
    x = tokenize(srv, prompt="x")[0]
    b = ok(cmpl(srv, logit_bias={str(x): 100}, max_tokens=5))
    assert text(b) == "xxxxx", b
    b = ok(cmpl(srv, logit_bias={str(x): 100}, max_tokens=8, stop=["xx"]))
    assert text(b) == "" and b["choices"][0]["finish_reason"] == "stop", b
    b = ok(cmpl(srv, logit_bias={str(x): 100}, max_tokens=8, stop=["xx"],
                include_stop_str_in_output=True))
    assert text(b) == "xx", b
    b = ok(cmpl(srv, logit_bias={str(x): 100}, max_tokens=8, stop_token_ids=[x], min_tokens=2,
                ignore_eos=False))
    assert b["usage"]["completion_tokens"] == 3 and b["choices"][0]["finish_reason"] == "stop"
    eos = tokenize(srv, prompt="<|im_end|>")[0]
    b = ok(cmpl(srv, logit_bias={str(eos): 100}, max_tokens=3, skip_special_tokens=False))
    assert b["choices"][0]["finish_reason"] == "length" and text(b) == "<|im_end|>" * 3, b
    b = ok(cmpl(srv, logit_bias={str(eos): 100}, max_tokens=3, ignore_eos=False))
    assert b["choices"][0]["finish_reason"] == "stop" and text(b) == "", b


def h_logprobs(srv):
    b = ok(chat(srv, logprobs=True, top_logprobs=3))
    lp = b["choices"][0]["logprobs"]["content"]
    assert len(lp) == 6 and all(len(e["top_logprobs"]) == 3 for e in lp), lp
    bad(chat(srv, top_logprobs=2), "top_logprobs")
    b = ok(cmpl(srv, logprobs=2))
    assert len(b["choices"][0]["logprobs"]["tokens"]) == 6
    b = ok(cmpl(srv, logprobs=0, return_tokens_as_token_ids=True))
    assert all(t.startswith("token_id:") for t in b["choices"][0]["logprobs"]["tokens"]), b
    b = ok(chat(srv, logprobs=True, return_tokens_as_token_ids=True))
    assert all(e["token"].startswith("token_id:") for e in b["choices"][0]["logprobs"]["content"])


def h_prompt_logprobs(srv):
    n = len(tokenize(srv, prompt=PROMPT))
    b = ok(cmpl(srv, prompt_logprobs=2))
    pl = b["choices"][0]["prompt_logprobs"]
    assert len(pl) == n and pl[0] is None and all(1 <= len(p) <= 3 for p in pl[1:]), pl
    assert all("logprob" in v and "rank" in v and "decoded_token" in v
               for p in pl[1:] for v in p.values())
    b = ok(chat(srv, prompt_logprobs=0))
    assert len(b["prompt_logprobs"]) == b["usage"]["prompt_tokens"], b["prompt_logprobs"]
    bad(chat(srv, prompt_logprobs=1, stream=True), "prompt_logprobs")


def h_best_of(srv):
    b = ok(cmpl(srv, best_of=4, n=2, temperature=1.0, seed=1, logprobs=0))
    assert len(b["choices"]) == 2 and [c["index"] for c in b["choices"]] == [0, 1], b

    def cum(c):
        return sum(c["logprobs"]["token_logprobs"])
    assert cum(b["choices"][0]) >= cum(b["choices"][1]), "best first"
    # the two returned are the best two of the four sampled with that seed
    four = ok(cmpl(srv, n=4, temperature=1.0, seed=1, logprobs=0))
    best = sorted((cum(c) for c in four["choices"]), reverse=True)[:2]
    assert [round(cum(c), 3) for c in b["choices"]] == [round(x, 3) for x in best], (b, four)
    bad(cmpl(srv, best_of=1, n=2), "best_of")
    bad(cmpl(srv, best_of=3, stream=True), "best_of")
    assert len(ok(chat(srv, best_of=2, temperature=1.0))["choices"]) == 1


def h_echo(srv):
    b = ok(cmpl(srv, echo=True))
    assert text(b).startswith(PROMPT), b
    msgs = MSGS + [{"role": "assistant", "content": "I am"}]
    b = ok(chat(srv, messages=msgs, echo=True, add_generation_prompt=False,
                continue_final_message=True))
    assert text(b).startswith("I am") and len(text(b)) > 4, b


def h_template_switches(srv):
    with_gen = len(tokenize(srv, messages=MSGS))
    without = len(tokenize(srv, messages=MSGS, add_generation_prompt=False))
    assert with_gen == without + len(tokenize(srv, prompt="<|im_start|>assistant\n"))
    msgs = MSGS + [{"role": "assistant", "content": "I am"}]
    closed = len(tokenize(srv, messages=msgs, add_generation_prompt=False))
    cont = len(tokenize(srv, messages=msgs, continue_final_message=True))
    assert cont == closed - len(tokenize(srv, prompt="<|im_end|>\n")), (cont, closed)
    bad(post(srv, "/tokenize", {"messages": msgs, "continue_final_message": True,
                                "add_generation_prompt": True}), "continue_final_message")
    plain = len(tokenize(srv, prompt=PROMPT))
    assert len(tokenize(srv, prompt=PROMPT, add_special_tokens=False)) <= plain
    bad(chat(srv, chat_template="{{ messages }}"), "chat_template",
        "--trust-request-chat-template")
    bad(chat(srv, chat_template_kwargs=[1]), "chat_template_kwargs")


def h_truncate(srv):
    b = ok(cmpl(srv, truncate_prompt_tokens=3))
    assert b["usage"]["prompt_tokens"] == 3, b["usage"]
    b = ok(chat(srv, truncate_prompt_tokens=5))
    assert b["usage"]["prompt_tokens"] == 5, b["usage"]
    bad(cmpl(srv, truncate_prompt_tokens=0), "truncate_prompt_tokens")
    bad(cmpl(srv, truncate_prompt_tokens=100000), "truncate_prompt_tokens")


def h_allowed_bad(srv):
    ids = tokenize(srv, prompt="ab")
    b = ok(cmpl(srv, allowed_token_ids=ids, temperature=1.0, seed=2, max_tokens=12, logprobs=0))
    got = [int(t.split(":")[1]) for t in
           ok(cmpl(srv, allowed_token_ids=ids, temperature=1.0, seed=2, max_tokens=12,
                   logprobs=0, return_tokens_as_token_ids=True))["choices"][0]["logprobs"]
           ["tokens"]]
    assert set(got) <= set(ids), (got, ids)
    assert set(text(b)) <= set("ab"), text(b)
    bad(cmpl(srv, allowed_token_ids=[]), "allowed_token_ids")
    bad(cmpl(srv, allowed_token_ids=[10 ** 9]), "allowed_token_ids")
    # a word of one token with and without its leading space: both spellings are banned
    word = next(w for w in ("the", "a", "and", "to", "of", "in", "he", "it", "is")
                if len(tokenize(srv, prompt=w, add_special_tokens=False)) == 1
                and len(tokenize(srv, prompt=" " + w, add_special_tokens=False)) == 1)
    ids = [tokenize(srv, prompt=v, add_special_tokens=False)[0] for v in (word, " " + word)]
    bias = {str(t): 100 for t in ids}
    b = ok(cmpl(srv, logit_bias=bias, max_tokens=4, logprobs=0,
                return_tokens_as_token_ids=True))
    assert any(int(t.split(":")[1]) in ids for t in b["choices"][0]["logprobs"]["tokens"])
    b = ok(cmpl(srv, logit_bias=bias, bad_words=[word], max_tokens=8, logprobs=0,
                return_tokens_as_token_ids=True))
    got = [int(t.split(":")[1]) for t in b["choices"][0]["logprobs"]["tokens"]]
    assert not set(got) & set(ids), (word, got, ids)
    # a word of two tokens: its second token never follows its first; the first alone stays.
    # The word: the first pair of letters of two tokens that the bias makes the model write
    # (random weights: for some pairs one token outweighs the other even at +100 each).
    def ids_of(bias, **kw):
        r = ok(cmpl(srv, logit_bias=bias, max_tokens=32, temperature=1.0, logprobs=0,
                    return_tokens_as_token_ids=True, **kw))
        return [int(t.split(":")[1]) for t in r["choices"][0]["logprobs"]["tokens"]]

    def adjacent(ids, a, b):
        return sum(1 for x, y in zip(ids, ids[1:]) if (x, y) == (a, b))
    for word in (x + y for x in "qxz" for y in "abcdefghijklmnopqrstuvwxyz"):
        pair = tokenize(srv, prompt=word, add_special_tokens=False)
        if len(pair) != 2 or pair[0] == pair[1]:
            continue
        a, b2 = pair
        bias = {str(a): 100, str(b2): 100}
        if sum(adjacent(ids_of(bias, seed=s), a, b2) for s in range(3)) > 0:
            break
    else:
        raise AssertionError("no two-token word the bias makes the model write")
    banned = [ids_of(bias, seed=s, bad_words=[word]) for s in range(3)]
    assert all(set(t) <= {a, b2} for t in banned), banned
    assert sum(adjacent(t, a, b2) for t in banned) == 0, (word, banned)
    assert any(a in t for t in banned), (word, banned)
    bad(cmpl(srv, bad_words=["  "]), "bad_words", "non-empty")
    bad(cmpl(srv, bad_words="word"), "bad_words", "list")


def h_stream_options(srv):
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    chunks = list(c.chat.completions.create(
        model=M, messages=MSGS, max_tokens=5, stream=True, temperature=0,
        stream_options={"include_usage": True, "continuous_usage_stats": True},
        extra_body={"ignore_eos": True}))
    assert all(ch.usage is not None for ch in chunks), chunks
    assert chunks[-1].usage.completion_tokens == 5
    chunks = list(c.completions.create(model=M, prompt=PROMPT, max_tokens=5, stream=True,
                                       stream_options={"include_usage": True}))
    assert all(ch.usage is None for ch in chunks[:-1]) and chunks[-1].usage is not None
    bad(chat(srv, stream_options={"include_usage": True}), "stream_options")


def h_priority_salt_id(srv):
    ok(chat(srv, priority=-5))
    bad(chat(srv, priority="high"), "priority")
    b = ok(chat(srv, request_id="abc-123"))
    assert b["id"] == "chatcmpl-abc-123", b["id"]
    assert ok(cmpl(srv, request_id="r9"))["id"] == "cmpl-r9"
    ok(cmpl(srv, prompt=LONG, max_tokens=1))
    again = ok(cmpl(srv, prompt=LONG, max_tokens=1))
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] > 0, again["usage"]
    salted = ok(cmpl(srv, prompt=LONG, max_tokens=1, cache_salt="s3cret"))
    assert salted["usage"]["prompt_tokens_details"]["cached_tokens"] == 0, salted["usage"]
    bad(cmpl(srv, cache_salt=""), "cache_salt")


def h_structured_requests(srv):
    """What the request side checks; the constrained output itself is
    test_http_structured.py's."""
    bad(chat(srv, response_format={"type": "bogus"}), "response_format.type")
    bad(chat(srv, response_format={"type": "json_schema"}), "response_format.json_schema")
    bad(chat(srv, response_format={"type": "json_object"}, guided_regex="a+"), "guided_regex")
    bad(chat(srv, guided_json=5), "guided_json")
    bad(chat(srv, guided_json="{not json"), "guided_json")
    bad(chat(srv, guided_choice=[]), "guided_choice")
    bad(chat(srv, guided_regex=""), "guided_regex")
    bad(cmpl(srv, guided_grammar=3), "guided_grammar")
    bad(chat(srv, structured_outputs={"regex": "a", "choice": ["a"]}), "structured_outputs.choice")
    bad(chat(srv, structured_outputs=[1]), "structured_outputs")
    ok(chat(srv, response_format={"type": "text"}))
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    bad(chat(srv, tools=[{"type": "function"}]), "tools")
    bad(chat(srv, tool_choice="required"), "tool_choice")
    bad(chat(srv, tools=tools), "tool_choice", "--enable-auto-tool-choice")
    bad(chat(srv, tools=tools, tool_choice={"type": "function", "function": {"name": "g"}}),
        "tool_choice")
    bad(chat(srv, tools=tools, tool_choice="sometimes"), "tool_choice")
    bad(chat(srv, tools=tools, tool_choice="required", parallel_tool_calls="no"),
        "parallel_tool_calls")
    bad(chat(srv, tools=tools, tool_choice="required", guided_regex="a"), "tool_choice")
    ok(chat(srv, tools=tools, tool_choice="none"))


HONOURED = {
    "model": h_model, "messages": h_template_switches, "prompt": h_echo,
    "frequency_penalty": h_greedy_equivalents, "presence_penalty": h_greedy_equivalents,
    "repetition_penalty": h_greedy_equivalents, "top_k": h_greedy_equivalents,
    "top_p": h_greedy_equivalents, "min_p": h_greedy_equivalents,
    "temperature": h_sampling_ranges, "logit_bias": h_logit_bias_stop, "stop": h_logit_bias_stop,
    "include_stop_str_in_output": h_logit_bias_stop, "stop_token_ids": h_logit_bias_stop,
    "min_tokens": h_logit_bias_stop, "ignore_eos": h_logit_bias_stop,
    "skip_special_tokens": h_logit_bias_stop, "logprobs": h_logprobs,
    "top_logprobs": h_logprobs, "return_tokens_as_token_ids": h_logprobs,
    "max_tokens": h_seed_n_max_tokens, "max_completion_tokens": h_seed_n_max_tokens,
    "n": h_seed_n_max_tokens, "seed": h_seed_n_max_tokens, "prompt_logprobs": h_prompt_logprobs,
    "best_of": h_best_of, "echo": h_echo, "add_generation_prompt": h_template_switches,
    "continue_final_message": h_template_switches, "add_special_tokens": h_template_switches,
    "chat_template": h_template_switches, "chat_template_kwargs": h_template_switches,
    "truncate_prompt_tokens": h_truncate, "allowed_token_ids": h_allowed_bad,
    "bad_words": h_allowed_bad, "stream": h_stream_options, "stream_options": h_stream_options,
    "priority": h_priority_salt_id, "request_id": h_priority_salt_id,
    "cache_salt": h_priority_salt_id, "response_format": h_structured_requests,
    "guided_json": h_structured_requests, "guided_regex": h_structured_requests,
    "guided_choice": h_structured_requests, "guided_grammar": h_structured_requests,
    "structured_outputs": h_structured_requests, "tools": h_structured_requests,
    "tool_choice": h_structured_requests, "parallel_tool_calls": h_structured_requests,
    # with a reasoning parser: test_reasoning_server below
    "include_reasoning": None,
}


def test_table_covers_vllm(srv):
    known = set(HONOURED) | set(REFUSED) | set(REFUSED_CHAT) | set(REFUSED_COMPLETIONS) | \
        set(IGNORED) | set(IGNORED_CHAT)
    missing = [f for f in VLLM_CHAT + VLLM_COMPLETIONS if f not in known]
    assert not missing, missing


def test_honoured(srv):
    for fn in dict.fromkeys(f for f in HONOURED.values() if f):
        fn(srv)


def test_refused(srv):
    for f, v in REFUSED.items():
        bad(chat(srv, **{f: v}), f, "not supported")
        bad(cmpl(srv, **{f: v}), f, "not supported")
    for f, v in REFUSED_CHAT.items():
        bad(chat(srv, **{f: v}), f, "not supported")
    for f, v in REFUSED_COMPLETIONS.items():
        bad(cmpl(srv, **{f: v}), f, "not supported")
    # their defaults are fine
    ok(chat(srv, use_beam_search=False, length_penalty=1.0, spaces_between_special_tokens=True,
            logits_processors=None, documents=None, vllm_xargs={}))
    ok(cmpl(srv, suffix=None))


def test_ignored_and_unknown_are_logged(srv):
    for i, (body, fn) in enumerate(((dict(IGNORED, **IGNORED_CHAT), chat), (IGNORED, cmpl))):
        ok(fn(srv, **{f"some_unknown_field_{i}": 1}, **body))
        line = srv.wait_for(f"some_unknown_field_{i}", 10)
        for f in body:
            assert f"'{f}'" in line, (f, line)
    # honoured fields are not named
    ok(chat(srv, seed=1, top_k=3, unknown_marker_x=1))
    line = srv.wait_for("unknown_marker_x", 10)
    assert "'seed'" not in line and "'top_k'" not in line, line


# ---- endpoints ------------------------------------------------------------------------------

def test_ping_and_model(srv):
    for send in (lambda: h.get(srv.port, "/ping"), lambda: h.post(srv.port, "/ping", {})):
        st, _, b = send()
        assert st == 200, (st, b)
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    m = c.models.retrieve(M)
    assert m.id == M and m.object == "model"
    try:
        c.models.retrieve("other-model")
        raise AssertionError("an unknown model is a 404")
    except openai.NotFoundError:
        pass


def test_tokenize_token_strs(srv):
    b = ok(post(srv, "/tokenize", {"prompt": "hello world", "return_token_strs": True}))
    assert len(b["token_strs"]) == len(b["tokens"]) == b["count"], b
    joined = "".join(b["token_strs"]).replace("\u0120", " ")
    assert joined == "hello world", b["token_strs"]
    assert "token_strs" not in ok(post(srv, "/tokenize", {"prompt": "hi"}))


def test_nul_in_strings(srv):
    raw = b'{"model": "tiny-chat", "prompt": "a\\u0000b", "max_tokens": 2}'
    st, _, body = h.post(srv.port, "/v1/completions", raw=raw)
    assert st == 200, body
    with_nul = tokenize(srv, prompt="a\u0000b")
    assert len(with_nul) == len(tokenize(srv, prompt="ab")) + 1, with_nul
    m_nul = tokenize(srv, messages=[{"role": "user", "content": "a\u0000b"}])
    m_plain = tokenize(srv, messages=[{"role": "user", "content": "ab"}])
    assert len(m_nul) == len(m_plain) + 1 and with_nul[1] in m_nul, (m_nul, m_plain)
    # an escaped backslash before u0000 is text, not a NUL
    lit = tokenize(srv, messages=[{"role": "user", "content": "a\\u0000b"}])
    assert with_nul[1] not in lit[len(m_plain) - 10:], lit
    ok(chat(srv, messages=[{"role": "user", "content": "x\u0000y"}]))


def test_chat_n_streaming(srv):
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    plain = c.chat.completions.create(model=M, messages=MSGS, max_tokens=6, n=3, seed=4,
                                      temperature=1.0, extra_body={"ignore_eos": True})
    chunks = list(c.chat.completions.create(model=M, messages=MSGS, max_tokens=6, n=3, seed=4,
                                            temperature=1.0, stream=True,
                                            extra_body={"ignore_eos": True}))
    texts, fins = {}, {}
    for ch in chunks:
        for choice in ch.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                fins[choice.index] = choice.finish_reason
    assert sorted(texts) == [0, 1, 2] and fins == {0: "length", 1: "length", 2: "length"}
    assert [texts[i] for i in range(3)] == [ch.message.content for ch in plain.choices]


def test_responses(srv):
    c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    r = c.responses.create(model=M, input="hello", instructions="be brief",
                           max_output_tokens=5, temperature=0, extra_body={"ignore_eos": True})
    assert r.id.startswith("resp_") and r.object == "response", r
    assert r.status == "incomplete" and r.usage.output_tokens == 5, r
    assert r.output[0].type == "message" and isinstance(r.output_text, str) and r.output_text
    chat_text = c.chat.completions.create(
        model=M, messages=[{"role": "system", "content": "be brief"},
                           {"role": "user", "content": "hello"}],
        max_tokens=5, temperature=0, extra_body={"ignore_eos": True}).choices[0].message.content
    assert r.output_text == chat_text, (r.output_text, chat_text)
    events = list(c.responses.create(model=M, input=[{"role": "user", "content": "hello"}],
                                     max_output_tokens=5, temperature=0, stream=True,
                                     instructions="be brief",
                                     extra_body={"ignore_eos": True}))
    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"], types
    assert types[-1] == "response.completed", types
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == chat_text, (deltas, chat_text)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.output_text == chat_text
    st, b = post(srv, "/v1/responses", {"input": "x", "previous_response_id": "resp_1"})
    assert st == 400 and b["error"]["param"] == "previous_response_id", b
    st, b = post(srv, "/v1/responses", {"input": 5})
    assert st == 400 and b["error"]["param"] == "input", b


# ---- servers with other settings ---------------------------------------------------------

def test_trusted_template_server():
    tpl = ("{% for m in messages %}[{{ m.role }}|{{ m.content }}]{% endfor %}"
           "{% if greeting %}{{ greeting }}{% endif %}")
    with h.Server("--trust-request-chat-template") as srv:
        n = len(tokenize(srv, messages=MSGS, chat_template=tpl))
        want = len(tokenize(srv, prompt="[user|hello, how are you?]", add_special_tokens=False))
        assert n == want, (n, want)
        k = len(tokenize(srv, messages=MSGS, chat_template=tpl,
                         chat_template_kwargs={"greeting": " hi there"}))
        assert k > n, "chat_template_kwargs reach the template"
        bad(chat(srv, chat_template="{% if %}"), "chat_template")
        assert srv.stop() == 0


def test_reasoning_server():
    """include_reasoning is honoured once a reasoning parser runs (the split itself is
    tests/unit/test_oai_parsers.c's, on canned answers)."""
    with h.Server("--reasoning-parser", "deepseek_r1") as srv:
        b = ok(chat(srv))
        msg = b["choices"][0]["message"]
        # deepseek_r1: an answer without </think> is all reasoning
        assert msg["content"] in ("", None) and msg["reasoning_content"], msg
        b = ok(chat(srv, include_reasoning=False))
        assert "reasoning_content" not in b["choices"][0]["message"], b
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        chunks = list(c.chat.completions.create(model=M, messages=MSGS, max_tokens=6,
                                                stream=True, temperature=0,
                                                extra_body={"ignore_eos": True}))
        streamed = "".join(getattr(ch.choices[0].delta, "reasoning_content", None) or ""
                           for ch in chunks if ch.choices)
        assert streamed == msg["reasoning_content"], (streamed, msg)
        assert srv.stop() == 0


def test_tool_history_server():
    """Assistant tool_calls and tool messages of the history, and the tools, reach the chat
    template (Qwen2.5's, from the fixtures) as vLLM passes them: arguments as objects."""
    import tempfile
    cfg = json.load(open(os.path.join(h.SRCDIR, "tests", "fixtures", "chat_templates",
                                      "qwen2.5-instruct", "tokenizer_config.json")))
    with tempfile.NamedTemporaryFile("w", suffix=".jinja", delete=False) as f:
        f.write(cfg["chat_template"])
    try:
        with h.Server("--chat-template", f.name) as srv:
            tools = [{"type": "function", "function": {
                "name": "get_weather", "description": "the weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
            msgs = MSGS + [
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "22C"}]
            ids = tokenize(srv, messages=msgs, tools=tools)
            prompt = ok(post(srv, "/detokenize", {"tokens": ids}))["prompt"]
            assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in prompt, \
                prompt
            assert ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
                    '</tool_call>') in prompt, prompt
            assert "<tool_response>\n22C\n</tool_response>" in prompt, prompt
            assert prompt.endswith("<|im_start|>assistant\n"), prompt
            assert srv.stop() == 0
    finally:
        os.unlink(f.name)


def test_auto_tool_choice_needs_a_parser():
    """"auto" needs both flags (each request says so: h_structured_requests); a parser
    pagoda does not have is refused at start."""
    with h.Server("--enable-auto-tool-choice") as srv:
        tools = [{"type": "function", "function": {"name": "f"}}]
        bad(chat(srv, tools=tools), "tool_choice", "--tool-call-parser")
        assert srv.stop() == 0
    try:
        h.Server("--tool-call-parser", "no-such-parser", timeout=60).stop()
        raise AssertionError("an unknown --tool-call-parser started")
    except RuntimeError as e:
        assert "no-such-parser" in str(e), e


def main():
    srv = suite.start_server()
    for t in (test_table_covers_vllm, test_honoured, test_refused,
              test_ignored_and_unknown_are_logged, test_ping_and_model,
              test_tokenize_token_strs, test_nul_in_strings, test_chat_n_streaming,
              test_responses):
        suite.run(t, srv)

    def test_clean_exit():
        h.wait_idle(srv.port)
        assert srv.stop() == 0, srv.log()
    suite.run(test_clean_exit)
    suite.run(test_trusted_template_server)
    suite.run(test_reasoning_server)
    suite.run(test_tool_history_server)
    suite.run(test_auto_tool_choice_needs_a_parser)
    suite.finish()


if __name__ == "__main__":
    main()
