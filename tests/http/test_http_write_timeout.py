#!/usr/bin/env python3
"""The write-stall timeout (server: --write-timeout 1 --max-num-seqs 64), over real sockets.

- A streaming client that sends its request and never reads (a 4 KiB receive buffer; 64
  choices with 20 logprobs each, so that the server's socket buffers fill long before the
  generation ends) is cut off: within a few seconds its connection is closed, its 64
  engine requests are aborted (pagoda:request_success_total{finished_reason="abort"}) well
  before their 500 tokens, no request runs and no KV block is used, and the cut is counted
  (pagoda:http_write_timeouts_total). Other clients are served while it stalls.
- The timeout counts only while bytes wait for the client: a plain request generating for
  longer than the timeout is answered in full, and a stream that waits for its first token
  longer than the timeout (queued behind 64 running sequences) runs to its [DONE]."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import http_harness as h  # noqa: E402

suite = h.Suite("http_write_timeout")
C = "/v1/completions"
WRITE_TIMEOUT = 1
N, MAX_TOKENS = 64, 500


def metric(m, name):
    return m.get(name, 0.0)


def stalled_stream(port):
    """Sends a big streaming request on a socket with a tiny receive buffer; never reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    body = json.dumps({"prompt": "stall", "max_tokens": MAX_TOKENS, "n": N, "logprobs": 20,
                       "ignore_eos": True, "stream": True}).encode()
    s.sendall(f"POST {C} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def closed_by_server(s, timeout):
    """Drains s; True when the server closed it (EOF or reset) within timeout."""
    s.settimeout(timeout)
    end = time.time() + timeout
    try:
        while time.time() < end:
            if not s.recv(1 << 20):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def test_stalled_stream_is_aborted(srv):
    before = h.metrics(srv.port)
    gen_before = metric(before, "pagoda:generation_tokens_total")
    t0 = time.time()
    s = stalled_stream(srv.port)
    try:
        # Other clients are served while it stalls.
        time.sleep(0.3)
        assert h.get(srv.port, "/health")[0] == 200
        st, _, body = h.post(srv.port, C, {"prompt": "meanwhile", "max_tokens": 4})
        assert st == 200, body
        # The server cuts it off: counted, aborted in the engine, everything freed.
        end = time.time() + 15
        while True:
            m = h.metrics(srv.port)
            if metric(m, "pagoda:http_write_timeouts_total") > \
                    metric(before, "pagoda:http_write_timeouts_total"):
                break
            assert time.time() < end, "no write timeout within 15 s: " + json.dumps(
                {k: v for k, v in m.items() if "timeouts" in k or "num_requests" in k})
            time.sleep(0.1)
        cut_after = time.time() - t0
        m = h.wait_idle(srv.port)
        aborted = metric(m, 'pagoda:request_success_total{finished_reason="abort"}') - \
            metric(before, 'pagoda:request_success_total{finished_reason="abort"}')
        assert aborted == N, f"{aborted} engine requests aborted, want {N}"
        generated = metric(m, "pagoda:generation_tokens_total") - gen_before
        assert generated < N * MAX_TOKENS, f"all {generated} tokens were generated"
        print(f"  cut off after {cut_after:.1f} s; {int(generated)} of {N * MAX_TOKENS} tokens "
              "generated")
        # Its connection is closed (what the kernel still held for it drains, then EOF).
        assert closed_by_server(s, 10), "the stalled connection is still open"
    finally:
        s.close()
    assert h.post(srv.port, C, {"prompt": "after", "max_tokens": 2})[0] == 200


def long_waits_round(srv, tokens, plains):
    """plains plain requests of N x tokens each (each fills --max-num-seqs, so each waits for
    the one before) and a stream queued behind them; all must be answered in full. Returns
    how long the longest plain request and the stream took."""
    plain = [{} for _ in range(plains)]

    def long_plain(d):
        t = time.time()
        d["r"] = h.post(srv.port, C, {"prompt": "long", "max_tokens": tokens, "n": N,
                                      "ignore_eos": True}, timeout=120)
        d["s"] = time.time() - t
    threads = [threading.Thread(target=long_plain, args=(d,)) for d in plain]
    for th in threads:
        th.start()
        time.sleep(0.3)   # its 64 sequences fill --max-num-seqs: what follows waits
    t = time.time()
    st, _, body = h.post(srv.port, C, {"prompt": "queued", "max_tokens": 8, "stream": True,
                                       "ignore_eos": True}, timeout=120)
    waited = time.time() - t
    for th in threads:
        th.join(120)
    assert st == 200 and body.endswith(b"data: [DONE]\n\n"), (st, body[-300:])
    assert b'"error"' not in body, body[-300:]
    for d in plain:
        st, _, pbody = d["r"]
        assert st == 200 and len(json.loads(pbody)["choices"]) == N, (st, pbody[:300])
    plain_s = max(d["s"] for d in plain)
    print(f"  {plains} x {tokens} tokens: longest plain request {plain_s:.1f} s, queued stream "
          f"{waited:.1f} s")
    return plain_s, waited


def test_long_waits_are_not_stalls(srv):
    """Plain requests generating (or queued) for longer than the timeout, and a stream queued
    behind them for longer than the timeout before its first token: all answered in full.
    The work grows (longer outputs, then more plain requests queued one behind the other)
    until both waits pass twice the timeout: a sanitizer build gets there first, a fast
    machine needs the queue."""
    for tokens, plains in ((64, 1), (128, 1), (256, 1), (MAX_TOKENS, 1), (MAX_TOKENS, 2),
                           (MAX_TOKENS, 4)):
        plain_s, waited = long_waits_round(srv, tokens, plains)
        if plain_s > 2 * WRITE_TIMEOUT and waited > 2 * WRITE_TIMEOUT:
            break
    assert plain_s > 2 * WRITE_TIMEOUT and waited > 2 * WRITE_TIMEOUT, \
        "the waits were not longer than the timeout: the test proves nothing"
    h.wait_idle(srv.port)


def main():
    srv = suite.start_server("--write-timeout", str(WRITE_TIMEOUT), "--max-num-seqs", str(N))
    suite.run(test_stalled_stream_is_aborted, srv)
    suite.run(test_long_waits_are_not_stalls, srv)

    def test_clean_exit():
        rc = srv.stop()
        assert rc == 0, f"exit status {rc}\n{srv.log()[-3000:]}"
    suite.run(test_clean_exit)
    suite.finish()


if __name__ == "__main__":
    main()
