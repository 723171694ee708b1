"""Shared by the HTTP tests: starts `pagoda serve` on a free loopback port, stops it (bounded
time), runs test functions and prints a Criterion-style synthesis line that .ci/run sums.

Environment (set by `make check`): PGD_BUILDDIR (the build tree: tools/pagoda) and
PGD_SRCDIR (the source tree: tests/fixtures)."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

BUILDDIR = os.environ.get("PGD_BUILDDIR", os.getcwd())
SRCDIR = os.environ.get("PGD_SRCDIR", os.path.join(os.path.dirname(__file__), ".."))
PAGODA = os.path.join(BUILDDIR, "tools", "pagoda")
TINY = os.path.join(SRCDIR, "tests", "fixtures", "models", "tiny-chat")
STOP_TIMEOUT = 30
SERVERS = []   # every server started, so that a failing test can show a dead one's log


class Server:
    """`pagoda serve --port 0 ...` on 127.0.0.1; .port, .url, .stop() -> exit status."""

    def __init__(self, *args, model=TINY, wait_ready=True, timeout=120):
        # model None: the caller gives it in args (e.g. positionally, as `vllm serve MODEL`).
        cmd = [PAGODA, "serve", *(["--model", model] if model else []), "--host", "127.0.0.1",
               "--port", "0", "--grace", "5", *args]
        self.lines = []
        self.reported = False
        SERVERS.append(self)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, errors="replace")
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = None
        line = self.wait_for("listening on", timeout)
        self.port = int(line.rsplit(":", 1)[1].split()[0])
        self.url = f"http://127.0.0.1:{self.port}"
        if wait_ready:
            self.wait_for("ready:", timeout)

    def _read(self):
        for line in self.proc.stderr:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()
        with self._cv:
            self.lines.append(None)
            self._cv.notify_all()

    def wait_for(self, text, timeout=60):
        end = time.time() + timeout
        with self._cv:
            while True:
                for line in self.lines:
                    if line is None:
                        raise RuntimeError("pagoda serve exited:\n" + self.log())
                    if text in line:
                        return line
                left = end - time.time()
                if left <= 0:
                    raise RuntimeError(f"pagoda serve: no '{text}' in {timeout} s:\n" + self.log())
                self._cv.wait(left)

    def log(self):
        return "\n".join(l for l in self.lines if l is not None)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signals the server and waits (bounded); returns its exit status (kills it and
        raises when it does not stop in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"pagoda serve did not stop within {timeout} s")
        self._reader.join(5)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            try:
                self.stop()
            except RuntimeError:
                pass


def raw_request(port, data, timeout=30, read=True):
    """Sends raw bytes on a fresh connection; returns (status, headers, body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if not read:
            return None
        return read_response(s)


def read_response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the response headers: %r" % buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = rest
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        data = rest
        while True:
            while b"\r\n" not in data:
                more = s.recv(65536)
                if not more:
                    raise RuntimeError("truncated chunked body")
                data += more
            size_line, data = data.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(data) < size + 2:
                more = s.recv(65536)
                if not more:
                    raise RuntimeError("truncated chunk")
                data += more
            if size == 0:
                break
            body += data[:size]
            data = data[size + 2:]
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(body) < n:
            more = s.recv(65536)
            if not more:
                break
            body += more
    return status, headers, body


def post(port, path, obj=None, raw=None, headers=None, timeout=60):
    body = raw if raw is not None else json.dumps(obj).encode()
    h = {"Host": "127.0.0.1", "Content-Type": "application/json",
         "Content-Length": str(len(body)), "Connection": "close"}
    h.update(headers or {})
    req = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return raw_request(port, req.encode() + body, timeout)


def get(port, path, headers=None, timeout=30):
    h = {"Host": "127.0.0.1", "Connection": "close"}
    h.update(headers or {})
    req = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    return raw_request(port, req.encode(), timeout)


def metrics(port):
    """The /metrics samples as {name{labels}: value}, without the model_name label every
    series carries (a single model is served)."""
    st, _, body = get(port, "/metrics")
    assert st == 200, st
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            k = re.sub(r'model_name="(?:[^"\\]|\\.)*",?', "", k).replace("{}", "")
            out[k] = float(v)
    return out


def wait_idle(port, timeout=20):
    """Waits until the engine holds no KV block and runs nothing; returns the metrics."""
    end = time.time() + timeout
    while True:
        m = metrics(port)
        if (m.get("pagoda:kv_cache_usage_perc") == 0 and m.get("pagoda:num_requests_running") == 0
                and m.get("pagoda:num_requests_waiting") == 0):
            return m
        if time.time() > end:
            raise AssertionError("the engine is not idle: " + json.dumps(
                {k: v for k, v in m.items() if "kv_cache" in k or "num_requests" in k}))
        time.sleep(0.05)


class Suite:
    """Runs tests; prints one line per test and the synthesis; exits 1 on any failure."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def run(self, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
        except Exception:
            self.failed += 1
            print(f"[FAIL] {self.name}::{fn.__name__} ({time.time() - t0:.2f}s)")
            traceback.print_exc(file=sys.stdout)
            for srv in SERVERS:
                rc = srv.proc.poll()
                if rc is not None and rc != 0 and not srv.reported:
                    srv.reported = True
                    print(f"---- pagoda serve exited with status {rc}; its log:")
                    print(srv.log()[-6000:])
        else:
            self.passed += 1
            print(f"[PASS] {self.name}::{fn.__name__} ({time.time() - t0:.2f}s)")
        sys.stdout.flush()

    def need(self, *modules):
        """Imports the test packages a suite cannot run without (scripts/requirements-test.txt);
        a missing one fails the suite at once, saying which."""
        import importlib
        try:
            return [importlib.import_module(m) for m in modules]
        except ImportError as e:
            print(f"a test package is missing ({e}): pip install -r scripts/requirements-test.txt")
            self.failed += 1
            self.finish()

    def start_server(self, *args, **kw):
        """A Server(*args, **kw); one that cannot start fails the suite at once, saying why."""
        try:
            return Server(*args, **kw)
        except Exception as e:   # noqa: BLE001
            print("cannot start pagoda serve:", e)
            self.failed += 1
            self.finish()

    def finish(self):
        n = self.passed + self.failed
        print(f"[====] Synthesis: Tested: {n} | Passing: {self.passed} | "
              f"Failing: {self.failed} | Crashing: 0")
        sys.stdout.flush()
        sys.exit(1 if self.failed else 0)
