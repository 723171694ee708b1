#!/usr/bin/env python3
"""The official `openai` Python package against a real `pagoda serve` (tiny-chat fixture):
both endpoints, streaming and not, n > 1, prompt lists and token ids, stop strings, seeds,
logprobs, echo, vLLM's sampling extras, and every error as the right exception class."""
import json
import os
import stat
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_openai")
(openai,) = suite.need("openai")

M = "tiny-chat"
PROMPT = "the quick brown fox"
MSGS = [{"role": "system", "content": "you are a helpful assistant."},
        {"role": "user", "content": "hello, how are you?"}]


def client(srv, key="none"):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0, timeout=60)


def tokenize(srv, prompt):
    st, _, body = h.post(srv.port, "/tokenize", {"prompt": prompt})
    assert st == 200, (st, body)
    return json.loads(body)["tokens"]


def greedy(c, prompt=PROMPT, n_tok=20, **kw):
    r = c.completions.create(model=M, prompt=prompt, max_tokens=n_tok, temperature=0,
                             extra_body={"ignore_eos": True}, **kw)
    return r.choices[0].text


# ---- tests ---------------------------------------------------------------------------------

def test_models(srv, c):
    ms = c.models.list()
    assert [m.id for m in ms.data] == [M], ms
    assert ms.data[0].object == "model"


def test_completion_plain(srv, c):
    t0 = time.time()
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=12, temperature=0,
                             extra_body={"ignore_eos": True})
    assert r.id.startswith("cmpl-") and r.object == "text_completion" and r.model == M
    assert abs(r.created - t0) < 60, (r.created, t0)
    assert len(r.choices) == 1 and r.choices[0].index == 0
    assert r.choices[0].finish_reason == "length", r.choices[0].finish_reason
    assert isinstance(r.choices[0].text, str) and r.choices[0].text
    n_prompt = len(tokenize(srv, PROMPT))
    assert r.usage.prompt_tokens == n_prompt, (r.usage, n_prompt)
    assert r.usage.completion_tokens == 12 and r.usage.total_tokens == n_prompt + 12, r.usage


def test_completion_stream_matches_plain(srv, c):
    plain = greedy(c, n_tok=16)
    chunks = list(c.completions.create(model=M, prompt=PROMPT, max_tokens=16, temperature=0,
                                       stream=True, stream_options={"include_usage": True},
                                       extra_body={"ignore_eos": True}))
    assert len({ch.id for ch in chunks}) == 1, "chunks of one stream share their id"
    text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
    assert text == plain, (text, plain)
    fins = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert fins[-1] == "length" and all(f is None for f in fins[:-1]), fins
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16, chunks[-1]
    assert all(ch.usage is None for ch in chunks[:-1])


def test_chat_plain_and_stream(srv, c):
    r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=10, temperature=0,
                                  extra_body={"ignore_eos": True})
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion"
    msg = r.choices[0].message
    assert msg.role == "assistant" and isinstance(msg.content, str)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 10
    # The chat template (ChatML) decides the prompt: count it through /tokenize.
    st, _, body = h.post(srv.port, "/tokenize", {"messages": MSGS})
    assert st == 200 and r.usage.prompt_tokens == json.loads(body)["count"], body
    chunks = list(c.chat.completions.create(model=M, messages=MSGS, max_tokens=10,
                                            temperature=0, stream=True,
                                            extra_body={"ignore_eos": True}))
    assert chunks[0].object == "chat.completion.chunk"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks)
    assert text == msg.content, (text, msg.content)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_generation_prompt(srv, c):
    """add_generation_prompt and list-of-parts content reach the template."""
    def count(body):
        st, _, b = h.post(srv.port, "/tokenize", body)
        assert st == 200, b
        return json.loads(b)["count"]
    with_gen = count({"messages": MSGS})
    without = count({"messages": MSGS, "add_generation_prompt": False})
    assert with_gen == without + len(tokenize(srv, "<|im_start|>assistant\n")), (with_gen, without)
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello,"},
                                          {"type": "text", "text": "how are you?"}]}]
    joined = [{"role": "user", "content": "hello,\nhow are you?"}]
    assert count({"messages": parts}) == count({"messages": joined})


