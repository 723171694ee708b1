#!/usr/bin/env python3
"""`pagoda serve` started as vLLM users start `vllm serve` (positional MODEL, vLLM's flags):
generation_config.json sampling defaults reach requests that leave those fields out and are
shown by /v1/models and the start-up log; --generation-config vllm turns them off; the access
log line and the periodic stats line appear (and go away with --disable-log-requests and
--disable-log-stats); /metrics parses with prometheus_client's text parser and every series
carries model_name; --chat-template, --response-role, --return-tokens-as-token-ids; several
--served-model-name (any may be asked for, the first is reported, /v1/models lists all);
--batch-invariant (a seeded request's text and logprobs the same alone and under load)."""
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_serve")
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("the prometheus_client package is missing: pip install -r scripts/requirements-test.txt")
    suite.failed += 1
    suite.finish()

PROMPT = "the quick brown fox"
GEN_CONFIG = {"temperature": 0.0, "max_new_tokens": 5, "eos_token_id": [319, 317]}


def model_with_generation_config(tmp):
    """tiny-chat with a generation_config.json that sets greedy sampling and 5 new tokens."""
    d = os.path.join(tmp, "tiny-gen")
    os.mkdir(d)
    for f in os.listdir(h.TINY):
        if f != "generation_config.json":
            os.symlink(os.path.join(os.path.abspath(h.TINY), f), os.path.join(d, f))
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump(GEN_CONFIG, f)
    return d


def complete(srv, **body):
    st, _, raw = h.post(srv.port, "/v1/completions", {"prompt": PROMPT, "ignore_eos": True, **body})
    assert st == 200, (st, raw)
    return json.loads(raw)


