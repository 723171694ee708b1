#!/usr/bin/env python3
"""/v1/embeddings over a real socket: `pagoda serve --task embed` (and vLLM's --runner
pooling / --convert embed / --override-pooler-config spellings) answered to the `openai`
package and langchain-openai's OpenAIEmbeddings; the vectors of token-id inputs equal
transformers' final-norm hidden states (tests/fixtures/models/*/pooling_reference.json,
scripts/make_pooling_reference.py); strings, lists, token ids, base64; and the refusals
(dimensions, bad fields, chat and completions on an embed server, embeddings on a
generating one, the flags vLLM has that pagoda does not serve)."""
import base64
import json
import math
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_embeddings")
(openai,) = suite.need("openai")

M = "tiny-chat"
LLAMA = os.path.join(h.SRCDIR, "tests", "fixtures", "models", "llama-f32")
HIDDEN = 64


def client(srv):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=60)


def floats(c, inp, **kw):
    r = c.embeddings.create(model=kw.pop("model", M), input=inp, encoding_format="float", **kw)
    return [d.embedding for d in r.data], r


def close(a, b, tol=1e-5):
    """max |a - b| / max |b| below tol."""
    scale = max(abs(x) for x in b) or 1.0
    return max(abs(x - y) for x, y in zip(a, b)) / scale < tol and len(a) == len(b)


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def expect(exc, fn, status, param=None, contains=None):
    try:
        fn()
    except exc as e:
        assert e.status_code == status, (e.status_code, status, str(e))
        body = e.body if isinstance(e.body, dict) else {}
        if param is not None:
            assert body.get("param") == param, (body, param)
        if contains is not None:
            assert contains in str(e), (str(e), contains)
        return
    raise AssertionError(f"expected {exc.__name__}")


def pooling_cases(model_dir):
    with open(os.path.join(model_dir, "pooling_reference.json")) as f:
        return json.load(f)["cases"]


# ---- the embed server on tiny-chat (a tokenizer: text inputs) -------------------------------

def test_models_shows_the_task(srv, c):
    st, _, body = h.get(srv.port, "/v1/models")
    assert st == 200, (st, body)
    m = json.loads(body)["data"][0]
    assert m["task"] == "embed", m
    assert m["pooler_config"] == {"pooling_type": "LAST", "normalize": True,
                                  "hidden_size": HIDDEN}, m


def test_string(srv, c):
    (v,), r = floats(c, "the quick brown fox")
    assert r.object == "list" and r.model == M and r.data[0].object == "embedding"
    assert r.data[0].index == 0 and len(v) == HIDDEN
    assert abs(norm(v) - 1.0) < 1e-5, norm(v)
    st, _, body = h.post(srv.port, "/tokenize", {"prompt": "the quick brown fox"})
    ids = json.loads(body)["tokens"]
    assert r.usage.prompt_tokens == len(ids) and r.usage.total_tokens == len(ids), r.usage
    # The same tokens given as ids: the same vector.
    (w,), _ = floats(c, ids)
    assert close(v, w), (v[:4], w[:4])


def test_list_matches_each_alone(srv, c):
    texts = ["a", "hello there, how are you today?", "the quick brown fox jumps over it"]
    alone = [floats(c, t)[0][0] for t in texts]
    got, r = floats(c, texts)
    assert [d.index for d in r.data] == [0, 1, 2]
    for i, (a, b) in enumerate(zip(got, alone)):
        assert close(a, b), (i, a[:4], b[:4])
    assert len({tuple(round(x, 6) for x in g) for g in got}) == 3, "different inputs differ"


def test_token_id_lists(srv, c):
    lists = [[5, 6, 7], [40, 41, 42, 43, 44, 45, 46, 47, 48], [9]]
    got, r = floats(c, lists)
    assert r.usage.prompt_tokens == 13, r.usage
    for ids, g in zip(lists, got):
        assert close(g, floats(c, ids)[0][0])


def test_base64_decodes_to_the_floats(srv, c):
    inp = ["hello", "world wide web"]
    want, _ = floats(c, inp)
    st, _, body = h.post(srv.port, "/v1/embeddings",
                         {"model": M, "input": inp, "encoding_format": "base64"})
    assert st == 200, (st, body)
    data = json.loads(body)["data"]
    for d, w in zip(data, want):
        raw = base64.b64decode(d["embedding"])
        assert len(raw) == 4 * HIDDEN, len(raw)
        got = struct.unpack(f"<{HIDDEN}f", raw)
        assert close(got, w, 1e-6), (got[:4], w[:4])
    # The openai package asks for base64 by default and decodes it itself.
    r = c.embeddings.create(model=M, input=inp)
    assert close(r.data[1].embedding, want[1], 1e-6)


def test_truncate_and_special_tokens(srv, c):
    (t,), r = floats(c, [11, 12, 13, 14, 15], extra_body={"truncate_prompt_tokens": 3})
    assert r.usage.prompt_tokens == 3, r.usage
    assert close(t, floats(c, [13, 14, 15])[0][0])
    (a,), _ = floats(c, "abc", extra_body={"add_special_tokens": False})
    assert abs(norm(a) - 1.0) < 1e-5
    (u,), _ = floats(c, "abc", extra_body={"normalize": False})
    assert abs(norm(u) - 1.0) > 1e-3, "normalize false keeps the raw length"
    assert close([x / norm(u) for x in u], floats(c, "abc")[0][0])


def test_langchain(srv, c):
    from langchain_openai import OpenAIEmbeddings
    emb = OpenAIEmbeddings(model=M, base_url=srv.url + "/v1", api_key="none",
                           check_embedding_ctx_length=False, max_retries=0)
    docs = emb.embed_documents(["first document", "second one"])
    assert len(docs) == 2 and len(docs[0]) == HIDDEN
    assert close(docs[1], floats(c, "second one")[0][0], 1e-6)
    q = emb.embed_query("first document")
    assert close(q, docs[0], 1e-6)