def test_n_choices(srv, c):
    kw = dict(model=M, prompt=PROMPT, max_tokens=8, temperature=1.0, seed=7, n=3,
              extra_body={"ignore_eos": True})
    r = c.completions.create(**kw)
    assert sorted(ch.index for ch in r.choices) == [0, 1, 2]
    assert r.usage.completion_tokens == 24, r.usage
    assert len({ch.text for ch in r.choices}) > 1, "three samples should not all agree"
    texts = {0: "", 1: "", 2: ""}
    for ch in c.completions.create(stream=True, **kw):
        for cc in ch.choices:
            texts[cc.index] += cc.text
    assert texts == {ch.index: ch.text for ch in r.choices}, (texts, r.choices)
    rc = c.chat.completions.create(model=M, messages=MSGS, max_tokens=6, n=2, seed=3,
                                   extra_body={"ignore_eos": True})
    assert sorted(ch.index for ch in rc.choices) == [0, 1]


def test_prompt_list_and_ids(srv, c):
    prompts = ["once upon a time", "hello world"]
    r = c.completions.create(model=M, prompt=prompts, max_tokens=6, temperature=0, n=2,
                             extra_body={"ignore_eos": True})
    assert len(r.choices) == 4
    for ch in r.choices:
        assert ch.text == greedy(c, prompts[ch.index // 2], 6), ch
    ids = tokenize(srv, prompts[0])
    r1 = c.completions.create(model=M, prompt=ids, max_tokens=6, temperature=0,
                              extra_body={"ignore_eos": True})
    assert r1.choices[0].text == greedy(c, prompts[0], 6)
    r2 = c.completions.create(model=M, prompt=[ids, tokenize(srv, prompts[1])], max_tokens=6,
                              temperature=0, extra_body={"ignore_eos": True})
    assert [ch.text for ch in r2.choices] == [greedy(c, p, 6) for p in prompts]


def test_stop_strings(srv, c):
    full = greedy(c, n_tok=24)
    stop = full[4:7]
    cut = full.find(stop)
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop],
                             extra_body={"ignore_eos": True})
    assert r.choices[0].text == full[:cut], (r.choices[0].text, full, stop)
    assert r.choices[0].finish_reason == "stop"
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=24, temperature=0, stop=stop,
                             extra_body={"ignore_eos": True, "include_stop_str_in_output": True})
    assert r.choices[0].text == full[:cut + len(stop)], (r.choices[0].text, full, stop)
    text = "".join(ch.choices[0].text for ch in c.completions.create(
        model=M, prompt=PROMPT, max_tokens=24, temperature=0, stop=[stop], stream=True,
        extra_body={"ignore_eos": True}) if ch.choices)
    assert text == full[:cut], (text, full, stop)


def test_seeds(srv, c):
    def sample(seed):
        return c.completions.create(model=M, prompt=PROMPT, max_tokens=20, temperature=1.0,
                                    seed=seed, extra_body={"ignore_eos": True}).choices[0].text
    a, b, a2 = sample(1), sample(2), sample(1)
    assert a == a2, (a, a2)
    assert a != b, (a, b)
    cs = [c.chat.completions.create(model=M, messages=MSGS, max_tokens=12, seed=5,
                                    temperature=1.0).choices[0].message.content for _ in range(2)]
    assert cs[0] == cs[1], cs


def test_logprobs_completions(srv, c):
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=10, temperature=0, logprobs=3,
                             extra_body={"ignore_eos": True})
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 10
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert l <= 0 and 1 <= len(top) <= 3, (tok, l, top)
        assert abs(max(top.values()) - l) < 1e-5, "greedy picks the most likely token"
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0
    if r.choices[0].text.isascii():
        assert "".join(lp.tokens) == r.choices[0].text


