#!/usr/bin/env python3
"""The torture suite: a real `pagoda serve` (the tiny fixture model) attacked the way a broken
or hostile client would, with raw sockets.

Groups: malformed request lines and headers, bodies and Content-Length, chunked encoding
abuse, pipelining, a table of every request field of /v1/completions and
/v1/chat/completions x every wrong type and out-of-range number (generated from one table of
fields), deep nesting, invalid UTF-8 and lone surrogates, slow clients, many clients,
disconnects at every point of a stream, and SIGTERM with requests running.

After every group the server must still answer /health and run one real completion; at the
end no KV block is used, no request runs or waits, and the only HTTP request in progress is
the /metrics read itself. Every 4xx must be the OpenAI error shape
{"error": {"message", "type", "param", "code"}}.

Cases that fail because of a known bug outside this suite's area are listed in KNOWN with
the reason: they print [XFAIL] (and [XPASS] once fixed, so the entry can go) and do not
fail the run; any other failure does."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402
from raw_http import (Conn, MhdHtml, Resp, check_error, check_refused,  # noqa: E402
                      check_shape, exchange, post, request_bytes)

suite = h.Suite("http_torture")
C = "/v1/completions"
CHAT = "/v1/chat/completions"
VOCAB = 320                 # the tiny-chat fixture's vocabulary
MAX_N = 64                  # the frontend's default --max-n
INT_MAX = 2 ** 31 - 1
I64_MIN, I64_MAX = -2 ** 63, 2 ** 63 - 1
MAX_BODY = 256 * 1024       # this server's --max-body-bytes

# Case id -> why it fails today. Each names the bug and whose item fixes it.
KNOWN = {
    "chunked/size_2_64_minus_1": "libmicrohttpd 0.9.75 parses chunk sizes alone and never tells "
                                 "the application a declared size: a chunk of 2^64-1 bytes "
                                 "whose data stops after 10 bytes is awaited until the body's "
                                 "inactivity timeout (--header-timeout) closes it; one whose "
                                 "data goes on gets its 413 at the first byte past "
                                 "--max-body-bytes (chunked/size_over_limit)",
}
# libmicrohttpd answers HTTP it cannot parse itself, before any route is reached, with an
# HTML page (and for a bad Content-Length it writes the status line and headers twice).
# The issue asks for the OpenAI JSON shape everywhere; until the frontend can answer those
# itself, such answers are XFAIL with this reason (in the HTTP-level groups only: a route's
# answer must always be JSON).
MHD_HTML = ("libmicrohttpd's own HTML error page (the request never reached a route; issue 14 "
            "item 5 wants JSON)")
xfails, xpasses = [], []


class Cases:
    """Collects the failures of a group's cases so that one run shows all of them."""

    def __init__(self, group, http_level=False):
        self.group = group
        self.http_level = http_level   # malformed HTTP: libmicrohttpd may answer it itself
        self.failures = []

    def run(self, case_id, fn, *args):
        key = f"{self.group}/{case_id}"
        try:
            fn(*args)
        except (AssertionError, OSError, EOFError, ValueError) as e:
            if isinstance(e, MhdHtml) and self.http_level and key not in KNOWN:
                xfails.append(key)
                print(f"[XFAIL] http_torture::{key}: {MHD_HTML}\n        saw: {str(e)[:200]}")
                return
            if key in KNOWN:
                xfails.append(key)
                print(f"[XFAIL] http_torture::{key}: {KNOWN[key]}\n        saw: "
                      f"{str(e)[:300]}")
            else:
                self.failures.append(f"{key}: {type(e).__name__}: {str(e)[:600]}")
            return
        if key in KNOWN:
            xpasses.append(key)
            print(f"[XPASS] http_torture::{key} passes now: remove it from KNOWN")

    def finish(self):
        assert not self.failures, f"{len(self.failures)} case(s) failed:\n  " + \
            "\n  ".join(self.failures)


def alive(port):
    """/health answers and a real completion runs."""
    r = exchange(port, request_bytes("GET", "/health"))
    assert r is not None and r.status == 200, f"/health: {r!r}"
    r = post(port, C, {"prompt": "hello", "max_tokens": 2})
    assert r is not None and r.status == 200, f"completion: {r!r}"
    assert json.loads(r.body)["usage"]["completion_tokens"] >= 1, r


def group(fn):
    """A test group: its cases, then the liveness check."""
    def run(srv):
        fn(srv)
        alive(srv.port)
    run.__name__ = fn.__name__
    return run


# ---- request lines and headers -------------------------------------------------------------

HEALTH_OK = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
BAD_HEADS = {
    "empty_line_only": b"\r\n\r\n",
    "method_only": b"GET\r\n\r\n",
    "http09": b"GET /health\r\n\r\n",
    "version_9.9": b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n",
    "version_garbage": b"GET /health HTTP/1.x\r\nHost: x\r\n\r\n",
    "no_host_1.1": b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n",
    "two_hosts": b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
    "leading_space": b" GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "extra_spaces": b"GET  /health  HTTP/1.1\r\nHost: x\r\n\r\n",
    "tab_separated": b"GET\t/health\tHTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown_method": b"BREW /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "lowercase_method": b"get /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "long_method": b"G" * 5000 + b" /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "long_url": b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "long_header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: " + b"b" * 100000 + b"\r\n\r\n",
    "many_headers": b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 20000 + b"\r\n",
    "header_no_colon": b"GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
    "space_before_colon": b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n",
    "nul_in_header": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "nul_in_url": b"GET /hea\x00lth HTTP/1.1\r\nHost: x\r\n\r\n",
    "ctl_in_url": b"GET /hea\x01lth HTTP/1.1\r\nHost: x\r\n\r\n",
    "high_bytes_in_url": b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "obs_fold": b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "bare_cr": b"GET /health HTTP/1.1\rHost: x\r\r",
    "binary": bytes(range(256)) + b"\r\n\r\n",
    "tls_hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n",
    "percent_garbage": b"GET /v1/models?%ZZ=%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "dotdot": b"GET /health/../v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "absolute_form": b"GET http://x/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "asterisk": b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n"
               b"Connection: close\r\n\r\n",
    "expect_bogus": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n"
                    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
}
# Not a request yet (the server waits for the rest, until its header timeout).
HEAD_INCOMPLETE = {"empty_line_only", "bare_cr"}
# Answers that are fine for one of these: the request is valid HTTP (served normally).
HEAD_MAY_SUCCEED = {"lowercase_method", "extra_spaces", "tab_separated", "leading_space",
                    "two_hosts", "obs_fold", "space_before_colon", "nul_in_header", "dotdot",
                    "absolute_form", "percent_garbage", "http09", "bare_cr", "empty_line_only",
                    "long_header", "many_headers"}


