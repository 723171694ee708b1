"""Shared by the REPL tests: the expected greedy answer to a conversation (the model's chat
template through `pagoda chat-template`, then `pagoda generate` on that prompt), and a
`pagoda chat` driven in a private tmux server (send-keys, capture-pane)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from http_harness import PAGODA, TINY  # noqa: E402

ENV = dict(os.environ, PAGODA_LOG="warn")


def long_model(tmp):
    """tiny-chat with a 64k context (its RoPE positions go on): an answer of thousands of
    tokens takes seconds, long enough to interrupt in its middle."""
    d = os.path.join(tmp, "tiny-chat-long")
    shutil.copytree(TINY, d)
    path = os.path.join(d, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["max_position_embeddings"] = 65536
    with open(path, "w") as f:
        json.dump(cfg, f)
    return d


def expected_answer(model, messages, max_tokens):
    """The greedy answer of max_tokens tokens (EOS ignored) to messages, without the
    newline `pagoda generate` ends it with."""
    prompt = subprocess.run([PAGODA, "chat-template", "--model", model,
                             "--add-generation-prompt"], input=json.dumps(messages),
                            capture_output=True, text=True, env=ENV, check=True).stdout
    out = subprocess.run([PAGODA, "generate", "--model", model, "--prompt", prompt,
                          "--max-tokens", str(max_tokens), "--ignore-eos", "--temperature", "0",
                          "--num-blocks", "256"],
                         capture_output=True, text=True, env=ENV, check=True).stdout
    assert out.endswith("\n"), repr(out)
    return out[:-1]


class Tmux:
    """One `pagoda chat ARGS` in a tmux server of its own; .screen() is the pane's text
    (with its scrollback), .exit_status() the chat's status once it ended."""

    def __init__(self, tmp, args, name, state_dir):
        self.sock = os.path.join(tmp, "tmux-" + name)
        cmd = " ".join(["env", f"XDG_STATE_HOME={state_dir}", "PAGODA_LOG=warn", "TERM=xterm",
                        PAGODA, "chat", *args])
        # After the chat: its status, then a pause so that the pane can still be read.
        self._tmux("new-session", "-d", "-x", "160", "-y", "50",
                   f"{cmd}; echo EXITED:$?; sleep 60")

    def _tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True,
                              text=True, check=True).stdout

    def keys(self, *keys):
        self._tmux("send-keys", *keys)

    def line(self, text):
        """Types text and Enter. It does not wait: the chat takes input already waiting when
        a line ends as the rest of a paste (one message of several lines), so a line typed
        before the previous one was read joins it; wait for the previous line's effect
        first unless that is what is tested."""
        self._tmux("send-keys", "-l", text)
        self._tmux("send-keys", "Enter")

    def screen(self):
        return self._tmux("capture-pane", "-p", "-S", "-2000")

    def wait(self, pattern, count=1, timeout=60):
        """Waits until pattern (a regex) matches count times; returns the screen."""
        end = time.time() + timeout
        while True:
            s = self.screen()
            if len(re.findall(pattern, s)) >= count:
                return s
            if time.time() > end:
                raise AssertionError(f"no {count} x {pattern!r} on screen within {timeout} s:\n{s}")
            time.sleep(0.05)

    def exit_status(self, timeout=30):
        s = self.wait(r"EXITED:\d+", 1, timeout)
        rc = int(re.search(r"EXITED:(\d+)", s).group(1))
        if rc:
            print(f"pagoda chat exited with {rc}; its screen:\n{s}")
        return rc

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True)