def test_logprobs_chat(srv, c):
    r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=8, temperature=0,
                                  logprobs=True, top_logprobs=2, extra_body={"ignore_eos": True})
    content = r.choices[0].logprobs.content
    assert len(content) == 8
    for e in content:
        assert len(e.top_logprobs) == 2 and e.top_logprobs[0].token == e.token
        assert e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob
        assert bytes(e.bytes).decode("utf-8", "replace") == e.token
    chunks = list(c.chat.completions.create(model=M, messages=MSGS, max_tokens=8,
                                            temperature=0, logprobs=True, stream=True,
                                            extra_body={"ignore_eos": True}))
    streamed = [e for ch in chunks if ch.choices[0].logprobs for e in ch.choices[0].logprobs.content]
    assert [e.token for e in streamed] == [e.token for e in content]
    r = c.chat.completions.create(model=M, messages=MSGS, max_tokens=3)
    assert r.choices[0].logprobs is None


def test_echo(srv, c):
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=4, temperature=0, echo=True,
                             logprobs=1, extra_body={"ignore_eos": True})
    ch = r.choices[0]
    assert ch.text == PROMPT + greedy(c, n_tok=4), ch.text
    n_prompt = len(tokenize(srv, PROMPT))
    assert len(ch.logprobs.tokens) == n_prompt + 4
    assert ch.logprobs.token_logprobs[0] is None
    assert all(x is not None for x in ch.logprobs.token_logprobs[1:])
    s = "".join(x.choices[0].text for x in c.completions.create(
        model=M, prompt=PROMPT, max_tokens=4, temperature=0, echo=True, stream=True,
        extra_body={"ignore_eos": True}) if x.choices)
    assert s == ch.text, (s, ch.text)


def test_sampling_extras(srv, c):
    x = tokenize(srv, "x")[0]
    eos = tokenize(srv, "<|im_end|>")[0]
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=5, temperature=1.0, seed=1,
                             logit_bias={str(x): 100}, extra_body={"ignore_eos": True})
    assert r.choices[0].text == "xxxxx", r.choices[0].text
    # min_tokens keeps stop tokens out of the first 3 samples (vLLM): the 4th is x, a stop
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=8, logit_bias={str(x): 100},
                             extra_body={"stop_token_ids": [x], "min_tokens": 3})
    assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens == 4, r
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=8, logit_bias={str(eos): 100})
    assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens == 1, r
    assert r.choices[0].text == ""
    r = c.completions.create(model=M, prompt=PROMPT, max_tokens=3, logit_bias={str(eos): 100},
                             extra_body={"ignore_eos": True, "skip_special_tokens": False})
    assert r.choices[0].finish_reason == "length", r
    assert r.choices[0].text == "<|im_end|>" * 3, r.choices[0].text
    top1 = c.completions.create(model=M, prompt=PROMPT, max_tokens=12, temperature=1.0, seed=9,
                                extra_body={"top_k": 1, "ignore_eos": True}).choices[0].text
    assert top1 == greedy(c, n_tok=12)
    for extra in ({"min_p": 0.5}, {"repetition_penalty": 1.3}, {"top_p": 0.5}):
        r = c.completions.create(model=M, prompt=PROMPT, max_tokens=4, temperature=1.0,
                                 presence_penalty=0.5, frequency_penalty=0.5, user="u1",
                                 extra_body=dict(extra, ignore_eos=True))
        assert r.usage.completion_tokens == 4
    # repetition is what the penalties act on: a strong frequency penalty changes greedy
    assert c.completions.create(model=M, prompt=PROMPT, max_tokens=16, temperature=0,
                                frequency_penalty=2.0, extra_body={"ignore_eos": True}
                                ).choices[0].text != greedy(c, n_tok=16)