def wait_log(srv, pattern, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        for line in srv.lines:
            if line is not None and re.search(pattern, line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r}:\n" + srv.log()[-3000:])


# ---- the server with the model's generation config --------------------------------------

def test_defaults_shown(srv):
    st, _, raw = h.get(srv.port, "/v1/models")
    assert st == 200, st
    m = json.loads(raw)["data"][0]
    assert m["id"] == "tiny-gen", m
    assert m["default_sampling_params"] == {"max_tokens": 5, "temperature": 0.0}, m
    line = wait_log(srv, r"default sampling parameters from .*generation_config\.json")
    assert '"max_tokens":5' in line and '"temperature":0' in line, line


def test_defaults_reach_requests(srv):
    a = complete(srv)
    b = complete(srv)
    assert a["usage"]["completion_tokens"] == 5, a   # max_new_tokens -> max_tokens
    assert a["choices"][0]["finish_reason"] == "length", a
    # temperature 0 from the config: greedy, so twice the same, and the same as asking for it
    explicit = complete(srv, temperature=0, max_tokens=5)
    assert a["choices"][0]["text"] == b["choices"][0]["text"] == explicit["choices"][0]["text"]
    # a request's own values win
    own = complete(srv, max_tokens=3)
    assert own["usage"]["completion_tokens"] == 3, own
    st, _, raw = h.post(srv.port, "/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "hi"}], "ignore_eos": True})
    assert st == 200, raw
    assert json.loads(raw)["usage"]["completion_tokens"] == 5, raw


def test_access_log(srv):
    r = complete(srv)
    line = wait_log(srv, r"access: .* id=" + re.escape(r["id"]) + "$")
    n = r["usage"]["prompt_tokens"]
    assert re.search(r'access: 127\.0\.0\.1:\d+ "POST /v1/completions HTTP/1\.1" 200 '
                     rf'prompt_tokens={n} completion_tokens=5 ttft=\d+\.\d+s total=\d+\.\d+s ',
                     line), line
    h.get(srv.port, "/health")
    wait_log(srv, r'access: .* "GET /health HTTP/1\.1" 200 total=')


def test_stats_line(srv):
    complete(srv)
    line = wait_log(srv, r"Engine 000: Avg prompt throughput: [\d.]+ tokens/s, Avg generation "
                         r"throughput: [1-9][\d.]* tokens/s, Running: \d+ reqs, Waiting: \d+ reqs, "
                         r"(CPU|GPU) KV cache usage: [\d.]+%, Prefix cache hit rate: [\d.]+%")
    assert line


def parse_metrics(srv):
    st, hd, raw = h.get(srv.port, "/metrics")
    assert st == 200, st
    text = raw.decode()
    return text, list(text_string_to_metric_families(text))


def test_metrics_parse_with_labels(srv, name="tiny-gen"):
    complete(srv)
    h.wait_idle(srv.port)
    text, fams = parse_metrics(srv)
    by = {f.name: f for f in fams}
    for hist in ("request_prompt_tokens", "request_generation_tokens",
                 "request_queue_time_seconds", "request_prefill_time_seconds",
                 "request_decode_time_seconds", "iteration_tokens_total",
                 "time_to_first_token_seconds", "e2e_request_latency_seconds"):
        f = by.get("pagoda:" + hist)
        assert f is not None and f.type == "histogram", (hist, sorted(by))
        counts = [s for s in f.samples if s.name.endswith("_count")]
        assert counts and counts[0].value >= 1, (hist, f.samples[-3:])
    info = by["pagoda:cache_config_info"]
    assert info.samples[0].value == 1.0 and info.samples[0].labels["block_size"] == "16", info
    n_samples = 0
    for f in fams:
        for s in f.samples:
            n_samples += 1
            assert s.labels.get("model_name") == name, (s.name, s.labels)
    assert n_samples > 100, n_samples
    # bucket bounds as Prometheus writes them
    assert 'pagoda:time_to_first_token_seconds_bucket{model_name="%s",le="0.005"}' % name in text
    assert 'le="1.0"' in text and not re.search(r'le="[\d.]*\d{10,}"', text)
    gen = [s for s in by["pagoda:request_generation_tokens"].samples
           if s.name.endswith("_bucket") and s.labels["le"] == "5.0"]
    assert gen and gen[0].value >= 1, gen


def test_chat_template_file(srv):
    # the server of this suite was given --chat-template with a plain template
    st, _, raw = h.post(srv.port, "/tokenize", {"messages": [{"role": "user", "content": "hello"},
                                                            {"role": "user", "content": "there"}],
                                                "add_generation_prompt": False})
    assert st == 200, raw
    st, _, raw2 = h.post(srv.port, "/tokenize", {"prompt": "[hello][there]",
                                                 "add_special_tokens": False})
    assert st == 200, raw2
    assert json.loads(raw)["tokens"] == json.loads(raw2)["tokens"], (raw, raw2)


# ---- the server with vLLM's defaults and the logs off -----------------------------------

def test_vllm_generation_config(srv2):
    st, _, raw = h.get(srv2.port, "/v1/models")
    assert json.loads(raw)["data"][0]["default_sampling_params"] == {}, raw
    r = complete(srv2)
    assert r["usage"]["completion_tokens"] == 16, r   # the API's default for completions
    wait_log(srv2, r"default sampling parameters: the API's \(none \(--generation-config vllm\)\)")


def test_logs_off(srv2):
    complete(srv2)
    time.sleep(0.6)   # several stats intervals
    assert not any(l and ("access:" in l or "Engine 000" in l) for l in srv2.lines), srv2.log()


def test_role_and_token_ids(srv2):
    st, _, raw = h.post(srv2.port, "/v1/chat/completions",
                        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,
                         "logprobs": True, "top_logprobs": 2, "ignore_eos": True})
    assert st == 200, raw
    ch = json.loads(raw)["choices"][0]
    assert ch["message"]["role"] == "model", ch
    toks = [e["token"] for e in ch["logprobs"]["content"]]
    assert len(toks) == 2 and all(re.fullmatch(r"token_id:\d+", t) for t in toks), toks
    st, _, raw = h.post(srv2.port, "/v1/completions", {"prompt": PROMPT, "max_tokens": 1,
                                                       "logprobs": 3})
    assert st == 400 and "logprobs" in raw.decode(), raw   # --max-logprobs 2


def test_metrics_served_name(srv2):
    test_metrics_parse_with_labels(srv2, name="other")


def test_several_served_names(srv2):
    """--served-model-name other second org/third: /v1/models lists the three in order; a
    request naming any of them is served and answered as the first; another name is 404."""
    st, _, body = h.get(srv2.port, "/v1/models")
    assert st == 200, body
    assert [m["id"] for m in json.loads(body)["data"]] == ["other", "second", "org/third"], body
    for name, path, req in (("second", "/v1/completions", {"prompt": "hi"}),
                            ("org/third", "/v1/chat/completions",
                             {"messages": [{"role": "user", "content": "hi"}]})):
        st, _, body = h.post(srv2.port, path, dict(req, model=name, max_tokens=2))
        assert st == 200, (name, body)
        assert json.loads(body)["model"] == "other", (name, body)
    st, _, body = h.post(srv2.port, "/v1/completions", {"prompt": "hi", "model": "tiny-chat",
                                                        "max_tokens": 2})
    assert st == 404 and json.loads(body)["error"]["code"] == "model_not_found", body


def seeded(srv2, logprobs=True):
    body = {"prompt": "a seeded draw at temperature one", "model": "other", "max_tokens": 24,
            "temperature": 1.0, "seed": 4242, "ignore_eos": True}
    if logprobs:
        body["logprobs"] = 1
    st, _, raw = h.post(srv2.port, "/v1/completions", body)
    assert st == 200, (st, raw)
    c = json.loads(raw)["choices"][0]
    return c["text"], c["logprobs"]["token_logprobs"] if logprobs else None


def test_batch_invariant(srv2):
    """--batch-invariant: a seeded request's text and logprobs alone equal those it gets
    while a dozen other requests share its steps (the same bits, so the same JSON)."""
    alone = seeded(srv2)
    results, errors = [], []

    def other(i):
        try:
            st, _, raw = h.post(srv2.port, "/v1/completions",
                                {"prompt": "other words " * (1 + i % 5), "model": "other",
                                 "max_tokens": 10 + 3 * i, "ignore_eos": True,
                                 "temperature": 0.5 * (i % 3)})
            assert st == 200, (st, raw)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=other, args=(i,)) for i in range(12)]
    for t in threads[:6]:
        t.start()
    results.append(seeded(srv2))
    for t in threads[6:]:
        t.start()
    results.append(seeded(srv2))
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(alone[1]) == 24, alone
    for r in results:
        assert r == alone, (r, alone)


