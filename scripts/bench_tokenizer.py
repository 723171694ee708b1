#!/usr/bin/env python3
"""Times the `tokenizers` package encoding the same text as tools/bench/bench_tokenizer.

    python3 scripts/bench_tokenizer.py --make-text /tmp/bench.txt      # build the text
    RAYON_NUM_THREADS=1 python3 scripts/bench_tokenizer.py --model DIR --file /tmp/bench.txt [--chunk B]

The text (about 4 MB, fixed recipe): the Python standard library's .py files in sorted order
(code, English comments and docstrings) up to 3 MB, then the test corpus's valid strings
(every script, emoji, whitespace mixes, digits) repeated up to 1 MB more.
One thread: a single encode() call per string (encode_batch would use several threads).
"""
import argparse
import glob
import json
import os
import sysconfig
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_text(path):
    out = []
    size = 0
    lib = sysconfig.get_paths()["stdlib"]
    for f in sorted(glob.glob(os.path.join(lib, "*.py"))):
        with open(f, encoding="utf-8", errors="replace") as fh:
            s = fh.read()
        out.append(s)
        size += len(s.encode())
        if size > 3_000_000:
            break
    corpus = json.load(open(os.path.join(ROOT, "tests/fixtures/tokenizer/corpus.json")))
    texts = [e["text"] for e in corpus if "text" in e and "\x00" not in e["text"]]
    extra = 0
    while extra < 1_000_000:
        for t in texts:
            out.append(t + "\n")
            extra += len(t.encode()) + 1
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("".join(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-text")
    ap.add_argument("--model")
    ap.add_argument("--file")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=0)
    a = ap.parse_args()
    if a.make_text:
        make_text(a.make_text)
        return
    from tokenizers import Tokenizer
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    load = time.perf_counter() - t0
    text = open(a.file, encoding="utf-8", newline="").read()
    nbytes = len(text.encode())
    pieces = [text]
    if a.chunk:
        pieces, cur, n = [], [], 0
        for line in text.splitlines(keepends=True):
            cur.append(line)
            n += len(line.encode())
            if n >= a.chunk:
                pieces.append("".join(cur))
                cur, n = [], 0
        if cur:
            pieces.append("".join(cur))
    best = 1e30
    for _ in range(a.iters):
        s = time.perf_counter()
        ntok = 0
        for p in pieces:
            ntok += len(tok.encode(p, add_special_tokens=False).ids)
        best = min(best, time.perf_counter() - s)
    print("tokenizers %-8s load %.2fs  encode %.3fs  %.1f MB/s  %.2f Mtok/s  (%d tokens, %d bytes, chunk %d)"
          % (a.model, load, best, nbytes / best / 1e6, ntok / best / 1e6, ntok, nbytes, a.chunk))


if __name__ == "__main__":
    main()
