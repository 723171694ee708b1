#!/usr/bin/env python3
"""API keys and what is decided on a request's head alone.

Keys: several --api-key and an --api-key-file are all accepted, anything else gets 401 with
`WWW-Authenticate: Bearer` and an OpenAI error; /health and /metrics need no key; an empty
key and a file without keys are refused at start-up; a key file readable by others is
warned about. The key is checked when the head arrives: a client gets its 401 before sending
a byte of its body, and 100 concurrent unauthenticated 4 MiB bodies leave the server's
memory (RSS) within a few MiB.

Framing, answered on the head too: an unknown Transfer-Encoding gets 501 and the connection
closes; Transfer-Encoding beside Content-Length gets 400; a declared length over the limit
gets 413 before the body; a chunked body that passes the limit gets 413, nothing of it kept,
and one that goes on is cut off."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_auth")
C = "/v1/completions"
OK = {"prompt": "hello", "max_tokens": 2}
MIB = 1024 * 1024


def check_error(resp, status, code=None):
    st, hd, body = resp
    assert st == status, (st, status, body[:300])
    assert hd.get("content-type", "").startswith("application/json"), hd
    e = json.loads(body)["error"]
    assert set(e) == {"message", "type", "param", "code"} and e["message"], e
    if code:
        assert e["code"] == code, e
    return hd


def bearer(k):
    return {"Authorization": f"Bearer {k}"}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_keys(srv):
    for key in ("first", "second", "from-file-1", "from-file-2"):
        st, _, body = h.post(srv.port, C, OK, headers=bearer(key))
        assert st == 200, (key, body[:200])
    for headers in ({}, bearer("wrong"), bearer("firs"), bearer("first2"), bearer(""),
                    {"Authorization": "Basic Zmlyc3Q6"}, {"Authorization": "first"}):
        hd = check_error(h.post(srv.port, C, OK, headers=headers), 401, "invalid_api_key")
        assert hd.get("www-authenticate") == "Bearer", hd
    hd = check_error(h.get(srv.port, "/v1/models"), 401)
    assert hd.get("www-authenticate") == "Bearer", hd
    assert h.get(srv.port, "/health")[0] == 200
    assert h.get(srv.port, "/metrics")[0] == 200
    assert "readable by other users" in srv.log(), srv.log()[-2000:]
    for k in ("first", "second", "from-file-1"):
        assert k not in srv.log(), "an API key was logged"


def test_rejected_on_head(srv):
    """The 401 comes before any body byte is sent."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Authorization: Bearer nope\r\nContent-Length: {4 * MIB - 1}\r\n\r\n"
                  .encode())
        hd = check_error(h.read_response(s), 401)
        assert hd.get("www-authenticate") == "Bearer"


