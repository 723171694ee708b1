"""Raw HTTP/1.1 for tests that need what http.client will not send or keep: a connection
that keeps what it read past one response (pipelining), raw request bytes, abortive closes,
and the checks that an error answer is the OpenAI shape
{"error": {"message", "type", "param", "code"}}.

Used by tests/http/test_http_torture.py."""
import json
import socket
import struct


class MhdHtml(AssertionError):
    """A 4xx/5xx answered by libmicrohttpd itself (an HTML body)."""


# ---- a connection that keeps what it read past one response (pipelining) -------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def __repr__(self):
        return f"<{self.status} {self.headers.get('content-type', '')} {self.body[:200]!r}>"


class Conn:
    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def head(self):
        """Reads a status line and headers (skipping 1xx answers): (status, headers)."""
        while True:
            line = self._line()
            status = int(line.split()[1])
            headers = {}
            while True:
                l = self._line()
                if not l:
                    break
                k, v = l.decode("latin-1").split(":", 1)
                headers[k.strip().lower()] = v.strip()
            if status >= 200:
                return status, headers

    def response(self, method="GET"):
        status, headers = self.head()
        body = b""
        if method == "HEAD" or status in (204, 304):
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._take(size)
                self._take(2)
        elif "content-length" in headers:
            body = self._take(int(headers["content-length"]))
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            body, self.buf = self.buf, b""
        return Resp(status, headers, body)

    def closed_by_peer(self, timeout=3.0):
        """True when the server closes (EOF or reset) within timeout with nothing to read."""
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self, rst=False):
        if rst:   # an abortive close: the server sees a reset, not a FIN
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()


def request_bytes(method, path, body=None, headers=None, close=True):
    h_ = {"Host": "127.0.0.1"}
    if body is not None:
        h_["Content-Type"] = "application/json"
        h_["Content-Length"] = str(len(body))
    if close:
        h_["Connection"] = "close"
    h_.update(headers or {})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h_.items())
    return head.encode() + b"\r\n" + (body or b"")


def exchange(port, data, timeout=10.0, method="GET"):
    """Sends raw bytes on a fresh connection; the response, or None when the server closed
    without one."""
    c = Conn(port, timeout)
    try:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            # The server answered before the whole body was sent (a 413 on the head) and
            # closed: its answer is still in our receive buffer, as curl would read it.
            pass
        try:
            return c.response(method)
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return None
    finally:
        c.close()


def post(port, path, body, headers=None, timeout=30.0):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return exchange(port, request_bytes("POST", path, raw, headers), timeout)


# ---- checks --------------------------------------------------------------------------------

def check_shape(r, where):
    """A 4xx/5xx answer is the OpenAI error shape."""
    if r.body.startswith(b"HTTP/1."):
        raise MhdHtml(f"{where}: {r.status}, and the status line and headers were written "
                      f"twice (libmicrohttpd 0.9.75): {r.body[:100]!r}")
    if b"<html>" in r.body[:400].lower():
        raise MhdHtml(f"{where}: {r.status} {r.body[:160]!r}")
    assert r.headers.get("content-type", "").startswith("application/json"), \
        f"{where}: {r.status} is not JSON: {r!r}"
    try:
        text = r.body.decode("utf-8")
        e = json.loads(text)["error"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as x:
        raise AssertionError(f"{where}: not an OpenAI error body ({x}): {r!r}")
    assert set(e) == {"message", "type", "param", "code"}, f"{where}: {e}"
    assert isinstance(e["message"], str) and e["message"], f"{where}: {e}"
    assert isinstance(e["type"], str) and e["type"], f"{where}: {e}"
    assert e["param"] is None or isinstance(e["param"], str), f"{where}: {e}"
    assert e["code"] is None or isinstance(e["code"], str), f"{where}: {e}"
    return e


def check_error(r, where, status=400, params=None):
    """r is an error with this status (an int or a set) and, when params is given, one of
    those params (None: the body as a whole)."""
    assert r is not None, f"{where}: the server closed without an answer"
    want = status if isinstance(status, (set, tuple)) else {status}
    assert r.status in want, f"{where}: status {r.status}, want {sorted(want)}: {r!r}"
    e = check_shape(r, where)
    if params is not None:   # "messages" also matches "messages[0]", "stream_options.x"
        ok = e["param"] in params or any(
            p and e["param"] and (e["param"].startswith(p + "[") or
                                  e["param"].startswith(p + ".")) for p in params)
        assert ok, f"{where}: param {e['param']!r}, want one of {params}: {e}"
    return e


def check_refused(r, where, allow_close=True):
    """A malformed request: refused with a 4xx (or 501/505), or the connection closed. Never a
    500 and never a success; a 4xx must be the OpenAI shape."""
    if r is None:
        assert allow_close, f"{where}: closed without an answer"
        return
    assert 400 <= r.status < 500 or r.status in (501, 505), f"{where}: {r!r}"
    if r.status < 500:
        check_shape(r, where)
