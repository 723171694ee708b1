#!/usr/bin/env python3
"""`pagoda chat` in a terminal (tmux: send-keys, capture-pane), once on the in-process engine
and once against `pagoda serve` through --url, on the tiny-chat fixture (greedy, EOS ignored,
so every answer is known: `pagoda generate` on the chat template's prompt):
a two-turn conversation (the second message typed on two lines with a trailing '\\'),
/save, /reset, /show, /system, /set, bad values and an unknown command, /load, Ctrl-C on a
half-typed line and in the middle of a long answer (and then the engine runs nothing and
holds no KV block), another question after it, /quit; then history recalled with the up arrow in a second run, and
Ctrl-C at an empty prompt and Ctrl-D leaving with status 0."""
import json
import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from repl_harness import Tmux, expected_answer, long_model  # noqa: E402
from http_harness import Server, Suite  # noqa: E402

STATS = r"\n(\d+) tokens, [\d.]+ tokens/s, TTFT \d+ ms"


def load(path):
    with open(path) as f:
        return json.load(f)


def user(text):
    return {"role": "user", "content": text}


def check_conversation(t, tmp, model):
    """Two turns, the second on two lines; the saved conversation holds exactly them."""
    t.wait("pagoda chat with")
    t.line("hello")
    t.wait(STATS, 1)
    t.line("first line \\")
    t.line("second line")
    t.wait(STATS, 2)
    conv = os.path.join(tmp, "conv.json")
    t.line(f"/save {conv}")
    t.wait("saved 4 messages")
    msgs = load(conv)
    a1 = expected_answer(model, [user("hello")], 12)
    two = "first line \nsecond line"
    a2 = expected_answer(model, [user("hello"), {"role": "assistant", "content": a1},
                                 user(two)], 12)
    want = [user("hello"), {"role": "assistant", "content": a1}, user(two),
            {"role": "assistant", "content": a2}]
    assert msgs == want, f"saved {msgs}\nwant {want}"
    assert re.findall(STATS, t.screen())[:2] == ["12", "12"], t.screen()
    return conv


def check_commands(t, tmp, model, conv):
    t.keys("-l", "half a thought")              # Ctrl-C on a typed line drops the line only
    t.wait(r">>> half a thought")
    t.keys("C-c")
    t.line("/reset")
    t.wait("new conversation")
    t.line("/show")
    t.wait(r"messages: 0")
    t.line("/system You are terse.")
    t.wait("system message set")
    t.line("/set max_tokens 5")
    t.wait("max_tokens = 5")
    t.line("hi")
    t.wait(r"\n5 tokens, ", 1)
    sysconv = os.path.join(tmp, "sys.json")
    t.line(f"/save {sysconv}")
    t.wait("saved 3 messages")
    system = {"role": "system", "content": "You are terse."}
    a = expected_answer(model, [system, user("hi")], 5)
    got = load(sysconv)
    assert got == [system, user("hi"), {"role": "assistant", "content": a}], got
    t.line("/set temperature 9")
    t.wait(r"temperature = '9' is not a number in \[0, 2\]")
    t.line("/frobnicate now")
    t.wait(r"unknown command '/frobnicate': /help lists the commands")
    t.line(f"/load {conv}")
    t.wait("loaded 4 messages")
    t.line("/show")
    t.wait(r"messages: 4")


def check_interrupt(t, tmp, model, idle):
    """Ctrl-C stops a 30000-token answer; the engine is idle after it; the chat goes on."""
    t.line("/set max_tokens 30000")
    t.wait("max_tokens = 30000")
    t.line("tell me everything")
    t.wait(r"tell me everything\n.{20,}")      # the answer is streaming
    t.keys("C-c")
    s = t.wait(STATS + r", stopped")
    n = int(re.findall(STATS + r", stopped", s)[-1])
    assert 0 < n < 30000, n
    for i in range(100):                        # the server may see the close a bit later
        t.line("/stats")
        s = t.wait(r"session: ", i + 1)
        last = re.findall(r"(?:engine|server): [^\n]*", s)[-1]
        if re.fullmatch(idle, last):
            break
    else:
        raise AssertionError(f"not idle after Ctrl-C: {last}")
    t.line("/set max_tokens 12")
    t.wait("max_tokens = 12")                 # else both lines could be read as one paste
    t.line("and now?")
    t.wait(STATS + r"\n", 4)                   # 12, 12 and 5 tokens before; the stop has ", stopped"
    after = os.path.join(tmp, "after.json")
    t.line(f"/save {after}")
    t.wait("saved 8 messages")
    msgs = load(after)
    assert msgs[-2] == user("and now?"), msgs
    assert msgs[-1]["content"] == expected_answer(model, msgs[:-1], 12), msgs[-1]
    t.line("/quit")
    assert t.exit_status() == 0


def check_history(tmp, args, state, name):
    """A second run recalls the first run's lines with the up arrow (newest first); a paste of
    two lines is one message; Ctrl-C at an empty prompt and Ctrl-D leave."""
    t = Tmux(tmp, args, name + "-2", state)
    try:
        t.wait("pagoda chat with")
        t.keys("Up")
        t.wait(r">>> /quit\s*$")
        t.keys("Up")
        t.wait(r">>> /save \S*after.json\s*$")
        t.keys("Down")
        t.wait(r">>> /quit\s*$")
        t.keys("Enter")
        assert t.exit_status() == 0
    finally:
        t.close()
    for key in ("C-c", "C-d"):                  # leaving from an empty prompt
        t = Tmux(tmp, args, name + "-" + key, state)
        try:
            t.wait("pagoda chat with")
            if key == "C-c":                    # a paste of two lines is one message
                t.keys("-l", "pasted one\npasted two\n")
                t.wait(STATS)
                pasted = os.path.join(tmp, "pasted.json")
                t.line(f"/save {pasted}")
                t.wait("saved 2 messages")
                assert load(pasted)[0] == user("pasted one\npasted two"), load(pasted)
            t.keys(key)
            assert t.exit_status() == 0, t.screen()
        finally:
            t.close()


def run_backend(name, args, idle):
    with tempfile.TemporaryDirectory() as tmp:
        model = long_model(tmp)
        state = os.path.join(tmp, "state")
        server = None
        if args is None:
            server = Server(model=model)
            args = ["--url", server.url + "/v1"]
        else:
            args = [model, *args]
        args = [*args, "--temperature", "0", "--max-tokens", "12", "--ignore-eos"]
        try:
            t = Tmux(tmp, args, name, state)
            try:
                conv = check_conversation(t, tmp, model)
                check_commands(t, tmp, model, conv)
                check_interrupt(t, tmp, model, idle)
            finally:
                t.close()
            check_history(tmp, args, state, name)
            assert os.path.exists(os.path.join(state, "pagoda", "chat_history"))
        finally:
            if server:
                assert server.stop() == 0


def test_in_process():
    run_backend("local", ["--num-blocks", "4096"],
                r"engine: 0 running, 0 waiting, KV blocks in use 0/4096 \(0\.0%\)")


def test_remote():
    run_backend("remote", None, r"server: 0 running, 0 waiting, KV cache in use 0\.0%")


if __name__ == "__main__":
    if not shutil.which("tmux"):
        print("test_repl_tmux: SKIP: no tmux (scripts/install-deps.sh installs it)")
        sys.exit(77)
    suite = Suite("repl_tmux")
    suite.run(test_in_process)
    suite.run(test_remote)
    suite.finish()