def test_refusals(srv, c):
    B = openai.BadRequestError
    expect(B, lambda: c.embeddings.create(model=M, input="x", dimensions=8), 400,
           "dimensions", "matryoshka")
    expect(B, lambda: c.embeddings.create(model=M, input="x", encoding_format="bogus"), 400,
           "encoding_format")
    expect(B, lambda: c.embeddings.create(model=M, input=[]), 400, "input")
    expect(B, lambda: c.embeddings.create(model=M, input=[[1, 2], "x", 3.5]), 400, "input")
    expect(B, lambda: c.embeddings.create(model=M, input=[1, -2]), 400, "input")
    expect(B, lambda: c.embeddings.create(model=M, input=[1, 100000]), 400, None,
           "outside the vocabulary")
    expect(B, lambda: c.embeddings.create(model=M, input=list(range(3, 603))), 400, "input",
           "maximum context length is 512 tokens")
    expect(B, lambda: c.embeddings.create(model=M, input="x",
                                          extra_body={"truncate_prompt_tokens": 9999}),
           400, "truncate_prompt_tokens")
    expect(B, lambda: c.embeddings.create(model=M, input="x",
                                          extra_body={"messages": [{"role": "user"}]}),
           400, "messages")
    expect(openai.NotFoundError, lambda: c.embeddings.create(model="nope", input="x"), 404,
           "model")
    expect(B, lambda: c.chat.completions.create(
        model=M, messages=[{"role": "user", "content": "hi"}]), 400, None,
        "does not support Chat Completions API")
    expect(B, lambda: c.completions.create(model=M, prompt="hi"), 400, None,
           "does not support Completions API")
    # Unknown fields are logged, not refused (as vLLM).
    (v,), _ = floats(c, "x", extra_body={"some_future_field": 1})
    srv.wait_for("some_future_field")


# ---- the llama fixture against transformers --------------------------------------------------

def test_llama_last_matches_transformers():
    """vLLM's --runner pooling: LAST, normalized; token ids (no tokenizer)."""
    with h.Server("--runner", "pooling", model=LLAMA) as srv:
        c = client(srv)
        cases = pooling_cases(LLAMA)
        got, r = floats(c, [k["prompt"] for k in cases], model="llama-f32")
        assert r.usage.prompt_tokens == sum(len(k["prompt"]) for k in cases), r.usage
        for k, g in zip(cases, got):
            want = [x / norm(k["last"]) for x in k["last"]]
            assert close(g, want, 1e-4), (len(k["prompt"]), g[:4], want[:4])
        expect(openai.BadRequestError, lambda: c.embeddings.create(
            model="llama-f32", input="text"), 400, "input", "no tokenizer")
        assert srv.stop() == 0


def test_llama_mean_unnormalized_matches_transformers():
    """vLLM's --convert embed with --override-pooler-config: MEAN, not normalized."""
    with h.Server("--convert", "embed", "--override-pooler-config",
                  '{"pooling_type": "MEAN", "normalize": false}',
                  "--max-num-batched-tokens", "32", model=LLAMA) as srv:
        c = client(srv)
        cases = pooling_cases(LLAMA)
        got, _ = floats(c, [k["prompt"] for k in cases], model="llama-f32")
        for k, g in zip(cases, got):
            assert close(g, k["mean"], 1e-4), (len(k["prompt"]), g[:4], k["mean"][:4])
        assert srv.stop() == 0


# ---- a generating server, and the flags -----------------------------------------------------

def test_generating_server_refuses_embeddings():
    with h.Server() as srv:
        c = client(srv)
        expect(openai.BadRequestError, lambda: c.embeddings.create(model=M, input="x"), 400,
               None, "--task embed")
        st, _, body = h.get(srv.port, "/v1/models")
        assert json.loads(body)["data"][0]["task"] == "generate", body
        assert srv.stop() == 0


def test_flags_refused_by_name():
    for args, what in ((["--task", "classify"], "task classify is not supported"),
                       (["--task", "bogus"], "expected auto, generate or embed"),
                       (["--runner", "draft"], "--speculative-config"),
                       (["--convert", "reward"], "convert reward is not supported"),
                       (["--pooler-config", '{"softmax": true}'], '"softmax" is not supported'),
                       (["--pooler-config", '{"pooling_type": "ALL"}'], "pooling_type ALL"),
                       (["--pooler-config", '{"pooling_type": "MEAN"}'], "needs task embed")):
        p = subprocess.run([h.PAGODA, "serve", "--model", h.TINY, "--port", "0", *args],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode != 0, (args, p.stderr)
        assert what in p.stderr, (args, what, p.stderr[-2000:])


def main():
    srv = suite.start_server("--task", "embed")
    c = client(srv)
    tests = [test_models_shows_the_task, test_string, test_list_matches_each_alone,
             test_token_id_lists, test_base64_decodes_to_the_floats,
             test_truncate_and_special_tokens, test_refusals]
    try:
        import langchain_openai  # noqa: F401
        tests.append(test_langchain)
    except ImportError:
        print("langchain-openai is not installed: its check is not run (nor counted)")
    for t in tests:
        suite.run(t, srv, c)

    def test_clean_exit():
        h.wait_idle(srv.port)
        assert srv.stop() == 0, srv.log()
    suite.run(test_clean_exit)
    for t in (test_llama_last_matches_transformers,
              test_llama_mean_unnormalized_matches_transformers,
              test_generating_server_refuses_embeddings, test_flags_refused_by_name):
        suite.run(t)
    suite.finish()


if __name__ == "__main__":
    main()
