#!/usr/bin/env python3
"""SIGTERM under mixed plain and streaming load, 20 times in a row (run it under ASan: the
build's sanitizers turn any use-after-free or leak into a failed exit).

Each round starts `pagoda serve` with an engine that runs one sequence at a time and a
short grace, sends short and long (ignore_eos, hundreds of tokens) plain and streaming
requests, and signals it while they run. Every request sent before the signal must get a
whole answer: a complete 200 (it finished within the grace), or the shutdown's error (plain:
503 with an OpenAI error body; stream: an error event then `data: [DONE]`). A request sent
on an open keep-alive connection during the grace gets 503; a new connection is refused. The server exits 0, with nothing from the
sanitizers in its log. Every other round sends a second SIGTERM, which must end a long grace
at once, just as cleanly.

test_complete_bodies_answered_at_cut: requests whose bodies were whole in the server's socket
when the grace ended are answered, whether or not their connections' threads had read them."""
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_shutdown")
ROUNDS = 20
ROUNDS_AT_CUT = 10
C = "/v1/completions"
SANITIZER_WORDS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer")


def send_request(s, body):
    data = json.dumps(body).encode()
    s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)


def client(sock, body, out, i, sent):
    """Sends body on the connected sock (then counts down sent) and reads the answer."""
    try:
        with sock:
            send_request(sock, body)
            sent.release()
            out[i] = ("done", h.read_response(sock))
    except Exception as e:   # noqa: BLE001
        sent.release()
        out[i] = ("error", repr(e))


def is_shutdown_error(obj):
    return obj.get("error", {}).get("type") == "service_unavailable"


def check_answer(body, resp):
    """Returns 'ok' (complete) or 'aborted' (the shutdown's error); raises otherwise."""
    st, hd, raw = resp
    if st == 503 or not body.get("stream"):   # a stream whose head came after the signal: 503
        obj = json.loads(raw)
        if st == 200:
            assert [c["finish_reason"] for c in obj["choices"]] == ["length"] * body["n"], obj
            assert obj["usage"]["completion_tokens"] == body["max_tokens"] * body["n"], obj
            return "ok"
        assert st == 503 and is_shutdown_error(obj), (st, raw[:300])
        assert hd["content-type"].startswith("application/json"), hd
        return "aborted"
    assert st == 200 and hd["content-type"] == "text/event-stream", (st, hd)
    events = raw.decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]", events[-3:]
    chunks = [json.loads(e[len("data: "):]) for e in events[:-2]]
    if "error" in chunks[-1]:
        assert is_shutdown_error(chunks[-1]), chunks[-1]
        return "aborted"
    fins = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]]
    assert fins == ["length"] * body["n"], fins
    return "ok"


def one_round(n, second_signal):
    grace = "30" if second_signal else "0.5"
    with h.Server("--grace", grace, "--max-num-seqs", "1", "--kv-cache-mib", "16") as srv:
        bodies = []
        for k in range(16):
            long_ = k % 4 != 0   # three choices of 450 tokens: about 0.1 s each on a CPU
            bodies.append({"prompt": f"round {n} client {k}", "max_tokens": 450 if long_ else 4,
                           "n": 3 if long_ else 1, "ignore_eos": True, "stream": k % 2 == 0})
        results = [None] * len(bodies)
        sent = threading.Semaphore(0)
        socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=60) for _ in bodies]
        threads = [threading.Thread(target=client, args=(sk, b, results, i, sent))
                   for i, (sk, b) in enumerate(zip(socks, bodies))]
        for t in threads:
            t.start()
        for _ in bodies:
            assert sent.acquire(timeout=30)
        # A keep-alive connection opened before the signal, used during the grace.
        ka = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        ka.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert h.read_response(ka)[0] == 200
        # Signal once every request's head was read (in progress, or already answered: the
        # short ones may be) and one runs: on a loaded host the heads could otherwise come
        # after the signal, all get 503 at once, and no grace would be left for the second
        # signal to end.
        end = time.time() + 30
        while True:
            m = h.metrics(srv.port)
            read = m.get("pagoda:http_requests_in_progress", 0) - 1 + sum(
                r is not None for r in results)
            if m.get("pagoda:num_requests_running", 0) >= 1 and read >= len(bodies):
                break
            assert time.time() < end, "the requests did not start"
            time.sleep(0.005)
        t_signal = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_for("stopping")
        # During the grace: new connections are refused (the listener closes once draining
        # began), and a request on the open connection gets 503 and `Connection: close`.
        end = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
            except OSError:
                break
            assert time.time() < end, "new connections are still accepted while draining"
            time.sleep(0.002)
        late = {"prompt": "too late", "max_tokens": 4}
        send_request(ka, late)
        st, hd, raw = h.read_response(ka)
        assert st == 503 and is_shutdown_error(json.loads(raw)), (st, raw[:200])
        assert hd.get("connection", "").lower() == "close", hd
        ka.close()
        if second_signal:
            srv.proc.send_signal(signal.SIGTERM)
        rc = srv.proc.wait(60)
        took = time.time() - t_signal
        for t in threads:
            t.join(60)
        kinds = []
        for b, r in zip(bodies, results):
            assert r and r[0] == "done", (b, r)
            kinds.append(check_answer(b, r[1]))
        if second_signal:   # the grace was cut at once: the long requests were aborted
            assert "aborted" in kinds, f"nothing outlived the grace: {kinds}"
        srv._reader.join(5)
        log = srv.log()
        assert rc == 0, f"exit status {rc}:\n{log[-4000:]}"
        assert not any(w in log for w in SANITIZER_WORDS), log[-6000:]
        if second_signal:
            assert "second signal" in log, log[-2000:]
            assert took < 10, f"the second signal did not end the 30 s grace ({took:.1f} s)"
        return kinds