@group
def test_request_lines_and_headers(srv):
    cs = Cases("head", http_level=True)

    def one(name, data):
        if name in HEAD_INCOMPLETE:   # no request yet: the connection just waits
            c = Conn(srv.port, 5)
            c.send(data)
            assert c.closed_by_peer(0.5) in (True, False)
            timed_health(srv.port)
            c.close()
            return
        r = exchange(srv.port, data, timeout=5)
        if name in HEAD_MAY_SUCCEED and r is not None and r.status < 400:
            return
        check_refused(r, name)
    for name, data in BAD_HEADS.items():
        cs.run(name, one, name, data)

    def leading_crlf():   # RFC 9112 2.2: empty lines before a request line are ignored
        r = exchange(srv.port, b"\r\n\r\n" + HEALTH_OK, timeout=5)
        if r is None or r.status >= 400:
            check_refused(r, "leading_crlf")
    cs.run("leading_crlf", leading_crlf)

    def expect_continue():   # the client waits for 100 Continue, then sends the body
        body = json.dumps({"prompt": "hi", "max_tokens": 1}).encode()
        c = Conn(srv.port, 5)
        c.send(request_bytes("POST", C, body, {"Expect": "100-continue"})[:-len(body)])
        line = c._line()
        assert b" 100 " in line + b" ", line
        while c._line():
            pass
        c.send(body)
        r = c.response()
        c.close()
        assert r.status == 200, r
    cs.run("expect_100_continue", expect_continue)

    def wrong_method_is_json():
        check_error(exchange(srv.port, request_bytes("DELETE", "/v1/models")), "DELETE",
                    405)
        check_error(exchange(srv.port, request_bytes("PUT", C, b"{}")), "PUT", 405)
    cs.run("wrong_method_json", wrong_method_is_json)
    cs.finish()


# ---- bodies and Content-Length -------------------------------------------------------------

def body_head(length_header, extra=b""):
    return (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + length_header + b"Connection: close\r\n" + extra + b"\r\n")


GOOD_BODY = json.dumps({"prompt": "hi", "max_tokens": 1}).encode()


@group
def test_bodies(srv):
    cs = Cases("body", http_level=True)
    bad_lengths = {
        "cl_negative": b"Content-Length: -1\r\n",
        "cl_hex": b"Content-Length: 0x10\r\n",
        "cl_text": b"Content-Length: abc\r\n",
        "cl_empty": b"Content-Length: \r\n",
        "cl_list": b"Content-Length: 5, 5\r\n",
        "cl_two_differ": b"Content-Length: 5\r\nContent-Length: 6\r\n",
        "cl_overflow": b"Content-Length: 99999999999999999999999\r\n",
        "cl_2_64": b"Content-Length: 18446744073709551616\r\n",
        "cl_plus": b"Content-Length: +16\r\n",
        "cl_over_limit": f"Content-Length: {MAX_BODY + 1}\r\n".encode(),
    }
    for name, hdr in bad_lengths.items():
        cs.run(name, lambda hdr=hdr, name=name: check_refused(
            exchange(srv.port, body_head(hdr) + GOOD_BODY, timeout=5), name))

    def empty_body():
        check_error(exchange(srv.port, body_head(b"Content-Length: 0\r\n")), "empty", 400)
    cs.run("empty_body", empty_body)

    def no_length_no_body():   # a POST with neither Content-Length nor chunked: empty body
        r = exchange(srv.port, body_head(b""), timeout=5)
        check_refused(r, "no_length")
    cs.run("no_length", no_length_no_body)

    def short_body_then_close():   # fewer bytes than promised, then the client half-closes
        c = Conn(srv.port, 5)
        c.send(body_head(b"Content-Length: 100\r\n") + GOOD_BODY)
        c.s.shutdown(socket.SHUT_WR)
        try:
            r = c.response()
        except (EOFError, ConnectionResetError):
            r = None
        c.close()
        check_refused(r, "short_body")
    cs.run("short_body", short_body_then_close)

    def long_body():   # more bytes than promised: the rest is a second (garbage) request
        r = exchange(srv.port, body_head(f"Content-Length: {len(GOOD_BODY)}\r\n".encode()) +
                     GOOD_BODY + b"garbage after the body\r\n\r\n", timeout=5)
        assert r is not None and r.status == 200, r
    cs.run("long_body", long_body)

    def body_on_get():
        r = exchange(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Connection: close\r\n\r\nhello", timeout=5)
        assert r is not None and r.status in (200, 400), r
        if r.status == 400:
            check_shape(r, "body_on_get")
    cs.run("body_on_get", body_on_get)

    def at_limit():   # exactly the limit is read (and then refused as too long a prompt)
        pad = MAX_BODY - len(b'{"prompt": "", "max_tokens": 1}')
        body = b'{"prompt": "' + b"a" * pad + b'", "max_tokens": 1}'
        assert len(body) == MAX_BODY
        check_error(post(srv.port, C, body), "at_limit", 400, ("prompt",))
        check_error(post(srv.port, C, body + b" "), "over_limit", 413)
    cs.run("at_limit", at_limit)

    def content_types():   # the Content-Type is not what decides: the body must be JSON
        for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; "
                   "boundary=x", "application/json; charset=latin-1"):
            r = post(srv.port, C, GOOD_BODY, {"Content-Type": ct})
            assert r is not None and r.status in (200, 400, 415), (ct, r)
            if r.status >= 400:
                check_shape(r, ct)
        r = post(srv.port, C, b"prompt=hi&max_tokens=1",
                 {"Content-Type": "application/x-www-form-urlencoded"})
        check_error(r, "form body", 400)
    cs.run("content_types", content_types)
    cs.finish()


# ---- chunked transfer encoding -------------------------------------------------------------

def chunked_head(te=b"Transfer-Encoding: chunked\r\n", path=b"/v1/completions"):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + te + b"Connection: close\r\n\r\n")


def chunks(data, size):
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