def main():
    tmp = tempfile.mkdtemp(prefix="pgd-serve-")
    srv = srv2 = None
    try:
        model = model_with_generation_config(tmp)
        tpl = os.path.join(tmp, "plain.jinja")
        with open(tpl, "w") as f:
            f.write("{% for m in messages %}[{{ m.content }}]{% endfor %}")
        # vLLM's command line: positional MODEL and vLLM's flags
        srv = h.Server(model, "--dtype", "auto", "--max-model-len", "512",
                       "--gpu-memory-utilization", "0.9", "--enable-prefix-caching",
                       "--scheduling-policy", "fcfs", "--uvicorn-log-level", "info",
                       "--chat-template", tpl, "--log-stats-interval", "0.2", model=None)
        for t in (test_defaults_shown, test_defaults_reach_requests, test_access_log,
                  test_stats_line, test_metrics_parse_with_labels, test_chat_template_file):
            suite.run(t, srv)

        def test_clean_exit():
            rc = srv.stop()
            assert rc == 0, f"exit status {rc}\n{srv.log()[-3000:]}"
        suite.run(test_clean_exit)
        srv2 = h.Server(model, "--generation-config", "vllm", "--disable-log-requests",
                        "--disable-log-stats", "--served-model-name", "other", "second",
                        "org/third",
                        "--response-role", "model", "--return-tokens-as-token-ids",
                        "--max-logprobs", "2", "--uvicorn-log-level", "info",
                        "--log-stats-interval", "0.1", "--batch-invariant", model=None)
        for t in (test_vllm_generation_config, test_logs_off, test_role_and_token_ids,
                  test_metrics_served_name, test_several_served_names, test_batch_invariant):
            suite.run(t, srv2)

        def test_clean_exit_2():
            rc = srv2.stop()
            assert rc == 0, f"exit status {rc}\n{srv2.log()[-3000:]}"
        suite.run(test_clean_exit_2)
    except Exception as e:
        print("cannot run pagoda serve:", e)
        suite.failed += 1
    finally:
        for s in (srv, srv2):
            if s and s.proc.poll() is None:
                s.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    suite.finish()


if __name__ == "__main__":
    main()
