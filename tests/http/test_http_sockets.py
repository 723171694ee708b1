#!/usr/bin/env python3
"""Where `pagoda serve` listens: a second server on a busy port fails at once with exit status
1 and a message naming the port (no SO_REUSEPORT: the kernel never splits the traffic);
`--host ::` answers over IPv6 and IPv4 alike (dual-stack); `--uds PATH` serves over a Unix
socket, replaces a dead server's socket file but neither a live one nor a regular file, and
removes its file when it stops."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_sockets")


def serve(*args):
    return subprocess.Popen([h.PAGODA, "serve", "--model", h.TINY, "--grace", "2", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            errors="replace")


def wait_line(proc, text, timeout=60):
    """Reads proc's stderr up to a line holding text; returns (line, everything read)."""
    got = []
    end = time.time() + timeout
    while time.time() < end:
        line = proc.stderr.readline()
        if not line:
            break
        got.append(line)
        if text in line:
            return line, "".join(got)
    raise AssertionError(f"no '{text}' from pagoda serve:\n" + "".join(got))


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(30)
    proc.stderr.read()
    return rc


def http_over(sock, path="/health"):
    with sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        return h.read_response(sock)


def test_port_in_use():
    with h.Server() as first:
        t0 = time.time()
        second = serve("--host", "127.0.0.1", "--port", str(first.port))
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1, (second.returncode, err)
        assert time.time() - t0 < 30
        assert f"port {first.port}" in err and "in use" in err, err
        assert h.get(first.port, "/health")[0] == 200, "the first server stopped answering"
        assert first.stop() == 0


def test_dual_stack():
    with h.Server("--host", "::") as srv:
        assert "http://[::]:" in srv.log(), srv.log()
        v4 = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        assert http_over(v4)[0] == 200
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.settimeout(10)
        v6.connect(("::1", srv.port))
        assert http_over(v6)[0] == 200
        assert srv.stop() == 0


def uds_conn(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    return s


def test_unix_socket():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "pagoda.sock")
        # A dead server's socket file: replaced.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()
        proc = serve("--uds", path)
        try:
            line, _ = wait_line(proc, "listening on")
            assert f"unix:{path}" in line, line
            wait_line(proc, "ready:")
            assert http_over(uds_conn(path))[0] == 200
            body = json.dumps({"prompt": "hello", "max_tokens": 3}).encode()
            s = uds_conn(path)
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
                      % len(body) + body)
            st, _, raw = h.read_response(s)
            s.close()
            assert st == 200 and json.loads(raw)["usage"]["completion_tokens"] == 3, raw
            # A live socket: a second server refuses to take it.
            second = serve("--uds", path)
            _, err = second.communicate(timeout=60)
            assert second.returncode == 1 and "in use" in err and path in err, err
            assert http_over(uds_conn(path))[0] == 200
        finally:
            rc = stop(proc)
        assert rc == 0, rc
        assert not os.path.exists(path), "the socket file was left behind"
        # A regular file is never replaced.
        with open(path, "w") as f:
            f.write("precious")
        third = serve("--uds", path)
        _, err = third.communicate(timeout=60)
        assert third.returncode == 1 and "not a socket" in err, err
        assert open(path).read() == "precious"


def main():
    suite.run(test_port_in_use)
    suite.run(test_dual_stack)
    suite.run(test_unix_socket)
    suite.finish()


if __name__ == "__main__":
    main()