@group
def test_chunked(srv):
    # Not http_level: a chunked body's request reached its route, so even the framing errors
    # libmicrohttpd finds must be answered in the OpenAI JSON shape.
    cs = Cases("chunked")

    def good(name, body):
        r = exchange(srv.port, chunked_head() + body, timeout=10)
        assert r is not None and r.status == 200, (name, r)
    cs.run("one_byte_chunks", good, "one_byte_chunks", chunks(GOOD_BODY, 1))
    cs.run("upper_hex", good, "upper_hex", chunks(GOOD_BODY, 26).replace(b"1a\r\n", b"1A\r\n"))
    cs.run("trailers", good, "trailers", chunks(GOOD_BODY, 8)[:-2] + b"X-T: 1\r\n\r\n")
    cs.run("small_extension", good, "small_extension",
           b"%x;name=value\r\n" % len(GOOD_BODY) + GOOD_BODY + b"\r\n0\r\n\r\n")

    bad = {
        "size_not_hex": b"zz\r\nabc\r\n0\r\n\r\n",
        "size_negative": b"-1\r\nabc\r\n0\r\n\r\n",
        "size_overflow": b"ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "size_2_64_minus_1": b"ffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "size_empty": b"\r\nabc\r\n0\r\n\r\n",
        "size_space": b" 3\r\nabc\r\n0\r\n\r\n",
        "data_longer_than_size": b"2\r\nabcdef\r\n0\r\n\r\n",
        "missing_crlf_after_data": b"3\r\nabcXX3\r\nabc\r\n0\r\n\r\n",
        "no_last_chunk": b"3\r\nabc\r\n",
        "extension_64k": b"1;" + b"a" * 65536 + b"\r\nx\r\n0\r\n\r\n",
        "many_extensions": b"1" + b";a=b" * 5000 + b"\r\nx\r\n0\r\n\r\n",
        "huge_trailer": b"0\r\nX-T: " + b"t" * 100000 + b"\r\n\r\n",
        "bare_lf": b"3\nabc\n0\n\n",
    }

    def refused(name, body):
        c = Conn(srv.port, 1.5)
        try:
            c.send(chunked_head() + body)
            if name == "no_last_chunk":
                c.s.shutdown(socket.SHUT_WR)
            try:
                r = c.response()
            except (EOFError, ConnectionResetError, BrokenPipeError):
                r = None
        finally:
            c.close()
        if name == "bare_lf" and r is not None and r.status < 500:
            return   # a lenient parser may take it as "abc" (then the JSON is refused)
        check_refused(r, name)
    for name, body in bad.items():
        cs.run(name, refused, name, body)

    def over_limit(name, size_line, pieces):
        """A chunked body past --max-body-bytes that has not ended: its JSON 413 comes as
        soon as the data passes the limit, while the client is still sending."""
        c = Conn(srv.port, 1.5)
        try:
            c.send(chunked_head() + size_line)
            for p in pieces:
                c.send(p)
            r = c.response()
        finally:
            c.close()
        check_error(r, name, 413)
    big = b"a" * (MAX_BODY + 1)
    cs.run("size_over_limit", over_limit, "size_over_limit", b"%x\r\n" % len(big),
           [big[:MAX_BODY], big[MAX_BODY:]])
    cs.run("many_chunks_over_limit", over_limit, "many_chunks_over_limit", b"",
           [b"%x\r\n" % 4096 + b"a" * 4096 + b"\r\n"] * (MAX_BODY // 4096 + 1))

    def extension_answer(name, ext_len):
        """A chunk extension is ignored while its chunk-size line fits in the connection's
        buffer (the body then decides), and gets a JSON 400 past it."""
        r = exchange(srv.port, chunked_head() + b"%x;e=" % len(GOOD_BODY) + b"v" * ext_len
                     + b"\r\n" + GOOD_BODY + b"\r\n0\r\n\r\n", timeout=5)
        if ext_len < 16384:
            assert r is not None and r.status == 200, (name, r)
        else:
            check_error(r, name, 400)
            assert json.loads(r.body)["error"]["code"] == "invalid_chunked_encoding", r
    cs.run("extension_16k_less", extension_answer, "extension_16k_less", 16000)
    cs.run("extension_1m", extension_answer, "extension_1m", 1 << 20)

    def answer_alone(name, body):
        """Our JSON answer to a framing error is all that comes: libmicrohttpd's own page
        never follows it (the connection is read to its end)."""
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        data = b""
        try:
            try:
                s.sendall(chunked_head() + body)
            except (BrokenPipeError, ConnectionResetError):
                pass
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        except ConnectionResetError:
            pass
        finally:
            s.close()
        assert data.count(b"HTTP/1.1 ") == 1 and b"<html" not in data, (name, data[:600])
    for name in ("size_not_hex", "size_overflow", "extension_64k", "huge_trailer"):
        cs.run(name + "_answer_alone", answer_alone, name, bad[name])

    def unknown_te(name, te):
        c = Conn(srv.port, 1.5)
        try:
            c.send(chunked_head(te) + GOOD_BODY)
            try:
                r = c.response()
            except socket.timeout:
                raise AssertionError(f"{name}: no answer within 1.5 s (the connection is held)")
            except (EOFError, ConnectionResetError):
                r = None
        finally:
            c.close()
        assert r is not None, f"{name}: closed without an answer"
        assert r.status in (400, 501), (name, r)
        if r.status == 400:
            check_shape(r, name)
    cs.run("te_gzip", unknown_te, "te_gzip", b"Transfer-Encoding: gzip\r\n")
    cs.run("te_gzip_chunked", unknown_te, "te_gzip_chunked",
           b"Transfer-Encoding: gzip, chunked\r\n")
    cs.run("te_unknown", unknown_te, "te_unknown", b"Transfer-Encoding: frobnicate\r\n")

    def te_and_cl():   # RFC 9112 6.1: chunked wins over Content-Length (or a 400)
        r = exchange(srv.port, chunked_head(b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n")
                     + chunks(GOOD_BODY, 7), timeout=5)
        assert r is not None and r.status in (200, 400), r
        if r.status == 400:
            check_shape(r, "te_and_cl")
    cs.run("te_and_cl", te_and_cl)
    cs.finish()


# ---- pipelining ----------------------------------------------------------------------------

@group
def test_pipelining(srv):
    cs = Cases("pipeline", http_level=True)
    body = json.dumps({"prompt": "hi", "max_tokens": 2}).encode()
    sbody = json.dumps({"prompt": "hi", "max_tokens": 3, "stream": True}).encode()

    def in_order(reqs, want):
        c = Conn(srv.port, 15)
        c.send(b"".join(reqs))
        got = []
        for w in want:
            method = "HEAD" if w == "HEAD" else "GET"
            r = c.response(method)
            got.append(r)
        c.close()
        for r, w in zip(got, want):
            ws = 200 if w == "HEAD" else w
            assert r.status == ws, (got, want)
        return got

    cs.run("three", in_order, [request_bytes("GET", "/health", close=False),
                               request_bytes("POST", C, body, close=False),
                               request_bytes("GET", "/v1/models")], [200, 200, 200])
    cs.run("bad_in_middle", in_order, [request_bytes("POST", C, body, close=False),
                                       request_bytes("POST", C, b"{nope", close=False),
                                       request_bytes("POST", CHAT, b"[]", close=False),
                                       request_bytes("POST", C, body)], [200, 400, 400, 200])
    cs.run("stream_then_more", in_order, [request_bytes("POST", C, sbody, close=False),
                                          request_bytes("HEAD", "/health", close=False),
                                          request_bytes("GET", "/health")],
           [200, "HEAD", 200])
    cs.run("fifty_health", in_order, [request_bytes("GET", "/health", close=False)] * 49 +
           [request_bytes("GET", "/health")], [200] * 50)

    def errors_keep_order():
        got = in_order([request_bytes("GET", "/nope", close=False),
                        request_bytes("POST", C, b'{"prompt": 5}', close=False),
                        request_bytes("GET", "/health")], [404, 400, 200])
        check_error(got[0], "404", 404)
        check_error(got[1], "400", 400, ("prompt",))
    cs.run("errors_keep_order", errors_keep_order)

    def garbage_after():   # a good request, then bytes that are no request: answered, closed
        c = Conn(srv.port, 5)
        c.send(request_bytes("GET", "/health", close=False) + b"\x00\x01garbage\r\n\r\n")
        r = c.response()
        assert r.status == 200, r
        c.s.settimeout(1)
        try:
            r2 = c.response()
        except (EOFError, ConnectionResetError):
            r2 = None
        except socket.timeout:   # waiting for the rest of a "request line": allowed
            c.close()
            timed_health(srv.port)
            return
        c.close()
        check_refused(r2, "garbage_after")
    cs.run("garbage_after", garbage_after)
    cs.finish()


# ---- every field x every wrong value -------------------------------------------------------

COMPL, CHATS, BOTH = ("c",), ("chat",), ("c", "chat")
# (field, kind, lo, hi, endpoints, extra fields the case needs). kind: int | num | num_open
# (lo excluded) | bool | str | special (its bad values are listed in SPECIAL_BAD).
FIELDS = [
    ("max_tokens", "int", 1, INT_MAX, BOTH, {}),
    ("max_completion_tokens", "int", 1, INT_MAX, BOTH, {}),
    ("n", "int", 1, MAX_N, BOTH, {}),
    ("top_k", "int", -1, INT_MAX, BOTH, {}),
    ("min_tokens", "int", 0, INT_MAX, BOTH, {}),
    ("seed", "int", I64_MIN, I64_MAX, BOTH, {}),
    ("logprobs", "int", 0, 20, COMPL, {}),
    ("top_logprobs", "int", 0, 20, CHATS, {"logprobs": True}),
    ("temperature", "num", 0, 2, BOTH, {}),
    ("top_p", "num_open", 0, 1, BOTH, {}),
    ("presence_penalty", "num", -2, 2, BOTH, {}),
    ("frequency_penalty", "num", -2, 2, BOTH, {}),
    ("min_p", "num", 0, 1, BOTH, {}),
    ("repetition_penalty", "num_open", 0, 10, BOTH, {}),
    ("stream", "bool", None, None, BOTH, {}),
    ("echo", "bool", None, None, COMPL, {}),
    ("logprobs", "bool", None, None, CHATS, {}),
    ("ignore_eos", "bool", None, None, BOTH, {}),
    ("skip_special_tokens", "bool", None, None, BOTH, {}),
    ("include_stop_str_in_output", "bool", None, None, BOTH, {}),
    ("add_special_tokens", "bool", None, None, BOTH, {}),
    ("add_generation_prompt", "bool", None, None, CHATS, {}),
    ("model", "str", None, None, BOTH, {}),
    ("user", "str", None, None, BOTH, {}),
    ("prompt", "special", None, None, COMPL, {}),
    ("messages", "special", None, None, CHATS, {}),
    ("stop", "special", None, None, BOTH, {}),
    ("stop_token_ids", "special", None, None, BOTH, {}),
    ("logit_bias", "special", None, None, BOTH, {}),
    ("stream_options", "special", None, None, BOTH, {"stream": True}),
    ("chat_template_kwargs", "special", None, None, CHATS, {}),
    ("tools", "special", None, None, CHATS, {}),
]
WRONG_TYPES = {
    "int": ['"1"', "true", "false", "[]", "{}", "[1]", "1.5", '""', "-0.5"],
    "num": ['"1"', "true", "[]", "{}", "[1]", '""'],
    "bool": ["0", "1", '"true"', '"false"', "[]", "{}", '""', "[true]"],
    "str": ["1", "true", "[]", "{}", '["a"]', "1.5"],
}
M = '{"role": "user", "content": "x"}'
SPECIAL_BAD = {
    "prompt": ["5", "true", "{}", "[]", "[[]]", "[1.5]", "[-1]", f"[{VOCAB}]", f"[{2 ** 31}]",
               '["a", 1]', '[[1], "a"]', f"[[1], [{VOCAB}]]", '[["a"]]', '""', '[""]',
               "[" + ", ".join(['"a"'] * (MAX_N + 1)) + "]", "[[1, 2], [3, -4]]", "[true]",
               "[null]", '[{"a": 1}]'],
    "messages": ['"hi"', "[]", "{}", "5", "[1]", "[{}]", '[{"role": 1}]', '[{"role": null}]',
                 '[{"role": "user", "content": 1}]', '[{"role": "user", "content": {}}]',
                 '[{"role": "user", "content": [1]}]', '[{"role": "user", "content": [[]]}]',
                 '[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]',
                 '[{"role": "user", "content": [{"type": "text"}]}]',
                 '[{"role": "user", "content": [{"type": "text", "text": 5}]}]',
                 '[{"role": "user", "content": [{"text": "x"}]}]', f"[{M}, 5]", f"[{M}, []]"],
    "stop": ["5", "true", "{}", "[5]", '[""]', '""', "[[]]", '["a", 5]',
             "[" + ", ".join(['"s"'] * 17) + "]", '[null]'],
    "stop_token_ids": ['"1"', "5", "{}", "[-1]", f"[{VOCAB}]", "[1.5]", '["1"]', "[[1]]",
                       "[true]", "[" + ", ".join(["1"] * 1025) + "]", f"[{2 ** 40}]"],
    "logit_bias": ["[]", '"x"', "5", '{"a": 1}', '{"-1": 1}', f'{{"{VOCAB}": 1}}',
                   '{"5": 101}', '{"5": -100.5}', '{"5": "1"}', '{"5": true}', '{"": 1}',
                   '{"5 ": 1}', '{" 5": 1}', '{"1e1": 1}', '{"99999999999999999999": 1}',
                   '{"5": []}', '{"5": 1e300}', '{"0x5": 1}'],
    "stream_options": ["3", "[]", '"x"', '{"include_usage": "yes"}', '{"include_usage": 1}'],
    "chat_template_kwargs": ["[]", '"x"', "1", "true"],
    "tools": ["{}", '"x"', "1", "true"],
}
# Numbers jansson cannot hold, or that are not JSON: the body as a whole is refused.
NOT_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "0x10", "01", "+1",
                    ".5", "1.", "-", "1e", "--1", str(2 ** 64), str(-2 ** 63 - 1)]


def out_of_range(kind, lo, hi):
    if kind == "int":
        vals = [lo - 1, hi + 1, hi * 4 + 7, lo - 1000]
        return [str(v) for v in vals if I64_MIN <= v <= I64_MAX] + \
            [f"{float(hi + 1):.1f}" if hi + 1 < 2 ** 53 else "1e300", "1e300", "-1e300"]
    eps = max(1e-6, abs(hi - lo) * 1e-6)
    vals = [lo if kind == "num_open" else lo - eps, hi + eps, 1e308, -1e308, 5e-324 + hi]
    inside = (lambda v: lo < v <= hi) if kind == "num_open" else (lambda v: lo <= v <= hi)
    return [repr(float(v)) for v in vals if not inside(v)]


def base_body(endpoint, field, extra):
    b = ({"prompt": "hi"} if endpoint == "c" else
         {"messages": [{"role": "user", "content": "hi"}]})
    if field not in ("max_tokens", "max_completion_tokens"):
        b["max_tokens"] = 2
    b.update(extra)
    b.pop(field, None)
    return b


def with_raw(body, field, raw):
    """body as JSON text with "field": raw (raw JSON text, possibly not valid JSON) added."""
    text = json.dumps(body)
    return (text[:-1] + (", " if body else "") + json.dumps(field) + ": " + raw + "}").encode()


def strict_json(raw):
    def no_const(x):
        raise ValueError(x)
    try:
        v = json.loads(raw, parse_constant=no_const)
    except ValueError:
        return False
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return False   # 1e999: jansson refuses a real it cannot hold
    big = [v] if isinstance(v, int) and not isinstance(v, bool) else []
    return all(I64_MIN <= x <= I64_MAX for x in big)


def field_cases():
    """(case id, endpoint path, body bytes, params the error may name)."""
    out = []
    for field, kind, lo, hi, eps, extra in FIELDS:
        if kind == "special":
            bad = SPECIAL_BAD[field]
        elif kind in ("int", "num", "num_open"):
            bad = WRONG_TYPES["num" if kind.startswith("num") else kind] + \
                out_of_range(kind, lo, hi) + NOT_JSON_NUMBERS
        else:
            bad = WRONG_TYPES[kind] + NOT_JSON_NUMBERS[:3]
        for ep in eps:
            path = C if ep == "c" else CHAT
            for raw in bad:
                body = with_raw(base_body(ep, field, extra), field, raw)
                params = (field,) if strict_json(raw) else (field, None)
                out.append((f"{ep}.{field}={raw[:40]}", path, body, params))
    return out


@group
def test_field_table(srv):
    cs = Cases("fields")
    cases = field_cases()
    assert len(cases) > 500, len(cases)

    def one(path, body, params, cid):
        r = post(srv.port, path, body)
        check_error(r, cid, 400, params)
    for cid, path, body, params in cases:
        cs.run(cid, one, path, body, params, cid)
    # The model: a wrong name is a 404 naming it.
    cs.run("model_not_found", lambda: check_error(
        post(srv.port, C, {"prompt": "hi", "model": "gpt-4"}), "gpt-4", 404, ("model",)))
    # Both spellings of the length are checked, whichever is used.
    cs.run("both_lengths", lambda: check_error(
        post(srv.port, C, {"prompt": "hi", "max_tokens": 2, "max_completion_tokens": "x"}),
        "both", 400, ("max_completion_tokens",)))
    print(f"        ({len(cases)} field cases)")
    cs.finish()


@group
def test_field_boundaries_accepted(srv):
    """The edges of every range are accepted (and run)."""
    cs = Cases("edges")
    edges = [("temperature", 0), ("temperature", 2), ("top_p", 1), ("top_p", 1e-9),
             ("presence_penalty", -2), ("presence_penalty", 2), ("frequency_penalty", -2),
             ("frequency_penalty", 2), ("min_p", 0), ("min_p", 1), ("repetition_penalty", 10),
             ("repetition_penalty", 1e-6), ("top_k", -1), ("top_k", 0), ("top_k", INT_MAX),
             ("seed", I64_MIN), ("seed", I64_MAX), ("seed", 0), ("min_tokens", 0),
             ("min_tokens", 2), ("n", 1), ("n", 4), ("max_tokens", 1), ("temperature", 1.0),
             ("logit_bias", {"0": -100, str(VOCAB - 1): 100}), ("stop_token_ids", [0, VOCAB - 1]),
             ("stop", ["a"] * 16), ("max_tokens", 3.0), ("seed", 1e15)]
    for ep in ("c", "chat"):
        for field, v in edges:
            body = base_body(ep, field, {})
            body["max_tokens"] = body.get("max_tokens", 2)
            body[field] = v

            def one(body=body, ep=ep):
                r = post(srv.port, C if ep == "c" else CHAT, body)
                assert r is not None and r.status == 200, (body, r)
            cs.run(f"{ep}.{field}={v}"[:60], one)
    body = {"prompt": "hi", "max_tokens": 1, "logprobs": 20}
    cs.run("c.logprobs=20", lambda: check_ok(post(srv.port, C, body)))
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "logprobs": True,
            "top_logprobs": 20}
    cs.run("chat.top_logprobs=20", lambda: check_ok(post(srv.port, CHAT, body)))
    cs.finish()


def sse_events(body):
    """The JSON events of an SSE body that ends with [DONE]."""
    text = body.decode("utf-8")
    assert text.endswith("data: [DONE]\n\n"), text[-300:]
    parts = [p for p in text.split("\n\n") if p]
    assert all(p.startswith("data: ") for p in parts), parts[:3]
    return [json.loads(p[6:]) for p in parts[:-1]]


def check_choices(path, body, r):
    """A 200 answer to body has one choice per prompt x n, each ended once, with usage."""
    assert r is not None and r.status == 200, (body, r)
    n = body.get("n", 1)
    prompts = body["prompt"] if path == C and isinstance(body["prompt"], list) and \
        body["prompt"] and not isinstance(body["prompt"][0], int) else [0]
    want = len(prompts) * n
    finish = {}
    if body.get("stream"):
        events = sse_events(r.body)
        usage = [e["usage"] for e in events if e.get("usage")]
        for e in events:
            for c in e.get("choices", []):
                if c.get("finish_reason"):
                    assert c["index"] not in finish, ("ended twice", c)
                    finish[c["index"]] = c["finish_reason"]
        if body.get("stream_options", {}).get("include_usage"):
            assert len(usage) == 1, usage
    else:
        j = json.loads(r.body)
        finish = {c["index"]: c["finish_reason"] for c in j["choices"]}
        assert len(j["choices"]) == want, (want, j)
        usage = [j["usage"]]
    assert sorted(finish) == list(range(want)), (want, finish)
    assert set(finish.values()) <= {"stop", "length"}, finish
    for u in usage:
        assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"], u


@group
def test_combinations(srv):
    """Options together, answered with the right number of choices, each ended once."""
    cs = Cases("combos")
    p2 = ["one two", "three"]
    combos = [
        (C, {"prompt": p2, "n": 3, "max_tokens": 4}),
        (C, {"prompt": p2, "n": 2, "max_tokens": 4, "stream": True,
             "stream_options": {"include_usage": True}}),
        (C, {"prompt": "hi", "echo": True, "logprobs": 5, "max_tokens": 3}),
        (C, {"prompt": p2, "echo": True, "logprobs": 2, "max_tokens": 3, "stream": True}),
        (C, {"prompt": [[1, 2, 3], [4]], "n": 2, "logprobs": 1, "max_tokens": 2}),
        (C, {"prompt": "hi", "stop": ["e", "\u00e9", "\U0001F600"], "max_tokens": 20,
             "include_stop_str_in_output": True}),
        (C, {"prompt": "hi", "stop_token_ids": list(range(0, VOCAB, 3)), "max_tokens": 20,
             "min_tokens": 5, "stream": True}),
        (C, {"prompt": "hi", "logit_bias": {str(i): 100 for i in range(0, VOCAB, 7)},
             "max_tokens": 5, "temperature": 2, "top_k": 1, "top_p": 1e-9, "min_p": 1}),
        (C, {"prompt": "hi", "max_tokens": 30, "presence_penalty": 2, "frequency_penalty": 2,
             "repetition_penalty": 10, "seed": -1, "ignore_eos": True,
             "skip_special_tokens": False, "stream": True}),
        (C, {"prompt": "<|im_end|><|im_start|>", "max_tokens": 3, "add_special_tokens": False,
             "echo": True}),
        (C, {"prompt": "hi", "max_tokens": 510}),   # "hi" is 2 tokens: the whole context
        (CHAT, {"messages": [{"role": "user", "content": "hi"}], "n": 4, "logprobs": True,
                "top_logprobs": 20, "max_tokens": 3, "stream": True,
                "stream_options": {"include_usage": True}}),
        (CHAT, {"messages": [{"role": "system", "content": ""},
                             {"role": "user", "content": [{"type": "text", "text": "a"},
                                                          {"type": "text", "text": ""}]},
                             {"role": "assistant", "content": None},
                             {"role": "tool", "content": "x", "tool_call_id": "1"}],
                "max_tokens": 3, "add_generation_prompt": False,
                "chat_template_kwargs": {"enable_thinking": True}, "tools": []}),
        (CHAT, {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 2,
                "max_tokens": 400, "n": 2, "seed": 5}),
    ]
    for i, (path, body) in enumerate(combos):
        cs.run(f"{i}:{json.dumps(body)[:50]}", lambda path=path, body=body:
               check_choices(path, body, post(srv.port, path, body)))
    cs.finish()


def check_ok(r):
    assert r is not None and r.status == 200, r
    return json.loads(r.body)


# ---- nesting, UTF-8, surrogates ------------------------------------------------------------

@group
def test_deep_nesting(srv):
    cs = Cases("nesting")
    for depth in (100, 1000, 2047, 2049, 5000, 100000):
        arr = b"[" * depth + b"]" * depth
        obj = b'{"a":' * depth + b"1" + b"}" * depth

        def refused_or_ignored(raw, depth=depth):
            # Nesting inside an unknown field: ignored when jansson takes it, else a 400
            # (or a 413 past the body limit).
            r = post(srv.port, C, b'{"prompt": "hi", "max_tokens": 1, "x": ' + raw + b"}")
            assert r is not None and r.status in (200, 400, 413), r
            if r.status == 413:
                assert len(raw) > MAX_BODY - 40, r
                check_error(r, "nesting", 413)
            elif r.status == 400:
                check_error(r, "nesting", 400)
                assert depth > 2000, f"depth {depth} refused: {r!r}"
        cs.run(f"unknown_field_array_{depth}", refused_or_ignored, arr)
        cs.run(f"unknown_field_object_{depth}", refused_or_ignored, obj)
        cs.run(f"whole_body_{depth}", lambda arr=arr: check_error(post(srv.port, C, arr),
                                                                   "whole", 400))
    # Nesting that reaches the chat template (kwargs and tools are handed to it as JSON).
    for depth in (50, 500, 2000):
        deep = "[" * depth + "]" * depth
        dobj = '{"k":' * depth + "1" + "}" * depth
        for field, raw in (("chat_template_kwargs", '{"deep": ' + deep + "}"),
                           ("chat_template_kwargs", '{"deep": ' + dobj + "}"),
                           ("tools", "[" + dobj + "]"),
                           ("messages_extra", None)):
            if field == "messages_extra":
                body = ('{"max_tokens": 1, "messages": [{"role": "user", "content": "hi", '
                        '"extra": ' + deep + "}]}").encode()
            else:
                body = with_raw({"messages": [{"role": "user", "content": "hi"}],
                                 "max_tokens": 1}, field, raw)

            def reached_template(body=body):
                r = post(srv.port, CHAT, body)
                assert r is not None and r.status in (200, 400), r
                if r.status == 400:
                    check_shape(r, "template nesting")
            cs.run(f"{field}_{depth}_{'obj' if raw and 'k' in raw else 'arr'}",
                   reached_template)
    # Content parts: a long list of parts and parts nested where a string belongs.
    parts = [{"type": "text", "text": "a"}] * 100
    cs.run("many_parts", lambda: check_ok(post(srv.port, CHAT, {
        "messages": [{"role": "user", "content": parts}], "max_tokens": 1})))
    cs.run("many_messages", lambda: check_ok(post(srv.port, CHAT, {
        "messages": [{"role": "user", "content": "a"}] * 30, "max_tokens": 1})))
    cs.finish()


INVALID_UTF8 = {
    "latin1": b"caf\xe9", "ff": b"\xff", "fe_ff": b"\xfe\xff", "lone_cont": b"\x80",
    "overlong_slash": b"\xc0\xaf", "overlong_nul": b"\xc0\x80", "overlong_3": b"\xe0\x80\xaf",
    "surrogate_utf8": b"\xed\xa0\x80", "above_10ffff": b"\xf4\x90\x80\x80",
    "five_byte": b"\xf8\x88\x80\x80\x80", "truncated_2": b"\xc3", "truncated_3": b"\xe2\x82",
    "truncated_4": b"\xf0\x9f\x98", "cont_missing": b"\xe2\x28\xa1",
}
ESCAPES_BAD = {
    "lone_high": b"\\ud800", "lone_low": b"\\udc00", "high_high": b"\\ud800\\ud800",
    "high_then_ascii": b"\\ud800\\u0041", "low_then_high": b"\\udfff\\ud800",
    "high_at_end": b"x\\udbff", "bad_escape": b"\\x41",
    "short_u": b"\\u12", "u_nonhex": b"\\uZZZZ",
}


@group
def test_utf8_and_surrogates(srv):
    cs = Cases("utf8")

    def places(s):
        """s (bytes inside a JSON string) in every string a request has."""
        q = b'"' + s + b'"'
        return {
            "prompt": (C, b'{"max_tokens": 1, "prompt": ' + q + b"}"),
            "prompt_list": (C, b'{"max_tokens": 1, "prompt": ["ok", ' + q + b"]}"),
            "stop": (C, b'{"max_tokens": 1, "prompt": "hi", "stop": [' + q + b"]}"),
            "model": (C, b'{"max_tokens": 1, "prompt": "hi", "model": ' + q + b"}"),
            "key": (C, b'{"max_tokens": 1, "prompt": "hi", ' + q + b": 1}"),
            "content": (CHAT, b'{"max_tokens": 1, "messages": [{"role": "user", "content": '
                        + q + b"}]}"),
            "role": (CHAT, b'{"max_tokens": 1, "messages": [{"role": ' + q +
                     b', "content": "x"}]}'),
            "part": (CHAT, b'{"max_tokens": 1, "messages": [{"role": "user", "content": '
                     b'[{"type": "text", "text": ' + q + b"}]}]}"),
            "kwargs": (CHAT, b'{"max_tokens": 1, "messages": [{"role": "user", "content": '
                       b'"x"}], "chat_template_kwargs": {"a": ' + q + b"}}"),
        }
    for name, s in list(INVALID_UTF8.items()) + list(ESCAPES_BAD.items()):
        for where, (path, body) in places(s).items():
            cs.run(f"{name}@{where}", lambda path=path, body=body, c=f"{name}@{where}":
                   check_error(post(srv.port, path, body), c, 400, (None,)))

    def good_escapes():
        for s in (b"\\ud83d\\ude00", b"\\u00e9", b"\\uffff", b"\\ufeff", b"\\u2028",
                  b"\xf0\x9f\x98\x80", b"\xef\xbb\xbf", b"\\u0001"):
            for where, (path, body) in places(s).items():
                r = post(srv.port, path, body)
                if where in ("model",):
                    check_error(r, where, 404, ("model",))
                elif where == "stop" or where == "key" or where == "kwargs":
                    check_ok(r)
                else:
                    assert r is not None and r.status in (200, 400), (s, where, r)
                    if r.status == 400:   # e.g. a role the template refuses
                        check_shape(r, where)
                    else:
                        text = r.body.decode("utf-8")   # the answer is valid UTF-8
                        json.loads(text)
    cs.run("valid_escapes", good_escapes)

    def nul_is_a_character():   # \u0000 is text (vLLM's random dataset sends it), except
        for where, (path, body) in places(b"a\\u0000b").items():   # where C strings go
            r = post(srv.port, path, body)
            if where == "model":
                check_error(r, where, 404, ("model",))
            elif where == "stop":
                check_error(r, where, 400, ("stop",))
            elif where == "key":
                check_error(r, where, 400, (None,))
            else:
                check_ok(r)
    cs.run("nul_is_a_character", nul_is_a_character)

    def echo_of_odd_bytes():   # bytes that tokenize to partial UTF-8 come back valid
        r = check_ok(post(srv.port, C, {"prompt": "\u00e9\U0001F600\u2028x", "max_tokens": 4,
                                        "echo": True, "logprobs": 2}))
        assert r["choices"][0]["text"].startswith("\u00e9\U0001F600\u2028x"), r
    cs.run("echo_of_odd_bytes", echo_of_odd_bytes)
    cs.finish()


# ---- slow and many clients -----------------------------------------------------------------

def timed_health(port, limit=2.0):
    t0 = time.time()
    r = exchange(port, request_bytes("GET", "/health"), timeout=limit + 1)
    dt = time.time() - t0
    assert r is not None and r.status == 200 and dt < limit, (r, dt)


@group
def test_slow_clients(srv):
    cs = Cases("slow")

    def trickle():   # a whole request one byte at a time; others are served meanwhile
        data = request_bytes("POST", C, json.dumps({"prompt": "hi", "max_tokens": 2}).encode())
        c = Conn(srv.port, 10)
        for i, b in enumerate(data):
            c.send(bytes([b]))
            if i % 16 == 0:
                time.sleep(0.005)
            if i == len(data) // 2:
                timed_health(srv.port)
        r = c.response()
        c.close()
        assert r.status == 200, r
    cs.run("trickle", trickle)

    def slowloris():   # many half-sent heads do not lock anyone out
        held = []
        try:
            for i in range(96):
                c = Conn(srv.port, 5)
                c.send(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                held.append(c)
            for c in held[:32]:
                c.send(b"a")
            timed_health(srv.port)
            check_ok(post(srv.port, C, {"prompt": "hi", "max_tokens": 2}))
        finally:
            for c in held:
                c.close()
    cs.run("slowloris", slowloris)

    def stalled_bodies():   # bodies that stop half-way
        held = []
        try:
            for i in range(32):
                c = Conn(srv.port, 5)
                c.send(body_head(b"Content-Length: 1000\r\n") + b'{"prompt": "')
                held.append(c)
            timed_health(srv.port)
        finally:
            for c in held:
                c.close()
    cs.run("stalled_bodies", stalled_bodies)

    def slow_reader():   # a stream whose client does not read for a while
        body = json.dumps({"prompt": "hi", "max_tokens": 200, "ignore_eos": True,
                           "stream": True, "stream_options": {"include_usage": True}}).encode()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(20)
        s.connect(("127.0.0.1", srv.port))
        c = Conn.__new__(Conn)
        c.s, c.buf = s, b""
        c.send(request_bytes("POST", C, body))
        time.sleep(0.5)
        timed_health(srv.port)
        r = c.response()
        c.close()
        assert r.status == 200 and r.body.endswith(b"data: [DONE]\n\n"), r
        usage = json.loads(r.body.split(b"data: ")[-2])["usage"]
        assert usage["completion_tokens"] == 200, usage
    cs.run("slow_reader", slow_reader)
    cs.finish()


def run_threads(n, fn):
    errors = []

    def wrap(i):
        try:
            fn(i)
        except Exception as e:   # noqa: BLE001 -- reported below
            errors.append(f"client {i}: {type(e).__name__}: {e}")
    ts = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, f"{len(errors)} of {n} failed: " + "; ".join(errors[:5])


@group
def test_many_clients(srv):
    cs = Cases("many")

    def client(i):
        path = CHAT if i % 2 else C
        body = ({"messages": [{"role": "user", "content": f"hi {i}"}]} if i % 2 else
                {"prompt": f"hello {i}"})
        body.update(max_tokens=4, stream=bool(i % 3 == 0), seed=i)
        for _ in range(2):
            r = post(srv.port, path, body, timeout=60)
            assert r is not None and r.status == 200, r
            if body["stream"]:
                assert r.body.endswith(b"data: [DONE]\n\n"), r
            else:
                assert json.loads(r.body)["usage"]["completion_tokens"] >= 1
    cs.run("completions_48", run_threads, 48, client)

    def idle_then_ask():   # 256 connections open at once, then each asks
        conns = [Conn(srv.port, 20) for _ in range(256)]
        try:
            for c in conns:
                c.send(request_bytes("GET", "/health"))
            for c in conns:
                assert c.response().status == 200
        finally:
            for c in conns:
                c.close()
    cs.run("connections_256", idle_then_ask)
    cs.finish()


# ---- disconnects at every point of a stream ------------------------------------------------

def stream_request(path=C, n=480):
    """A stream long enough (480 tokens) that a client cut after 20 events always leaves
    the engine generating: every such cut must end in an abort."""
    if path == C:
        body = {"prompt": "hello", "max_tokens": n, "ignore_eos": True, "stream": True}
    else:
        body = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": n,
                "ignore_eos": True, "stream": True}
    return request_bytes("POST", path, json.dumps(body).encode())


@group
def test_disconnects(srv):
    cs = Cases("disconnect")
    m0 = h.metrics(srv.port)
    aborted0 = m0.get('pagoda:request_success_total{finished_reason="abort"}', 0)
    n_cut_during_generation = 0

    for path in (C, CHAT):
        data = stream_request(path)
        head_len = data.index(b"\r\n\r\n") + 4
        # While the request is sent: inside the request line, the headers, before and inside
        # the body, and one byte short of the end.
        for cut in (1, 10, head_len // 2, head_len - 2, head_len, head_len + 5, len(data) - 1):
            for rst in (False, True):
                def cut_request(cut=cut, rst=rst):
                    c = Conn(srv.port, 5)
                    c.send(data[:cut])
                    time.sleep(0.01)
                    c.close(rst)
                cs.run(f"{path}@request_byte_{cut}{'_rst' if rst else ''}", cut_request)

        # While the answer streams: at once, after the status line, after k events.
        def cut_response(events, rst, path=path, data=data):
            c = Conn(srv.port, 10)
            c.send(data)
            if events == "status":
                c._line()
            elif events > 0:
                c.head()
                got = b""
                while got.count(b"data: ") < events:
                    got += c.s.recv(4096)
            c.close(rst)
        for events in (0, "status", 1, 2, 5, 20):
            for rst in (False, True):
                cs.run(f"{path}@events_{events}{'_rst' if rst else ''}", cut_response, events,
                       rst)
                if events not in (0, "status"):
                    n_cut_during_generation += 1

    def cut_plain():   # a non-streaming request whose client leaves while it generates
        body = json.dumps({"prompt": "hello", "max_tokens": 400, "ignore_eos": True}).encode()
        c = Conn(srv.port, 5)
        c.send(request_bytes("POST", C, body))
        time.sleep(0.05)
        c.close(True)
    cs.run("plain_mid_generation", cut_plain)

    def half_close_then_read():   # the client half-closes after the request: still answered
        c = Conn(srv.port, 10)
        c.send(stream_request(C, 8))
        c.s.shutdown(socket.SHUT_WR)
        try:
            r = c.response()
            assert r.status == 200, r
        except (EOFError, ConnectionResetError):
            pass    # treating a half-close as gone is allowed; nothing may leak either way
        c.close()
    cs.run("half_close", half_close_then_read)

    m = h.wait_idle(srv.port)
    aborted = m.get('pagoda:request_success_total{finished_reason="abort"}', 0) - aborted0
    def aborts_counted():
        assert aborted >= n_cut_during_generation, \
            f"{aborted} aborts < {n_cut_during_generation} streams cut during generation"
    cs.run("aborts_counted", aborts_counted)
    cs.finish()


# ---- the end state -------------------------------------------------------------------------

def test_nothing_leaked(srv):
    m = h.wait_idle(srv.port)
    end = time.time() + 10
    while m.get("pagoda:http_requests_in_progress", 0) > 1 and time.time() < end:
        time.sleep(0.05)
        m = h.metrics(srv.port)
    assert m["pagoda:kv_cache_usage_perc"] == 0, m
    assert m["pagoda:num_requests_running"] == 0 and m["pagoda:num_requests_waiting"] == 0, m
    assert m["pagoda:http_requests_in_progress"] == 1, m   # this /metrics read
    assert m['pagoda:http_requests_total{route="/v1/completions",status="400"}'] > 500, m
    assert srv.proc.poll() is None, "the server died"


def test_sigterm_under_load(srv):
    """SIGTERM while streams and plain requests run (each short enough to finish within the
    grace period): every client gets its whole answer and the server exits 0."""
    results = {}

    def client(i):
        stream = i % 2 == 0
        body = {"prompt": f"hi {i}", "max_tokens": 24, "ignore_eos": True, "stream": stream}
        r = post(srv.port, C, body, timeout=30)
        results[i] = (stream, r)
    ts = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    time.sleep(0.05)
    rc = srv.stop()
    for t in ts:
        t.join(30)
    assert rc == 0, f"exit status {rc}\n{srv.log()[-3000:]}"
    for i, (stream, r) in results.items():
        if r is None:
            raise AssertionError(f"client {i}: no answer")
        if r.status == 503:   # arrived after the listener closed
            check_error(r, f"client {i}", 503)
            continue
        assert r.status == 200, (i, r)
        if stream:
            assert r.body.endswith(b"data: [DONE]\n\n"), (i, r.body[-200:])


def test_sigterm_past_grace():
    """SIGTERM with --grace 0 while long plain and streaming requests run: every client gets
    an answer (plain: a 200 or a 503 error; streams: an error chunk or the end, then
    [DONE]) and the server exits 0."""
    srv = h.Server("--grace", "0")
    results = {}

    def client(i):
        stream = i % 2 == 0
        body = {"prompt": f"hi {i}", "max_tokens": 480, "ignore_eos": True, "stream": stream}
        try:
            results[i] = (stream, post(srv.port, C, body, timeout=30))
        except OSError as e:
            results[i] = (stream, e)
    ts = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    time.sleep(0.1)
    try:
        rc = srv.stop()
    finally:
        for t in ts:
            t.join(30)
    assert rc == 0, f"exit status {rc}\n{srv.log()[-3000:]}"
    for i, (stream, r) in sorted(results.items()):
        assert isinstance(r, Resp), f"client {i}: no answer ({r})"
        if r.status != 200:
            check_error(r, f"client {i}", 503)
        elif stream:
            assert r.body.endswith(b"data: [DONE]\n\n"), (i, r.body[-200:])


def test_shutdown_past_grace():
    cs = Cases("shutdown")
    cs.run("past_grace", test_sigterm_past_grace)
    cs.finish()


def main():
    t0 = time.time()
    srv = suite.start_server("--max-body-bytes", str(MAX_BODY))
    for test in (test_request_lines_and_headers, test_bodies, test_chunked, test_pipelining,
                 test_field_table, test_field_boundaries_accepted, test_combinations,
                 test_deep_nesting,
                 test_utf8_and_surrogates, test_slow_clients, test_many_clients,
                 test_disconnects, test_nothing_leaked, test_sigterm_under_load):
        suite.run(test, srv)
        if srv.proc.poll() is not None and test is not test_sigterm_under_load:
            print(f"the server exited (status {srv.proc.returncode}); stopping here")
            suite.failed += 1
            break
    suite.run(test_shutdown_past_grace)
    print(f"        {len(xfails)} known failure(s) (XFAIL), {len(xpasses)} fixed (XPASS); "
          f"{time.time() - t0:.1f} s")
    suite.finish()


if __name__ == "__main__":
    main()
