#!/usr/bin/env python3
"""Connection limits and timeouts a client cannot exhaust (servers: --max-connections 200
--max-connections-per-ip 50, and --header-timeout 3 --timeout-keep-alive 1 for the first).

- Timeouts: a connection that never sends a head is closed after header_timeout; one idle
  after an answer after timeout_keep_alive; one whose body stops coming after
  header_timeout; one that trickles its head a byte now and then (which an inactivity
  timeout never catches) still after header_timeout.
- Slowloris: one address opens 300 connections and trickles their heads. 50 are held (until
  header_timeout closes them), the other 250 get `503` with `Retry-After` at once, and
  clients from other addresses are served throughout.
- 2,000 concurrent connections from 20 addresses: every one gets an HTTP answer (200, or 503
  with Retry-After and an OpenAI error body), none a silent close; the refusals add up to
  /metrics' pagoda:http_connections_refused_total.
Source addresses are 127.0.0.x/127.0.1.x (all of 127/8 is loopback on Linux)."""
import asyncio
import json
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_limits")
HEAD_TIMEOUT = 3
KEEP_ALIVE = 1
HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def connect_from(ip, port, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((ip, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_after(s, t0, limit):
    """Waits (up to limit s) for the server to close s; returns the time it took."""
    s.settimeout(limit)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return time.time() - t0


def parse(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return int(lines[0].split()[1]), headers, body


def check_refusal(raw):
    st, hd, body = parse(raw)
    assert st == 503 and hd.get("retry-after") == "1", (st, hd)
    assert hd.get("content-type") == "application/json", hd
    assert json.loads(body)["error"]["type"] == "service_unavailable", body


def test_timeouts(srv):
    t0 = time.time()
    silent = connect_from("127.0.0.5", srv.port)
    took = closed_after(silent, t0, 10)
    assert HEAD_TIMEOUT - 0.5 < took < HEAD_TIMEOUT + 3, f"silent connection closed at {took}"
    idle = connect_from("127.0.0.5", srv.port)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert h.read_response(idle)[0] == 200
    t0 = time.time()
    took = closed_after(idle, t0, 10)
    # Before the head deadline (3 s): the keep-alive timeout closed it.
    assert KEEP_ALIVE - 0.5 < took < HEAD_TIMEOUT - 0.5, f"idle connection closed at {took}"
    stalled = connect_from("127.0.0.5", srv.port)   # a body that stops coming
    stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    t0 = time.time()
    took = closed_after(stalled, t0, 10)
    assert HEAD_TIMEOUT - 0.5 < took < HEAD_TIMEOUT + 3, f"stalled body closed at {took}"
    trickle = connect_from("127.0.0.5", srv.port)
    t0 = time.time()
    trickle.settimeout(0.3)
    closed = None
    for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 100:
        try:
            trickle.sendall(bytes([b]))
            if trickle.recv(4096) == b"":
                closed = time.time() - t0
                break
        except socket.timeout:
            continue
        except OSError:
            closed = time.time() - t0
            break
    assert closed is not None and HEAD_TIMEOUT - 0.5 < closed < HEAD_TIMEOUT + 3, closed


def slowloris(port, n, stop, out, expect_refused):
    """n connections from 127.0.0.2 that send a head a byte at a time."""
    socks = [connect_from("127.0.0.2", port) for _ in range(n)]
    for s in socks:
        s.setblocking(False)
    # Refusals come at once; wait for them (a loaded machine may be slow), then the rest
    # are the connections the server holds.
    alive, refused, end = socks, 0, time.time() + 10
    while refused < expect_refused and time.time() < end:
        nxt = []
        for s in alive:
            try:
                data = s.recv(4096)
            except BlockingIOError:
                nxt.append(s)
                continue
            except ConnectionResetError:
                data = b""
            assert data, "a connection was closed without an answer"
            check_refusal(data)
            refused += 1
            s.close()
        alive = nxt
        time.sleep(0.02)
    out["refused"], out["held"] = refused, len(alive)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"y" * 1000
    i, closed = 0, 0
    while not stop.is_set() and alive:
        nxt = []
        for s in alive:
            try:
                s.send(head[i % len(head):i % len(head) + 1])
                if s.recv(4096) == b"":
                    raise ConnectionResetError
                nxt.append(s)
            except BlockingIOError:
                nxt.append(s)
            except OSError:
                closed += 1
                s.close()
        alive = nxt
        i += 1
        time.sleep(0.25)
    for s in alive:
        s.close()
    out["closed_by_server"] = closed


def test_slowloris(srv):
    before = h.metrics(srv.port)
    stop, out = threading.Event(), {}
    t = threading.Thread(target=slowloris, args=(srv.port, 300, stop, out, 250))
    t.start()
    while "held" not in out and t.is_alive():
        time.sleep(0.02)
    # Other clients are served throughout, at once.
    t0 = time.time()
    for i in range(40):
        with connect_from(f"127.0.0.{10 + i % 5}", srv.port) as s:
            s.sendall(HEALTH)
            assert h.read_response(s)[0] == 200
    st, _, body = h.post(srv.port, "/v1/completions", {"prompt": "hi", "max_tokens": 3})
    assert st == 200, body
    assert time.time() - t0 < 5, f"well-behaved clients waited {time.time() - t0:.1f} s"
    time.sleep(HEAD_TIMEOUT + 1.5)
    stop.set()
    t.join(30)
    assert out["held"] == 50 and out["refused"] == 250, out
    assert out["closed_by_server"] == 50, f"slow heads were not cut off: {out}"
    m = h.metrics(srv.port)
    key = 'pagoda:http_connections_refused_total{limit="per_ip"}'
    assert m[key] - before[key] == 250, m
    assert m["pagoda:http_header_timeouts_total"] - before["pagoda:http_header_timeouts_total"] \
        >= 50, m


class Client(asyncio.Protocol):
    """Sends GET /health as soon as it is connected and keeps what comes back."""

    def __init__(self):
        self.data, self.done = b"", asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        transport.write(HEALTH)

    def data_received(self, data):
        self.data += data

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


async def many(port, n_ips, per_ip):
    loop = asyncio.get_running_loop()

    async def one(ip):
        _, p = await loop.create_connection(Client, "127.0.0.1", port, local_addr=(ip, 0))
        return p
    ips = [f"127.0.1.{1 + i}" for i in range(n_ips)]
    clients = await asyncio.gather(*(one(ip) for ip in ips for _ in range(per_ip)))
    await asyncio.wait_for(asyncio.gather(*(c.done for c in clients)), 60)
    return [c.data for c in clients]


def test_2000_connections(srv):
    before = h.metrics(srv.port)
    t0 = time.time()
    answers = asyncio.run(many(srv.port, 20, 100))
    took = time.time() - t0
    ok = refused = 0
    silent = [raw for raw in answers if not raw.startswith(b"HTTP/1.1 ")]
    m = h.metrics(srv.port)
    assert not silent, (f"{len(silent)} connections got no HTTP answer, e.g. {silent[0][:100]!r}; "
                        f"header timeouts: {m['pagoda:http_header_timeouts_total']}")
    for raw in answers:
        if parse(raw)[0] == 200:
            ok += 1
        else:
            check_refusal(raw)
            refused += 1
    print(f"  2000 connections in {took:.1f}s: {ok} served, {refused} answered 503")
    assert ok > 0 and refused > 0
    counted = sum(m[f'pagoda:http_connections_refused_total{{limit="{k}"}}'] -
                  before[f'pagoda:http_connections_refused_total{{limit="{k}"}}']
                  for k in ("total", "per_ip"))
    assert counted == refused, (counted, refused)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    srv = suite.start_server("--max-connections", "200", "--max-connections-per-ip", "50",
                             "--header-timeout", str(HEAD_TIMEOUT),
                             "--timeout-keep-alive", str(KEEP_ALIVE))
    suite.run(test_timeouts, srv)
    suite.run(test_slowloris, srv)

    def test_still_serving_and_clean_exit():
        st, _, body = h.post(srv.port, "/v1/completions", {"prompt": "hi", "max_tokens": 3})
        assert st == 200, body
        assert srv.stop() == 0
    suite.run(test_still_serving_and_clean_exit)
    # The default header timeout here: a slow (sanitized) server accepting 2,000 connections
    # at once may take seconds to read some heads.
    srv = h.Server("--max-connections", "200", "--max-connections-per-ip", "50")
    suite.run(test_2000_connections, srv)
    suite.run(test_still_serving_and_clean_exit)
    suite.finish()


if __name__ == "__main__":
    main()