def expect(exc, fn, status=None, param=None, contains=None):
    try:
        fn()
    except exc as e:
        if status is not None:
            assert e.status_code == status, (e.status_code, status)
        body = e.body if isinstance(e.body, dict) else {}
        if param is not None:
            assert body.get("param") == param, (body, param)
        if contains is not None:
            assert contains in str(e), (str(e), contains)
        return e
    raise AssertionError(f"expected {exc.__name__}")


def test_errors(srv, c):
    cc = c.completions.create
    expect(openai.BadRequestError, lambda: cc(model=M, prompt=PROMPT, temperature=5), 400,
           "temperature")
    expect(openai.BadRequestError, lambda: cc(model=M, prompt=PROMPT, max_tokens=-1), 400,
           "max_tokens")
    expect(openai.BadRequestError, lambda: cc(model=M, prompt=PROMPT, n=0), 400, "n")
    expect(openai.BadRequestError, lambda: cc(model=M, prompt=PROMPT, logprobs=99), 400,
           "logprobs")
    expect(openai.BadRequestError, lambda: cc(model=M, prompt=PROMPT,
                                              extra_body={"max_tokens": "ten"}), 400,
           "max_tokens")
    expect(openai.BadRequestError, lambda: cc(model=M, prompt=[PROMPT, 3]), 400, "prompt")
    expect(openai.BadRequestError, lambda: cc(model=M, prompt=[1, 2, 99999]), 400, "prompt")
    e = expect(openai.BadRequestError, lambda: cc(model=M, prompt="a " * 600, max_tokens=10),
               400, "prompt", "maximum context length is 512 tokens")
    assert e.code == "context_length_exceeded", e.code
    expect(openai.BadRequestError, lambda: c.chat.completions.create(
        model=M, messages=MSGS, max_tokens=500), 400, "messages",
        "maximum context length is 512 tokens")
    expect(openai.BadRequestError, lambda: c.chat.completions.create(
        model=M, messages=MSGS, top_logprobs=2), 400, "top_logprobs")
    expect(openai.BadRequestError, lambda: c.chat.completions.create(
        model=M, messages=[{"role": "user", "content": 5}]), 400, "messages[0]")
    expect(openai.BadRequestError, lambda: c.chat.completions.create(
        model=M, messages=[]), 400, "messages")
    expect(openai.NotFoundError, lambda: cc(model="no-such-model", prompt=PROMPT), 404,
           "model")
    expect(openai.NotFoundError, lambda: c.post("/nowhere", cast_to=object, body={}), 404)
    # A stream that fails validation is a plain 400 before any event.
    expect(openai.BadRequestError, lambda: list(cc(model=M, prompt=PROMPT, stream=True,
                                                   top_p=0)), 400, "top_p")
    assert greedy(c, n_tok=3), "the server keeps serving after errors"


def test_api_key():
    with h.Server("--api-key", "sekret") as srv:
        expect(openai.AuthenticationError,
               lambda: client(srv, "wrong").completions.create(model=M, prompt=PROMPT), 401)
        r = client(srv, "sekret").completions.create(model=M, prompt=PROMPT, max_tokens=2)
        assert r.usage.completion_tokens >= 1
        assert h.get(srv.port, "/health")[0] == 200
        assert h.get(srv.port, "/metrics")[0] == 200
        assert h.get(srv.port, "/v1/models")[0] == 401
        assert srv.stop() == 0


def test_body_limit():
    with h.Server("--max-body-bytes", "2048") as srv:
        c = client(srv)
        e = expect(openai.APIStatusError, lambda: c.completions.create(
            model=M, prompt="a" * 5000, max_tokens=2), 413)
        assert e.body and "larger than the limit of 2048" in json.dumps(e.body), e.body
        assert c.completions.create(model=M, prompt=PROMPT, max_tokens=2).usage
        assert srv.stop() == 0


