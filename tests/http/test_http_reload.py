#!/usr/bin/env python3
"""SIGHUP on `pagoda serve --config deploy.ini` (issue 16): the file is read again and what
can change while serving changes at once, while requests keep coming.

A server starts from an INI file with an API key, a key file and the stats line off. The
file is rewritten (a new api_key, a new key in the key file, log_level debug, the access log
off, the stats line on, and a restart-only key, max_model_len), SIGHUP: the new keys are
required and the old ones get 401, the access log stops, the stats line starts, and
max_model_len is logged as needing a restart with its file and line. A file with an error is refused on SIGHUP with its file:line and the keys stay; a key file
that cannot be read is refused by the frontend, which keeps its keys.
Then [log] log_format = json and log_file: the log goes to the file as JSON lines, and after
the file is moved away (logrotate) a SIGHUP starts a new one. Requests sent from other
threads during the reloads get 200 or 401 only, and the server stops with status 0."""
import json
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_reload")
C = "/v1/completions"
OK = {"prompt": "hello", "max_tokens": 2}


def bearer(k):
    return {"Authorization": f"Bearer {k}"}


def status(key):
    return h.post(h_port[0], C, OK, headers=bearer(key) if key else None)[0]


h_port = [0]


def write(path, text):
    # Written beside and renamed over, as an editor or a ConfigMap update does: a reload
    # never reads half a file.
    with open(path + ".new", "w") as f:
        f.write(text)
    os.replace(path + ".new", path)


def deployment(model, keys, api_key, level="info", access="true", max_len=256, stats="true",
               extra=""):
    return (f"[model]\nmodel = {model}\nmax_model_len = {max_len}\n"
            f"[engine]\ndevice = cpu\n"
            f"[frontend.openai]\napi_key = {api_key}\napi_key_file = {keys}\n"
            f"[log]\nlog_level = {level}\naccess_log = {access}\n"
            f"disable_log_stats = {stats}\nlog_stats_interval = 0.2\n{extra}")


def hup_and_wait(srv, done_text):
    n = len(srv.lines)
    srv.proc.send_signal(signal.SIGHUP)
    end = time.time() + 20
    while time.time() < end:
        if any(l and done_text in l for l in srv.lines[n:]):
            return "\n".join(l for l in srv.lines[n:] if l)
        time.sleep(0.02)
    raise AssertionError(f"no '{done_text}' after SIGHUP:\n" + srv.log()[-3000:])


class Hammer:
    """Requests from two threads with the old and the new key while reloads happen."""

    def __init__(self, keys):
        self.bad = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(k,)) for k in keys]
        for t in self.threads:
            t.start()

    def run(self, key):
        while not self.stop.is_set():
            st = status(key)
            if st not in (200, 401):
                self.bad.append(st)

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not self.bad, self.bad


def test_new_keys_apply_and_restart_keys_are_named(srv, ini, keys):
    assert status("old-key") == 200 and status("file-key-1") == 200
    assert status(None) == 401 and status("new-key") == 401
    n = len(srv.lines)
    assert status("old-key") == 200
    time.sleep(0.2)
    assert any(l and "access: " in l for l in srv.lines[n:]), "no access log line"
    hammer = Hammer(["old-key", "new-key"])
    time.sleep(0.5)   # traffic over two stats intervals: no stats line while it is off
    assert not any(l and "Engine 000:" in l for l in srv.lines), "the stats line is on"
    write(ini, deployment(h.TINY, keys, "new-key", level="debug", access="false", max_len=128,
                          stats="false"))
    write(keys, "# rotated\nfile-key-2\n")
    log = hup_and_wait(srv, "reloaded:")
    hammer.join()
    assert status("new-key") == 200 and status("file-key-2") == 200, log
    assert status("old-key") == 401 and status("file-key-1") == 401 and status(None) == 401
    assert f"max_model_len = 128 ({ini}:3): needs a restart (running: 256)" in log, log
    assert f"log_level = debug ({ini}:10): applied" in log, log
    assert f"access_log = false ({ini}:11): applied" in log, log
    assert f"disable_log_stats = false ({ini}:12): applied" in log, log
    assert "new-key" not in srv.log() and "old-key" not in srv.log(), "a key was logged"
    n = len(srv.lines)
    assert status("new-key") == 200
    time.sleep(0.2)
    assert not any(l and "access: " in l for l in srv.lines[n:]), "the access log is still on"
    srv.wait_for("Engine 000: Avg prompt throughput", 5)   # the stats line is on now
    # /v1/models still says the running max_model_len: it needs a restart
    st, _, body = h.get(srv.port, "/v1/models", headers=bearer("new-key"))
    assert st == 200 and json.loads(body)["data"][0]["max_model_len"] == 256, body[:300]


