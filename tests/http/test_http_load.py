#!/usr/bin/env python3
"""Load on a real `pagoda serve` (CPU, tiny model): 256 concurrent streaming clients each
get every token they asked for and a well-formed stream, no request is lost, and the KV pool
is empty afterwards (/metrics). Then 256 more, of which half hang up mid-stream: exactly
those are aborted, the others finish, and the pool is empty again. Both again on a server with
--async-scheduling. Last, SIGTERM with streams running: they finish within the grace period
and the server exits 0."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_load")
N = 256
ABORT = 'pagoda:request_success_total{finished_reason="abort"}'


def stream_request(port, body, cut_after=None, results=None, i=0, barrier=None):
    """One streaming client. cut_after: hang up after that many events."""
    data = json.dumps(body).encode()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=300)
        if barrier:
            barrier.wait(60)
        s.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        if cut_after is not None:
            got = b""
            while got.count(b"data: ") < cut_after:
                more = s.recv(4096)
                if not more:
                    raise RuntimeError("closed before the cut")
                got += more
            s.close()
            results[i] = ("cut", got)
            return
        results[i] = ("done", h.read_response(s))
        s.close()
    except Exception as e:   # noqa: BLE001
        results[i] = ("error", repr(e))


def check_stream(resp, n_tokens):
    st, hd, body = resp
    assert st == 200, (st, body[:200])
    assert hd["content-type"] == "text/event-stream", hd
    events = body.decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]", events[-3:]
    chunks = [json.loads(e[len("data: "):]) for e in events[:-2]]
    assert all(e.startswith("data: ") for e in events[:-2])
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1, ids
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and usage["completion_tokens"] == n_tokens, chunks[-1]
    fins = [c["choices"][0]["finish_reason"] for c in chunks[:-1]]
    assert fins[-1] == "length" and all(f is None for f in fins[:-1]), fins
    return next(iter(ids))


def run_clients(port, specs):
    results = [None] * len(specs)
    barrier = threading.Barrier(len(specs))
    threads = [threading.Thread(target=stream_request, args=(port, body, cut, results, i, barrier))
               for i, (body, cut) in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return results


def test_256_streams(srv):
    before = h.metrics(srv.port)
    specs = [({"prompt": f"client {i} says hello", "max_tokens": 16 + i % 8, "stream": True,
               "ignore_eos": True, "temperature": 1.0, "seed": i,
               "stream_options": {"include_usage": True}}, None) for i in range(N)]
    t0 = time.time()
    results = run_clients(srv.port, specs)
    errors = [r for r in results if r is None or r[0] != "done"]
    assert not errors, errors[:3]
    ids = {check_stream(r[1], 16 + i % 8) for i, r in enumerate(results)}
    assert len(ids) == N, "every stream has its own id"
    print(f"  {N} streams in {time.time() - t0:.2f}s")
    m = h.wait_idle(srv.port)
    gen = m["pagoda:generation_tokens_total"] - before["pagoda:generation_tokens_total"]
    assert gen == sum(16 + i % 8 for i in range(N)), gen
    assert m[ABORT] == before.get(ABORT, 0), "nothing was aborted"
    assert m['pagoda:request_success_total{finished_reason="length"}'] - \
        before.get('pagoda:request_success_total{finished_reason="length"}', 0) == N


def test_half_disconnect(srv):
    before = h.metrics(srv.port)
    specs = []
    for i in range(N):
        cut = i % 2 == 0
        specs.append(({"prompt": f"client {i}", "max_tokens": 400 if cut else 20,
                       "stream": True, "ignore_eos": True,
                       "stream_options": {"include_usage": True}}, 3 if cut else None))
    results = run_clients(srv.port, specs)
    for i, r in enumerate(results):
        assert r is not None and r[0] == ("cut" if i % 2 == 0 else "done"), (i, r and r[0], r)
        if i % 2:
            check_stream(r[1], 20)
    m = h.wait_idle(srv.port, timeout=30)
    assert m[ABORT] - before.get(ABORT, 0) == N // 2, (m[ABORT], before.get(ABORT))
    done = m['pagoda:request_success_total{finished_reason="length"}'] - \
        before['pagoda:request_success_total{finished_reason="length"}']
    assert done == N // 2, done
    gen = m["pagoda:generation_tokens_total"] - before["pagoda:generation_tokens_total"]
    assert gen < N // 2 * 20 + N // 2 * 400 // 2, f"cut streams were not stopped early ({gen})"


def test_sigterm_drains():
    with h.Server("--grace", "20") as srv:
        results = [None] * 16
        specs = [({"prompt": "drain me", "max_tokens": 400, "stream": True, "ignore_eos": True,
                   "stream_options": {"include_usage": True}}, None)] * 16
        barrier = threading.Barrier(16)
        threads = [threading.Thread(target=stream_request,
                                    args=(srv.port, b, c, results, i, barrier))
                   for i, (b, c) in enumerate(specs)]
        for t in threads:
            t.start()
        end = time.time() + 30
        while h.metrics(srv.port).get("pagoda:num_requests_running", 0) < 16:
            assert time.time() < end, "the 16 streams did not all start"
            time.sleep(0.005)
        srv.proc.send_signal(15)
        time.sleep(0.3)
        try:   # no new connections once draining
            socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        for t in threads:
            t.join(60)
        for r in results:
            assert r and r[0] == "done", r
            check_stream(r[1], 400)
        assert refused, "the listening socket stayed open while draining"
        assert srv.stop() == 0


def test_sigterm_grace_over():
    """Streams that outlive the grace period end with an error event; the exit is 0."""
    with h.Server("--grace", "0") as srv:
        results = [None] * 4
        body = {"prompt": "long", "max_tokens": 500, "stream": True, "ignore_eos": True}
        ts = [threading.Thread(target=stream_request, args=(srv.port, body, None, results, i))
              for i in range(4)]
        for t in ts:
            t.start()
        end = time.time() + 30
        while h.metrics(srv.port).get("pagoda:num_requests_running", 0) < 4:
            assert time.time() < end, "the 4 streams did not all start"
            time.sleep(0.005)
        t0 = time.time()
        assert srv.stop() == 0
        assert time.time() - t0 < 10
        for t in ts:
            t.join(30)
        for r in results:
            assert r and r[0] == "done", r
            st, _, body = r[1]
            events = body.decode().split("\n\n")
            assert st == 200 and events[-2] == "data: [DONE]", events[-3:]
            err = json.loads(events[-3][len("data: "):])
            assert err["error"]["type"] == "service_unavailable", err


def main():
    srv = suite.start_server("--max-num-seqs", "256")
    suite.run(test_256_streams, srv)
    suite.run(test_half_disconnect, srv)

    def test_clean_exit():
        rc = srv.stop()
        assert rc == 0, f"exit status {rc}\n{srv.log()[-3000:]}"
    suite.run(test_clean_exit)
    # The same load with async scheduling (each step planned while the one before runs):
    # every token, the exact counts, the aborts of those who hung up.
    with h.Server("--max-num-seqs", "256", "--async-scheduling") as asrv:
        suite.run(test_256_streams, asrv)
        suite.run(test_half_disconnect, asrv)
        assert asrv.stop() == 0
    suite.run(test_sigterm_drains)
    suite.run(test_sigterm_grace_over)
    suite.finish()


if __name__ == "__main__":
    main()