def test_loading_503():
    """While the model loads every model route answers 503 (config.json is a FIFO here, so
    the server waits for the test to feed it)."""
    with tempfile.TemporaryDirectory() as d:
        for f in os.listdir(h.TINY):
            if f != "config.json":
                os.symlink(os.path.join(h.TINY, f), os.path.join(d, f))
        cfg = os.path.join(d, "config.json")
        os.mkfifo(cfg)
        with open(os.path.join(h.TINY, "config.json"), "rb") as f:
            content = f.read()
        stop = threading.Event()

        def feed():   # every open of config.json by the server reads it whole
            while not stop.is_set():
                try:
                    fd = os.open(cfg, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:
                    time.sleep(0.01)
                    continue
                os.set_blocking(fd, True)
                os.write(fd, content)
                os.close(fd)
                time.sleep(0.05)
        srv = h.Server(model=d, wait_ready=False)
        try:
            c = client(srv)
            expect(openai.InternalServerError, lambda: c.completions.create(
                model="tiny-chat", prompt=PROMPT), 503, contains="loading")
            st, _, body = h.get(srv.port, "/health")
            assert st == 503 and json.loads(body)["error"]["type"] == "service_unavailable"
            assert h.get(srv.port, "/v1/models")[0] == 503
            assert h.get(srv.port, "/metrics")[0] == 200
            t = threading.Thread(target=feed, daemon=True)
            t.start()
            srv.wait_for("ready:")
            stop.set()
            assert h.get(srv.port, "/health")[0] == 200
            assert c.completions.create(model=os.path.basename(d), prompt=PROMPT,
                                        max_tokens=2).usage.completion_tokens >= 1
            assert srv.stop() == 0
        finally:
            stop.set()
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()


def test_model_without_tokenizer():
    """A checkpoint without tokenizer.json serves token-id prompts; text needs a tokenizer."""
    model = os.path.join(h.SRCDIR, "tests", "fixtures", "models", "llama-f32")
    with h.Server(model=model) as srv:
        c = client(srv)
        with open(os.path.join(model, "reference.json")) as f:
            case = json.load(f)["cases"][0]
        r = c.completions.create(model="llama-f32", prompt=case["prompt"], max_tokens=8,
                                 temperature=0, logprobs=0, extra_body={"ignore_eos": True})
        assert r.usage.prompt_tokens == len(case["prompt"]) and r.usage.completion_tokens == 8
        assert r.choices[0].text == "", "no tokenizer, no text"
        # Tokens are named by id: the greedy ids are transformers' reference continuation.
        want = [f"token_id:{t}" for t in case["native"]["greedy"][:8]]
        assert r.choices[0].logprobs.tokens == want, (r.choices[0].logprobs.tokens, want)
        expect(openai.BadRequestError, lambda: c.completions.create(
            model="llama-f32", prompt="hello"), 400, "prompt", "no tokenizer")
        expect(openai.BadRequestError, lambda: c.chat.completions.create(
            model="llama-f32", messages=MSGS), 400, "messages")
        expect(openai.BadRequestError, lambda: c.completions.create(
            model="llama-f32", prompt=[1, 2, 3], stop=["x"]), 400)
        assert srv.stop() == 0


def main():
    srv = suite.start_server()
    c = client(srv)
    for t in (test_models, test_completion_plain, test_completion_stream_matches_plain,
              test_chat_plain_and_stream, test_chat_generation_prompt, test_n_choices,
              test_prompt_list_and_ids, test_stop_strings, test_seeds, test_logprobs_completions,
              test_logprobs_chat, test_echo, test_sampling_extras, test_errors):
        suite.run(t, srv, c)

    def test_idle_and_clean_exit():
        h.wait_idle(srv.port)
        rc = srv.stop()
        assert rc == 0, f"exit status {rc}\n{srv.log()}"
    suite.run(test_idle_and_clean_exit)
    suite.run(test_api_key)
    suite.run(test_body_limit)
    suite.run(test_loading_503)
    suite.run(test_model_without_tokenizer)
    suite.finish()


if __name__ == "__main__":
    main()
