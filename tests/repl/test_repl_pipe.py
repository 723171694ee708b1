#!/usr/bin/env python3
"""`pagoda chat` with stdin not a terminal: all of stdin is one user message and stdout holds
the answer alone, exactly (`pagoda generate` greedy on the chat template's prompt, and the
same through `pagoda serve` with --url); --system and --max-tokens apply; errors go to
stderr with status 1 (a bad model, empty stdin, a server that is not there, a bad value)."""
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from repl_harness import ENV, expected_answer  # noqa: E402
from http_harness import PAGODA, TINY, Server, Suite  # noqa: E402


def chat(args, stdin):
    return subprocess.run([PAGODA, "chat", *args], input=stdin, capture_output=True, text=True,
                          env=ENV, timeout=60)


GREEDY = ["--temperature", "0", "--ignore-eos", "--no-stats"]


def test_answer_exact():
    question = "What is a pagoda?\nAnswer briefly."
    want = expected_answer(TINY, [{"role": "user", "content": question}], 9) + "\n"
    r = chat([TINY, *GREEDY, "--max-tokens", "9"], question + "\n")
    assert (r.returncode, r.stdout) == (0, want), (r.returncode, r.stdout, want, r.stderr)
    assert r.stderr == "", r.stderr


def test_system_applies():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    want = expected_answer(TINY, msgs, 7) + "\n"
    r = chat(["--model", TINY, *GREEDY, "--max-tokens", "7", "--system", "Be brief."], "hi")
    assert (r.returncode, r.stdout) == (0, want), (r.returncode, r.stdout, want, r.stderr)
    plain = expected_answer(TINY, msgs[1:], 7) + "\n"
    assert want != plain, "the fixture answers the same with and without a system message"


def test_remote_same_answer():
    want = expected_answer(TINY, [{"role": "user", "content": "hello"}], 10) + "\n"
    with Server() as srv:
        r = chat(["--url", srv.url + "/v1", *GREEDY, "--max-tokens", "10"], "hello\n")
        assert (r.returncode, r.stdout) == (0, want), (r.returncode, r.stdout, want, r.stderr)
        assert srv.stop() == 0


def test_remote_with_api_key():
    with Server("--api-key", "sesame") as srv:
        r = chat(["--url", srv.url + "/v1", "--api-key", "sesame", *GREEDY,
                  "--max-tokens", "3"], "hello")
        assert r.returncode == 0 and r.stdout.strip(), (r.returncode, r.stdout, r.stderr)
        r = chat(["--url", srv.url + "/v1", "--api-key", "wrong", *GREEDY], "hello")
        assert r.returncode == 1 and r.stdout == "", (r.returncode, r.stdout)
        assert "HTTP 401" in r.stderr, r.stderr


def test_errors():
    r = chat(["/nonexistent/model", *GREEDY], "hello")
    assert (r.returncode, r.stdout) == (1, ""), (r.returncode, r.stdout)
    assert "/nonexistent/model" in r.stderr, r.stderr
    r = chat([TINY, *GREEDY], "\n\n")
    assert (r.returncode, r.stdout) == (1, ""), (r.returncode, r.stdout)
    assert "stdin is empty" in r.stderr, r.stderr
    with socket.socket() as s:                  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = chat(["--url", f"http://127.0.0.1:{port}/v1", *GREEDY], "hello")
    assert (r.returncode, r.stdout) == (1, ""), (r.returncode, r.stdout)
    assert f"127.0.0.1:{port}" in r.stderr, r.stderr
    r = chat([TINY, "--temperature", "hot"], "hello")
    assert r.returncode == 1 and "temperature = 'hot'" in r.stderr, (r.returncode, r.stderr)
    r = chat([TINY, *GREEDY, "--max-tokens", "100000"], "hello")
    assert r.returncode == 1 and r.stdout == "" and "max_model_len" in r.stderr, r.stderr


if __name__ == "__main__":
    suite = Suite("repl_pipe")
    for t in (test_answer_exact, test_system_applies, test_remote_same_answer,
              test_remote_with_api_key, test_errors):
        suite.run(t)
    suite.finish()