def unauthenticated_body(port, results, i, size):
    """Sends a head, reads the 401, then pushes the body anyway (the server may close)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {size}\r\n\r\n".encode())
            st = h.read_response(s)[0]
            try:
                s.sendall(b"x" * size)
            except OSError:
                pass
            results[i] = st
    except Exception as e:   # noqa: BLE001
        results[i] = repr(e)


def flood(port, n, size):
    results = [None] * n
    ts = [threading.Thread(target=unauthenticated_body, args=(port, results, i, size))
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert results == [401] * n, [r for r in results if r != 401][:5]


def test_unauthenticated_bodies_cost_nothing(srv):
    pid = srv.proc.pid
    flood(srv.port, 100, 10)                  # warm up: threads, stacks, pools
    before = rss_kib(pid)
    flood(srv.port, 100, 4 * MIB - 1)
    grown = rss_kib(pid) - before
    print(f"  RSS grew by {grown} KiB for 100 x 4 MiB unauthenticated bodies")
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB"


def test_framing(srv):
    key = bearer("first")["Authorization"]
    head = f"POST {C} HTTP/1.1\r\nHost: x\r\nAuthorization: {key}\r\n"
    body = json.dumps(OK).encode()
    # An unknown coding: 501, and the connection closes.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall((head + "Transfer-Encoding: gzip\r\n\r\n").encode() + body)
        hd = check_error(h.read_response(s), 501)
        assert hd.get("connection", "").lower() == "close", hd
        s.settimeout(5)
        assert s.recv(100) == b"", "the connection stayed open"
    check_error(h.raw_request(srv.port, (head + "Transfer-Encoding: chunked, gzip\r\n\r\n")
                              .encode()), 501)
    # Both framings: 400.
    check_error(h.raw_request(srv.port, (head + "Transfer-Encoding: chunked\r\n"
                                         f"Content-Length: {len(body)}\r\n\r\n").encode()
                              + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"), 400)
    # Over the limit (1 MiB here), declared: 413 on the head.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall((head + f"Content-Length: {MIB + 1}\r\n\r\n").encode())
        check_error(h.read_response(s), 413, "request_too_large")
    # Chunked past the limit: 413, and the server's memory does not hold it.
    pid = srv.proc.pid
    before = rss_kib(pid)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        piece = b"a" * 65536
        for _ in range(96):   # 6 MiB > 1 MiB (and under the 8 MiB cut-off)
            s.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        check_error(h.read_response(s), 413, "request_too_large")
    grown = rss_kib(pid) - before
    assert grown < 4 * 1024, f"RSS grew by {grown} KiB"   # kept, the body would be 6 MiB
    # A body that goes on and on: cut off, with its 413, after 8 times the limit.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        piece = b"%x\r\n" % 65536 + b"a" * 65536 + b"\r\n"
        sent = 0
        try:
            while sent < 256 * MIB:
                s.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        assert sent < 64 * MIB, f"{sent} bytes went in without the server stopping them"
        check_error(h.read_response(s), 413, "request_too_large")
    # Small chunk extensions are ignored (RFC 9112); the request is served.
    st, _, raw = h.raw_request(srv.port, (head + "Transfer-Encoding: chunked\r\n"
                                          "Connection: close\r\n\r\n").encode()
                               + b"%x;ext=%s\r\n" % (len(body), b"v" * 1000) + body
                               + b"\r\n0\r\n\r\n")
    assert st == 200, raw[:200]
    # One past the connection's 32 KiB buffer: a JSON 400 (not libmicrohttpd's page), the
    # connection closed, and the server serves on.
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode()
                  + b"%x;ext=%s\r\n" % (len(body), b"v" * 65536) + body + b"\r\n0\r\n\r\n")
        check_error(h.read_response(s), 400, "invalid_chunked_encoding")
    assert h.post(srv.port, C, OK, headers=bearer("first"))[0] == 200


def test_start_up_refusals():
    def refused(*args):
        p = subprocess.run([h.PAGODA, "serve", "--model", h.TINY, "--port", "0", *args],
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stderr
    rc, err = refused("--api-key", "")
    assert rc != 0 and "api_key is empty" in err, (rc, err)
    with tempfile.NamedTemporaryFile("w", suffix=".keys") as f:
        f.write("# only a comment\n\n")
        f.flush()
        rc, err = refused("--api-key-file", f.name)
        assert rc != 0 and "holds no key" in err, (rc, err)
    rc, err = refused("--api-key-file", "/nonexistent/keys")
    assert rc != 0 and "/nonexistent/keys" in err, (rc, err)


def main():
    with tempfile.TemporaryDirectory() as d:
        keys = os.path.join(d, "keys")
        with open(keys, "w") as f:
            f.write("# rotated keys\nfrom-file-1\n\n  from-file-2  \n")
        os.chmod(keys, 0o644)
        srv = suite.start_server("--api-key", "first", "--api-key", "second",
                                 "--api-key-file", keys, "--max-body-bytes", str(4 * MIB))
        srv_small = suite.start_server("--api-key", "first", "--max-body-bytes", str(MIB))
        suite.run(test_keys, srv)
        suite.run(test_rejected_on_head, srv)
        suite.run(test_unauthenticated_bodies_cost_nothing, srv)
        suite.run(test_framing, srv_small)
        suite.run(test_start_up_refusals)

        def test_clean_exit():
            assert srv.stop() == 0 and srv_small.stop() == 0
        suite.run(test_clean_exit)
    suite.finish()


if __name__ == "__main__":
    main()
