#!/usr/bin/env python3
"""Bad input against a real `pagoda serve`: truncated and invalid JSON, huge bodies (with and
without Content-Length), wrong types, negative and absurd values, invalid UTF-8, unknown
model and route, wrong methods, a client that stops mid-request and one that cuts a stream
mid-way. Each gets the right status and an OpenAI-shaped error, and the server keeps serving
the other clients (a background client streams throughout and must finish cleanly)."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_badinput")
C = "/v1/completions"
CHAT = "/v1/chat/completions"
OK = {"prompt": "hello world", "max_tokens": 3}


def check_error(resp, status, param="", type_=None):
    st, hd, body = resp
    assert st == status, (st, status, body[:300])
    assert hd.get("content-type", "").startswith("application/json"), hd
    e = json.loads(body)["error"]
    assert set(e) == {"message", "type", "param", "code"}, e
    assert isinstance(e["message"], str) and e["message"], e
    if param != "":
        assert e["param"] == param, (e, param)
    if type_:
        assert e["type"] == type_, e
    return e


def test_invalid_json(srv):
    for raw in (b'{"prompt": "hi", "max_tokens": ', b"{", b"", b"not json", b'{"a":1,}',
                b'{"prompt": "hi"} trailing', b"\x00\x01\x02", b'{"prompt": "\\ud800"}x'):
        check_error(h.post(srv.port, C, raw=raw), 400, None, "invalid_request_error")
    for raw in (b"[]", b"42", b'"str"', b"null"):
        check_error(h.post(srv.port, CHAT, raw=raw), 400)


def test_invalid_utf8(srv):
    check_error(h.post(srv.port, C, raw=b'{"prompt": "caf\xe9", "max_tokens": 2}'), 400)
    check_error(h.post(srv.port, C, raw=b'{"prompt": "\xff\xfe", "max_tokens": 2}'), 400)
    # A well-formed escaped surrogate pair is fine, a lone one is not JSON text jansson takes.
    st, _, _ = h.post(srv.port, C, raw=b'{"prompt": "\\ud83d\\ude00 hi", "max_tokens": 2}')
    assert st == 200, st


def test_wrong_types(srv):
    cases = [
        ({"prompt": 5}, "prompt"), ({"prompt": {"a": 1}}, "prompt"), ({"prompt": []}, "prompt"),
        ({"prompt": [[1, 2], "x"]}, "prompt"), ({"prompt": [1.5]}, "prompt"),
        ({"prompt": "hi", "max_tokens": "10"}, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 2.5}, "max_tokens"),
        ({"prompt": "hi", "temperature": "hot"}, "temperature"),
        ({"prompt": "hi", "n": "2"}, "n"), ({"prompt": "hi", "stream": "yes"}, "stream"),
        ({"prompt": "hi", "stop": 5}, "stop"), ({"prompt": "hi", "stop": [""]}, "stop"),
        ({"prompt": "hi", "stop": ["a"] * 17}, "stop"),
        ({"prompt": "hi", "seed": "1"}, "seed"), ({"prompt": "hi", "logit_bias": []}, "logit_bias"),
        ({"prompt": "hi", "logit_bias": {"abc": 1}}, "logit_bias"),
        ({"prompt": "hi", "logit_bias": {"5": "up"}}, "logit_bias"),
        ({"prompt": "hi", "echo": 1}, "echo"), ({"prompt": "hi", "user": 7}, "user"),
        ({"prompt": "hi", "model": 7}, "model"), ({"prompt": "hi", "top_k": 0.5}, "top_k"),
        ({"prompt": "hi", "stop_token_ids": "1"}, "stop_token_ids"),
        ({"prompt": "hi", "stream_options": {"include_usage": True}}, "stream_options"),
        ({"prompt": "hi", "stream": True, "stream_options": 3}, "stream_options"),
        ({"prompt": "hi", "ignore_eos": "true"}, "ignore_eos"),
    ]
    for body, param in cases:
        check_error(h.post(srv.port, C, body), 400, param)
    chat_cases = [
        ({"messages": "hi"}, "messages"), ({"messages": [{"content": "x"}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0]"),
        ({"messages": [{"role": "user", "content": "x"}], "logprobs": 1}, "logprobs"),
        ({"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": []},
         "chat_template_kwargs"),
        ({"messages": [{"role": "user", "content": "x"}], "add_generation_prompt": 0},
         "add_generation_prompt"),
    ]
    for body, param in chat_cases:
        check_error(h.post(srv.port, CHAT, body), 400, param)


def test_out_of_range(srv):
    cases = [
        ({"max_tokens": -1}, "max_tokens"), ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 10 ** 12}, "max_tokens"), ({"max_tokens": 1e300}, "max_tokens"),
        ({"n": 0}, "n"), ({"n": 100000}, "n"), ({"temperature": -0.1}, "temperature"),
        ({"temperature": 1e9}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"),
        ({"presence_penalty": 3}, "presence_penalty"), ({"frequency_penalty": -9}, "frequency_penalty"),
        ({"logprobs": -1}, "logprobs"), ({"logprobs": 1000}, "logprobs"), ({"min_p": 2}, "min_p"),
        ({"top_k": -5}, "top_k"), ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"min_tokens": -1}, "min_tokens"), ({"seed": 1e30}, "seed"),
        ({"logit_bias": {"5": 1000}}, "logit_bias"), ({"logit_bias": {"99999": 1}}, "logit_bias"),
        ({"stop_token_ids": [-1]}, "stop_token_ids"), ({"min_tokens": 5, "max_tokens": 2}, "min_tokens"),
    ]
    for extra, param in cases:
        check_error(h.post(srv.port, C, dict({"prompt": "hi"}, **extra)), 400, param)
    check_error(h.post(srv.port, C, {"prompt": [0, 1, 320]}), 400, "prompt")
    check_error(h.post(srv.port, C, {"prompt": [0, -1]}), 400, "prompt")
    e = check_error(h.post(srv.port, C, {"prompt": "hi " * 1000}), 400, "prompt")
    assert e["code"] == "context_length_exceeded" and "512" in e["message"], e
    e = check_error(h.post(srv.port, C, {"prompt": "hi", "max_tokens": 600}), 400, "prompt")
    assert "maximum context length is 512 tokens" in e["message"], e
    check_error(h.post(srv.port, C, {"prompt": "hi", "n": 40, "max_tokens": 1,
                                     "echo": False, "best_of": 1} | {"prompt": ["a"] * 2}), 400, "n")


def test_unknown_model_route_method(srv):
    e = check_error(h.post(srv.port, C, {"prompt": "hi", "model": "gpt-4"}), 404, "model")
    assert e["code"] == "model_not_found", e
    check_error(h.post(srv.port, "/v1/nothing", OK), 404, None, "not_found_error")
    check_error(h.get(srv.port, "/"), 404)
    check_error(h.get(srv.port, "/v1/completions"), 405)
    check_error(h.post(srv.port, "/v1/models", {}), 405)
    check_error(h.post(srv.port, "/detokenize", {"tokens": "x"}), 400, "tokens")
    check_error(h.post(srv.port, "/detokenize", {"tokens": [1, 5000]}), 400, "tokens")
    check_error(h.post(srv.port, "/tokenize", {"prompt": 3}), 400, "prompt")


def test_unknown_fields_ignored(srv):
    st, _, body = h.post(srv.port, C, dict(OK, frobnicate=True, suffix=None, best_of=1,
                                           metadata={"a": 1}, nested={"x": [1, {"y": 2}]}))
    assert st == 200, body


def test_huge_bodies(srv):
    # Declared too large: answered at once, the body is never read.
    head = (f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 ** 10}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(head + b'{"prompt": "')
        check_error(h.read_response(s), 413)
    # Chunked, no length: read up to the limit, then 413.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        piece = b"a" * 65536
        for _ in range(20):   # 1.3 MB > the 1 MB limit of this server
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        check_error(h.read_response(s), 413)
    # Just under the limit is fine (and then too long for the model: a 400).
    big = {"prompt": "a" * (1024 * 1024 - 100), "max_tokens": 1}
    check_error(h.post(srv.port, C, big), 400, "prompt")
    # Deeply nested JSON is refused, not a crash.
    check_error(h.post(srv.port, C, raw=b"[" * 100000 + b"]" * 100000), 400)


def test_stalled_and_cut_requests(srv):
    # Headers promise a body that never comes, then the client leaves.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{{\"pro".encode())
        time.sleep(0.2)
    # Garbage instead of HTTP.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x02\x00 not http at all\r\n\r\n")
        try:
            s.recv(1024)
        except OSError:
            pass
    # A stream cut mid-way: its request is aborted and its KV blocks are freed.
    before = h.metrics(srv.port)
    aborted0 = before.get('pagoda:request_success_total{finished_reason="abort"}', 0)
    body = json.dumps({"prompt": "hello", "max_tokens": 400, "stream": True,
                       "ignore_eos": True}).encode()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        got = b""
        while got.count(b"data: ") < 3:
            got += s.recv(4096)
        assert b"200 OK" in got.split(b"\r\n", 1)[0], got[:100]
    m = h.wait_idle(srv.port)
    assert m['pagoda:request_success_total{finished_reason="abort"}'] == aborted0 + 1, m
    assert m["pagoda:generation_tokens_total"] - before["pagoda:generation_tokens_total"] < 400
    assert m["pagoda:http_streams_aborted_total"] >= 1


def test_still_serving(srv):
    st, _, body = h.post(srv.port, C, OK)
    assert st == 200 and json.loads(body)["usage"]["completion_tokens"] >= 1, body
    assert h.get(srv.port, "/health")[0] == 200
    st, _, body = h.get(srv.port, "/version")
    assert st == 200 and json.loads(body)["version"], body
    m = h.metrics(srv.port)
    assert m['pagoda:http_requests_total{route="/v1/completions",status="400"}'] >= 50, m
    assert m['pagoda:http_requests_total{route="/v1/completions",status="413"}'] >= 2, m
    assert m['pagoda:http_requests_total{route="other",status="404"}'] >= 2, m


def main():
    srv = suite.start_server("--max-body-bytes", str(1024 * 1024))
    # A well-behaved client streams throughout the abuse and must finish cleanly.
    bg = {}

    def background():
        body = json.dumps({"prompt": "once upon a time", "max_tokens": 300, "stream": True,
                           "ignore_eos": True, "stream_options": {"include_usage": True}}).encode()
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=120) as s:
                s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                bg["resp"] = h.read_response(s)
        except Exception as e:
            bg["error"] = e
    t = threading.Thread(target=background)
    t.start()
    for test in (test_invalid_json, test_invalid_utf8, test_wrong_types, test_out_of_range,
                 test_unknown_model_route_method, test_unknown_fields_ignored, test_huge_bodies,
                 test_stalled_and_cut_requests, test_still_serving):
        suite.run(test, srv)

    def test_background_stream_survived():
        t.join(120)
        assert "error" not in bg, bg.get("error")
        st, _, body = bg["resp"]
        events = body.decode().split("\n\n")
        assert st == 200 and events[-2] == "data: [DONE]" and events[-1] == "", events[-3:]
        usage = json.loads(events[-3][len("data: "):])["usage"]
        assert usage["completion_tokens"] == 300, usage

    def test_clean_exit():
        h.wait_idle(srv.port)
        rc = srv.stop()
        assert rc == 0, f"exit status {rc}\n{srv.log()[-3000:]}"
    suite.run(test_background_stream_survived)
    suite.run(test_clean_exit)
    suite.finish()


if __name__ == "__main__":
    main()