def test_an_invalid_file_is_refused_and_the_keys_stay(srv, ini, keys):
    write(ini, deployment(h.TINY, keys, "third-key").replace("max_model_len = 256",
                                                            "max_model_len = lots"))
    log = hup_and_wait(srv, "is refused")
    assert f"{ini}:3: max_model_len: 'lots' is not valid" in log, log
    assert status("new-key") == 200 and status("third-key") == 401


def test_a_key_file_that_cannot_be_read_is_refused(srv, ini, keys):
    missing = keys + ".missing"
    write(ini, deployment(h.TINY, missing, "fourth-key", max_len=128, stats="false"))
    log = hup_and_wait(srv, "reloaded:")
    assert f"api_key_file '{missing}'" in log and "keeps its API keys" in log, log
    assert f"api_key_file = {missing} ({ini}:8): refused (running: {keys})" in log, log
    assert status("new-key") == 200 and status("fourth-key") == 401


def test_json_log_file_and_rotation(srv, ini, keys, tmp):
    logf = os.path.join(tmp, "pagoda.log")
    write(ini, deployment(h.TINY, keys, "new-key", max_len=128, access="true",
                          extra=f"log_format = json\nlog_file = {logf}\n"))
    srv.proc.send_signal(signal.SIGHUP)
    end = time.time() + 20
    while time.time() < end and not (os.path.exists(logf) and "reloaded:" in open(logf).read()):
        time.sleep(0.05)
    assert status("new-key") == 200
    time.sleep(0.2)
    with open(logf) as f:
        lines = [json.loads(l) for l in f]
    assert all(set(o) == {"ts", "level", "msg", "fields"} for o in lines), lines[:3]
    acc = [o for o in lines if o["msg"].startswith("access: ")]
    assert acc and acc[-1]["fields"]["prompt_tokens"] >= 1, lines[-3:]
    assert acc[-1]["fields"]["id"].startswith("cmpl-"), acc[-1]
    assert any("log_format = json" in o["msg"] for o in lines), lines
    os.rename(logf, logf + ".1")               # logrotate moves it away, then SIGHUP
    srv.proc.send_signal(signal.SIGHUP)
    end = time.time() + 20
    while time.time() < end and not (os.path.exists(logf) and "reloaded:" in open(logf).read()):
        time.sleep(0.05)
    assert os.path.exists(logf), "no new log file after the rotation"
    assert status("new-key") == 200
    time.sleep(0.2)
    with open(logf) as f:
        new = [json.loads(l) for l in f]
    assert any(o["msg"].startswith("access: ") for o in new), new


def main():
    with tempfile.TemporaryDirectory() as tmp:
        ini = os.path.join(tmp, "deploy.ini")
        keys = os.path.join(tmp, "keys")
        write(keys, "file-key-1\n")
        os.chmod(keys, 0o600)
        write(ini, deployment(h.TINY, keys, "old-key"))
        srv = suite.start_server("--config", ini, model=None)
        h_port[0] = srv.port
        suite.run(test_new_keys_apply_and_restart_keys_are_named, srv, ini, keys)
        suite.run(test_an_invalid_file_is_refused_and_the_keys_stay, srv, ini, keys)
        suite.run(test_a_key_file_that_cannot_be_read_is_refused, srv, ini, keys)
        suite.run(test_json_log_file_and_rotation, srv, ini, keys, tmp)

        def test_clean_exit():
            assert srv.stop() == 0
        suite.run(test_clean_exit)
    suite.finish()


if __name__ == "__main__":
    main()