def wait_in_progress(port, n, timeout=30):
    """Waits until n requests (besides the /metrics one asking) are between their head and
    their answer: pagoda:http_requests_in_progress counts a request from its first byte."""
    end = time.time() + timeout
    while h.metrics(port).get("pagoda:http_requests_in_progress", 0) < n + 1:
        assert time.time() < end, "the request heads were not read"
        time.sleep(0.005)


def test_complete_bodies_answered_at_cut():
    """Requests whose heads were read before the first SIGTERM and whose bodies were whole in
    the server's socket before the second one (the end of the grace) each get an answer (the
    shutdown's 503, or a 200 when draining began after they came), however far their
    connections' threads had got; a body still incomplete at the end of the grace is cut off
    (its connection closed without an answer) rather than holding up the exit. The server is
    stopped (SIGSTOP) while the bodies' last bytes and the second SIGTERM are delivered, so
    that at SIGCONT the threads of those connections race the one ending the grace, as on a
    loaded host: the answers must not depend on who wins. (When the grace's end shut down
    both sides of such connections, about one round in three lost an answer on a 2-core box:
    4 of 6 runs of 3 rounds failed.)"""
    n_complete = 24
    totals = {"ok": 0, "aborted": 0}
    for _ in range(ROUNDS_AT_CUT):
        with h.Server("--grace", "30", "--max-num-seqs", "1", "--kv-cache-mib", "16") as srv:
            bodies = [json.dumps({"prompt": f"whole {k}", "max_tokens": 4}).encode()
                      for k in range(n_complete)]
            socks = []
            for data in bodies + [b'{"prompt": "never finished", "max_tokens": 4}']:
                sk = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
                sk.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                           f"\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data[:8])
                socks.append(sk)
            wait_in_progress(srv.port, len(socks))   # (they keep the grace from ending)
            srv.proc.send_signal(signal.SIGTERM)
            srv.wait_for("stopping")
            srv.proc.send_signal(signal.SIGSTOP)
            try:
                for sk, data in zip(socks, bodies):
                    sk.sendall(data[8:])
                srv.proc.send_signal(signal.SIGTERM)
            finally:
                srv.proc.send_signal(signal.SIGCONT)
            for k, sk in enumerate(socks[:n_complete]):
                with sk:
                    try:
                        st, hd, raw = h.read_response(sk)
                    except (RuntimeError, OSError) as e:
                        raise AssertionError(f"request {k}, whole before the grace ended, "
                                             f"got no answer: {e!r}\n{srv.log()[-3000:]}")
                    body = {"n": 1, "max_tokens": 4}   # (draining may begin after "stopping")
                    totals[check_answer(body, (st, hd, raw))] += 1
            with socks[-1] as sk:   # the unfinished body: closed, nothing sent
                assert sk.recv(65536) == b""
            rc = srv.proc.wait(30)
            srv._reader.join(5)
            log = srv.log()
            assert rc == 0, f"exit status {rc}:\n{log[-4000:]}"
            assert not any(w in log for w in SANITIZER_WORDS), log[-6000:]
    print(f"  {ROUNDS_AT_CUT} rounds: {totals['ok']} requests finished, {totals['aborted']} "
          f"answered with the shutdown error")
    assert totals["aborted"] > 0, "no request was answered at the end of the grace"


def test_sigterm_rounds():
    totals = {"ok": 0, "aborted": 0}
    for n in range(ROUNDS):
        for k in one_round(n, second_signal=n % 2 == 1):
            totals[k] += 1
    print(f"  {ROUNDS} rounds: {totals['ok']} requests finished, {totals['aborted']} answered "
          f"with the shutdown error")
    assert totals["ok"] > 0, "no request finished within the grace"
    assert totals["aborted"] > 0, "no request outlived the grace"


def main():
    suite.run(test_sigterm_rounds)
    suite.run(test_complete_bodies_answered_at_cut)
    suite.finish()


if __name__ == "__main__":
    main()
