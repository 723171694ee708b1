#!/usr/bin/env python3
"""The served workloads (workloads.py) against a running OpenAI-compatible server, driven by OUR
client `pagoda bench serve`; the same runs against `vllm serve` and `pagoda serve`.

  serve_sweep.py run --pagoda BIN --port P --model NAME --engine vllm|pagoda --out DIR
                     [--only serve_128_inf,serve_sharegpt_inf,sweep_sharegpt] [--rates 16,32,...]
                     [--time-budget S] [--dry-run]
  serve_sweep.py compare VLLM.jsonl PAGODA.jsonl [--target-tpot-ms 15]

run: each workload is one `pagoda bench serve ... --save-result` into DIR; stdout gets one JSON
line per run (request and output throughput, TTFT/TPOT/ITL median and p99, completed, failed),
then for the sweep the rate at which this engine's median TPOT crosses the target (log-linear
between the two grid rates around it). The runs' full reports stay in DIR/serve_*.txt and the
result files in DIR/*.json. --time-budget: a run starts only if its estimate fits what is left.
compare: from the two engines' JSON lines, vLLM's rate at a median TPOT of 15 ms and pagoda's
p99 (and median) TPOT at that rate, interpolated over pagoda's grid the same way.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

T0 = time.monotonic()
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import workloads as W  # noqa: E402

KEYS = ["completed", "failed", "duration", "request_throughput", "output_throughput",
        "total_token_throughput", "median_ttft_ms", "p99_ttft_ms", "median_tpot_ms", "p99_tpot_ms",
        "mean_tpot_ms", "median_itl_ms", "p99_itl_ms", "median_e2el_ms"]


def runs_of(a):
    """[(workload, rate or None, est_s)] in order."""
    out = []
    for name in a.only:
        if name == "sweep_sharegpt":
            for r in a.rates:
                out.append((name, r, W.sweep_prompts(r) / r + 6))
        else:
            out.append((name, None, W.SERVE[name]["est_s"]))
    return out


def bench_cmd(a, name, rate):
    tag = name if rate is None else f"{name}_{rate:g}"
    args = W.serve_args(name, None if rate is None else f"{rate:g}")
    return tag, [a.pagoda, "bench", "serve", "--host", a.host, "--port", str(a.port), "--model", a.model,
                 *args, "--metric-percentiles", "99",
                 "--save-result", "--result-dir", a.out, "--result-filename", f"{a.engine}_{tag}.json",
                 "--label", a.engine, "--metadata", f"engine={a.engine}", "--disable-tqdm"]


def one_run(a, name, rate, est):
    """One `pagoda bench serve` run, killed after three times its estimate (a hung server must
    not eat the device call)."""
    tag, cmd = bench_cmd(a, name, rate)
    res = os.path.join(a.out, f"{a.engine}_{tag}.json")
    if os.path.exists(res):
        os.remove(res)
    t = time.monotonic()
    with open(os.path.join(a.out, f"serve_{a.engine}_{tag}.txt"), "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        try:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=max(60, 3 * est)).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    line = {"engine": a.engine, "workload": name, "request_rate": rate if rate is not None else "inf",
            "num_prompts": int(cmd[cmd.index("--num-prompts") + 1]), "rc": rc,
            "wall_s": round(time.monotonic() - t, 1)}
    try:
        with open(res) as f:
            r = json.load(f)
        line.update({k: (round(r[k], 3) if isinstance(r[k], float) else r[k]) for k in KEYS if k in r})
        # pagoda's own step counters over the run (bench serve's "Server steps"; vLLM has none):
        # decode-only against mixed steps, wall and device ms, the engine phases.
        steps = r.get("server_steps")
        if isinstance(steps, dict):
            line["server_steps"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in steps.items()}
    except (OSError, ValueError) as e:
        line["error"] = f"no result file ({e.__class__.__name__}): see serve_{a.engine}_{tag}.txt"
    return line


def crossing(points, target):
    """The rate where points (rate -> value, rising with rate) cross target: log-linear
    between the two grid rates around it; None when the grid does not bracket it."""
    pts = sorted((r, v) for r, v in points if v is not None)
    for (r0, v0), (r1, v1) in zip(pts, pts[1:]):
        if v0 <= target <= v1 and v1 > v0:
            f = (target - v0) / (v1 - v0)
            return math.exp(math.log(r0) + f * (math.log(r1) - math.log(r0)))
    return None


def value_at(points, rate):
    """points (rate -> value) interpolated at rate (linear in log rate); None outside the grid."""
    pts = sorted((r, v) for r, v in points if v is not None)
    for (r0, v0), (r1, v1) in zip(pts, pts[1:]):
        if r0 <= rate <= r1:
            f = (math.log(rate) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return v0 + f * (v1 - v0)
    return None


def sweep_points(lines, key):
    return [(float(d["request_rate"]), d.get(key)) for d in lines
            if d.get("workload") == "sweep_sharegpt" and d.get("request_rate") != "inf"]


def cmd_run(a):
    a.only = a.only.split(",") if a.only else list(W.SERVE) + ["sweep_sharegpt"]
    a.rates = [float(x) for x in a.rates.split(",")] if a.rates else [float(r) for r in W.SWEEP_RATES]
    runs = runs_of(a)
    plan = {"engine": a.engine, "event": "serve_plan", "time_budget_s": a.time_budget,
            "total_est_s": round(sum(e for _, _, e in runs)),
            "runs": [{"workload": n, "request_rate": r if r is not None else "inf",
                      "command": " ".join(bench_cmd(a, n, r)[1])} for n, r, _ in runs]}
    print(json.dumps(plan), flush=True)
    if a.dry_run:
        return 0
    os.makedirs(a.out, exist_ok=True)
    lines = []
    for name, rate, est in runs:
        left = a.time_budget - (time.monotonic() - T0)
        if est > left:
            d = {"engine": a.engine, "workload": name, "request_rate": rate if rate is not None else "inf",
                 "skipped": "time budget", "est_s": round(est), "left_s": round(left)}
        else:
            d = one_run(a, name, rate, est)
        lines.append(d)
        print(json.dumps(d), flush=True)
    pts = sweep_points(lines, "median_tpot_ms")
    if pts:
        r15 = crossing(pts, a.target_tpot_ms)
        print(json.dumps({"engine": a.engine, "event": "sweep_summary", "target_tpot_ms": a.target_tpot_ms,
                          "rate_at_target_median_tpot": round(r15, 2) if r15 else None,
                          "median_tpot_ms_by_rate": dict(pts),
                          "p99_tpot_ms_by_rate": dict(sweep_points(lines, "p99_tpot_ms"))}), flush=True)
    return 0 if all(d.get("rc", 0) == 0 for d in lines) else 1


def cmd_compare(a):
    def load(path):
        with open(path) as f:
            return [json.loads(x) for x in f if x.startswith("{")]
    v, p = load(a.vllm), load(a.pagoda)
    r = crossing(sweep_points(v, "median_tpot_ms"), a.target_tpot_ms)
    out = {"event": "serve_compare", "target_tpot_ms": a.target_tpot_ms, "vllm_rate": r and round(r, 2)}
    if r is None:
        out["note"] = "vLLM's sweep does not bracket the target: widen workloads.SWEEP_RATES"
    else:
        pp99 = value_at(sweep_points(p, "p99_tpot_ms"), r)
        pmed = value_at(sweep_points(p, "median_tpot_ms"), r)
        out.update(vllm_median_tpot_ms=a.target_tpot_ms,
                   pagoda_p99_tpot_ms=pp99 and round(pp99, 2), pagoda_median_tpot_ms=pmed and round(pmed, 2),
                   goal_met=(pp99 is not None and pp99 < a.target_tpot_ms))
    for name in W.SERVE:
        vv = [d for d in v if d.get("workload") == name and "output_throughput" in d]
        pv = [d for d in p if d.get("workload") == name and "output_throughput" in d]
        if vv and pv:
            out[name] = {"vllm_output_tok_s": vv[-1]["output_throughput"],
                         "pagoda_output_tok_s": pv[-1]["output_throughput"],
                         "pagoda_over_vllm": round(pv[-1]["output_throughput"] / vv[-1]["output_throughput"], 3)}
    print(json.dumps(out))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--pagoda", required=True, help="the pagoda tool (its `bench serve` is the client)")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--model", required=True, help="the served model name")
    r.add_argument("--engine", required=True, choices=["vllm", "pagoda"], help="label of the results")
    r.add_argument("--out", required=True, help="folder for reports and result files")
    r.add_argument("--only", help="comma-separated: " + ", ".join(list(W.SERVE) + ["sweep_sharegpt"]))
    r.add_argument("--rates", help="sweep rates, comma-separated (default workloads.SWEEP_RATES)")
    r.add_argument("--target-tpot-ms", type=float, default=W.TARGET_TPOT_MS)
    r.add_argument("--time-budget", type=float, default=1e9, help="seconds from start")
    r.add_argument("--dry-run", action="store_true", help="print the plan and the commands only")
    c = sub.add_parser("compare")
    c.add_argument("vllm")
    c.add_argument("pagoda")
    c.add_argument("--target-tpot-ms", type=float, default=W.TARGET_TPOT_MS)
    a = p.parse_args()
    if a.cmd == "run":
        bad = set(a.only.split(",")) - set(W.SERVE) - {"sweep_sharegpt"} if a.only else set()
        if bad:
            p.error(f"--only: unknown {sorted(bad)}")
        return cmd_run(a)
    return cmd_compare(a)


if __name__ == "__main__":
    sys.exit(main())
