#!/usr/bin/env python3
"""Turns pagoda's benchmark output into the JSON lines vllm_offline.py prints, and both engines'
lines into the results table of docs/SIDE_BY_SIDE.md.

  summarize.py pagoda-tput NAME REPORT.txt REPORT.json   `pagoda bench throughput` (--json) -> a line
  summarize.py pagoda-latency NAME REPORT.txt            `pagoda bench latency` -> a line
  summarize.py table FILE.jsonl...                       every engine's lines -> a Markdown table

Each line: {"engine", "workload", "elapsed_s", "output_tok_per_s", "requests_per_s", ...}; for a
latency workload "decode_ms_per_token". The table's ratio column is pagoda's speed over vLLM's
(above 1: pagoda is ahead), for latency vLLM's ms/token over pagoda's.
"""
import json
import re
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0] if "/" in __file__ else ".")
import workloads as W  # noqa: E402


def pagoda_tput(name, txt, js):
    with open(js) as f:
        r = json.load(f)
    with open(txt) as f:
        text = f.read()
    line = {"engine": "pagoda", "workload": name, "num_requests": r["requests"],
            "total_input_tokens": r["input_tokens"], "total_output_tokens": r["output_tokens"],
            "elapsed_s": round(r["elapsed_s"], 3), "output_tok_per_s": round(r["output_tokens_per_s"], 1),
            "total_tok_per_s": round((r["input_tokens"] + r["output_tokens"]) / r["elapsed_s"], 1),
            "requests_per_s": round(r["requests_per_s"], 3)}
    m = re.search(r"engine: max_num_seqs (\d+), max_num_batched_tokens (\d+)", text)
    if m:
        line.update(max_num_seqs=int(m.group(1)), max_num_batched_tokens=int(m.group(2)))
    m = re.search(r"measured is ([\d.]+)% of the floor", text)
    if m:
        line["pct_of_floor"] = float(m.group(1))
    for k in ("step_ms", "step_host_ms", "step_device_ms"):
        if k in r:
            line[k] = round(r[k], 3)
    return line


def pagoda_latency(name, txt):
    """The batch-1 row of the decode table and the 2,048-token row of the TTFT table."""
    with open(txt) as f:
        text = f.read()
    line = {"engine": "pagoda", "workload": name, "context": W.OFFLINE[name]["context"]}
    dec = text.split("decode,", 1)[1] if "decode," in text else ""
    ttft = text.split("time to first token", 1)[1] if "time to first token" in text else ""
    m = re.search(r"^\s+1\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\S+\s+([\d.]+)%", dec, re.M)
    if m:
        line.update(decode_ms_per_token=float(m.group(1)), output_tok_per_s=float(m.group(2)),
                    bound_ms=float(m.group(3)), pct_of_bound=float(m.group(4)))
    m = re.search(r"^\s+2048\s+([\d.]+)\s", ttft, re.M)
    if m:
        line["ttft_2048_ms"] = float(m.group(1))
    if "decode_ms_per_token" not in line:
        line["error"] = f"no batch-1 decode row in {txt}"
    return line


# workload -> (figure, unit, higher is better)
FIGURES = {"tput_128": ("output_tok_per_s", "output tok/s", True),
           "tput_sharegpt": ("requests_per_s", "req/s", True),
           "tput_1000": ("output_tok_per_s", "output tok/s", True),
           "tput_2048": ("output_tok_per_s", "output tok/s", True),
           "lat_ctx128": ("decode_ms_per_token", "ms/token", False),
           "lat_ctx32k": ("decode_ms_per_token", "ms/token", False),
           "serve_128_inf": ("output_throughput", "output tok/s", True),
           "serve_sharegpt_inf": ("request_throughput", "req/s", True)}


def table(paths):
    got = {}   # (engine, fp8?, workload) -> figure; the last line of each wins
    for p in paths:
        with open(p) as f:
            for raw in f:
                if not raw.startswith("{"):
                    continue
                d = json.loads(raw)
                w = d.get("workload")
                if w not in FIGURES or FIGURES[w][0] not in d:
                    continue
                got[(d["engine"], d.get("quantization") == "fp8", w)] = d[FIGURES[w][0]]
    rows = ["| workload | unit | vLLM 0.26 | pagoda | pagoda / vLLM | vLLM FP8 |",
            "| --- | --- | --- | --- | --- | --- |"]
    for w, (key, unit, higher) in FIGURES.items():
        v, p, v8 = got.get(("vllm", False, w)), got.get(("pagoda", False, w)), got.get(("vllm", True, w))
        ratio = "—"
        if v and p:
            ratio = f"{(p / v if higher else v / p):.2f}"
        fmt = lambda x: "—" if x is None else (f"{x:,.2f}" if x < 100 else f"{x:,.0f}")  # noqa: E731
        rows.append(f"| {w} | {unit} | {fmt(v)} | {fmt(p)} | {ratio} | {fmt(v8)} |")
    return "\n".join(rows)


def main(argv):
    if len(argv) == 4 and argv[0] == "pagoda-tput":
        print(json.dumps(pagoda_tput(*argv[1:])))
    elif len(argv) == 3 and argv[0] == "pagoda-latency":
        print(json.dumps(pagoda_latency(*argv[1:])))
    elif len(argv) >= 2 and argv[0] == "table":
        print(table(argv[1:]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
