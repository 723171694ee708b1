#!/usr/bin/env python3
"""`pagoda chat --config deploy.ini` in piped mode: the chat's settings come from the file's
[frontend.repl] (system, temperature, max_tokens, no_stats), the model and engine from its
[model] and [engine]; a flag overrides the file's key; [frontend.repl] url and api_key (from
${ENV}) chat with a server; a bad value is refused before anything starts, with its
file:line, exit status 2; examples/deploy/repl.ini passes `pagoda config --check`."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from repl_harness import ENV, expected_answer  # noqa: E402
from http_harness import PAGODA, SRCDIR, TINY, Server, Suite  # noqa: E402

TMP = tempfile.mkdtemp()
atexit.register(shutil.rmtree, TMP, True)


def ini(name, text):
    p = os.path.join(TMP, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def chat(args, stdin, env=ENV):
    return subprocess.run([PAGODA, "chat", *args], input=stdin, capture_output=True, text=True,
                          env=env, timeout=60)


LOCAL = (f"[model]\nmodel = {TINY}\n[engine]\ndevice = cpu\nkv_cache_memory_bytes = 16M\n"
         "[frontend.repl]\nsystem = Be brief.\ntemperature = 0\nmax_tokens = 7\n"
         "no_stats = true\n")


def test_settings_from_the_file():
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    want = expected_answer(TINY, msgs, 7) + "\n"
    r = chat(["--config", ini("local.ini", LOCAL), "--ignore-eos"], "hi")
    assert (r.returncode, r.stdout, r.stderr) == (0, want, ""), (r.returncode, r.stdout,
                                                                 want, r.stderr)


def test_flags_override_the_file():
    msgs = [{"role": "system", "content": "Other."}, {"role": "user", "content": "hi"}]
    want = expected_answer(TINY, msgs, 3) + "\n"
    r = chat(["--config", ini("local.ini", LOCAL), "--ignore-eos", "--max-tokens", "3",
              "--system", "Other."], "hi")
    assert (r.returncode, r.stdout) == (0, want), (r.returncode, r.stdout, want, r.stderr)


def test_remote_from_the_file():
    want = expected_answer(TINY, [{"role": "user", "content": "hello"}], 5) + "\n"
    with Server("--api-key", "sesame") as srv:
        p = ini("remote.ini", f"[frontend.repl]\nurl = {srv.url}/v1\n"
                              "api_key = ${PGD_TEST_CHAT_KEY}\ntemperature = 0\n"
                              "max_tokens = 5\nno_stats = true\n")
        r = chat(["--config", p, "--ignore-eos"], "hello", dict(ENV, PGD_TEST_CHAT_KEY="sesame"))
        assert (r.returncode, r.stdout) == (0, want), (r.returncode, r.stdout, want, r.stderr)
        r = chat(["--config", p], "hello", dict(ENV, PGD_TEST_CHAT_KEY="wrong"))
        assert r.returncode == 1 and "HTTP 401" in r.stderr, (r.returncode, r.stderr)
        assert srv.stop() == 0


def test_bad_file_refused_with_its_line():
    p = ini("bad.ini", f"[model]\nmodel = {TINY}\n[frontend.repl]\ntop_p = 0\n"
                       "temprature = 1\n")
    r = chat(["--config", p], "hi")
    assert r.returncode == 2 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert f"{p}:4: top_p: '0' is not valid: expected a number in (0, 1]" in r.stderr, r.stderr
    assert (f"{p}:5: unknown key temprature in [frontend.repl] (did you mean temperature?)"
            in r.stderr), r.stderr
    r = chat(["--config", os.path.join(TMP, "missing.ini")], "hi")
    assert r.returncode == 2 and "cannot read" in r.stderr, r.stderr


def test_repl_example_checks():
    p = os.path.join(SRCDIR, "examples", "deploy", "repl.ini")
    r = subprocess.run([PAGODA, "config", "--check", p], capture_output=True, text=True,
                       env=dict(ENV, PAGODA_API_KEY="example"), timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == f"{p}: OK", (r.stdout, r.stderr)


if __name__ == "__main__":
    suite = Suite("repl_config")
    for t in (test_settings_from_the_file, test_flags_override_the_file,
              test_remote_from_the_file, test_bad_file_refused_with_its_line,
              test_repl_example_checks):
        suite.run(t)
    suite.finish()
