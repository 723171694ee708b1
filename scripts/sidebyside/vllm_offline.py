#!/usr/bin/env python3
"""vLLM's side of the offline workloads (workloads.py), all in ONE engine in one process.

  PYTHONPATH=/tmp/vllm-site python3 scripts/sidebyside/vllm_offline.py --kit .kit/vllm
  ... --fp8                    quantization="fp8" (dynamic W8A8), tput_128 and lat_ctx128 only
  ... --only tput_128,lat_ctx128   a subset, in the table's order
  ... --dry-run                the plan (lengths, token counts, estimates); needs no vLLM, no GPU

The engine is set up as the kit's bench_vllm.py sets it up: LLM(load_format="dummy") on the
Llama-3-8B config (random weights, bf16), the tokenizer skipped (prompts are token ids, outputs
are not detokenized), VLLM_USE_FLASHINFER_SAMPLER=0 (FlashInfer is not in the kit), prefix
caching and everything else at vLLM's defaults, and max_num_seqs 1024, max_num_batched_tokens
16384 (vLLM's offline defaults on an H200), max_model_len 34,816 (the 32k batch-1 run) on a copy
of the config whose max_position_embeddings says so, gpu_memory_utilization 0.9.

Every request: random token ids (uniform below the vocabulary size), SamplingParams(temperature
1.0, top_p 1.0, ignore_eos=True, max_tokens=its output length). Each throughput workload first
runs 8 short warm-up requests, then all of its requests in one llm.generate() call; elapsed is
that call's wall time. Batch-1 latency: (t(256 tokens) - t(16 tokens)) / 240 over fresh prompts
(no prefix-cache hits), the median of `iters` pairs, as bench_vllm.py --latency.

stdout: one JSON line per workload ({"engine": "vllm", "workload": ..., "elapsed_s",
"output_tok_per_s", "requests_per_s", ...}), a first line with the engine's facts, and a line for
each workload the time budget skipped. vLLM's own log goes to stderr.

--time-budget S (default 510 s, counted from this process's start): a workload starts only when
its estimate fits in what is left; a watchdog ends the process (and vLLM's engine-core process)
at the budget, after printing a line that says so.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time

T0 = time.monotonic()
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import workloads as W  # noqa: E402

VLLM_STARTUP_S = 90      # LLM(...) on the 8B shape: ~78 s measured (24 s of it torch.compile)
FP8_STARTUP_S = 100      # plus the FP8 quantization of the weights at load
WARMUP_PROMPTS = 8


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kit", default=os.environ.get("VLLM_KIT", os.path.join(REPO, ".kit", "vllm")),
                   help="folder with the kit's sharegpt_lengths.py and bench_vllm.py (default "
                        "$VLLM_KIT or .kit/vllm)")
    p.add_argument("--config", default=os.path.join(REPO, "scripts", "configs", "llama-3-8b", "config.json"))
    p.add_argument("--model-dir", default="/tmp/sidebyside/l8b-long",
                   help="where the config copy with max_position_embeddings = max_model_len goes")
    p.add_argument("--max-num-seqs", type=int, default=1024)
    p.add_argument("--max-num-batched-tokens", type=int, default=16384)
    p.add_argument("--max-model-len", type=int, default=W.MAX_MODEL_LEN)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    p.add_argument("--fp8", action="store_true", help='quantization="fp8"; runs workloads.FP8 only')
    p.add_argument("--only", help="comma-separated workload names (default: all, or FP8's with --fp8)")
    p.add_argument("--time-budget", type=float, default=510.0,
                   help="seconds from start; the default stops well before 9 minutes")
    p.add_argument("--out", help="also append the JSON lines to this file")
    p.add_argument("--dry-run", action="store_true", help="print the plan, start no engine")
    a = p.parse_args(argv)
    default = W.FP8 if a.fp8 else list(W.OFFLINE)
    a.names = [n for n in W.OFFLINE if n in (a.only.split(",") if a.only else default)]
    unknown = set(a.only.split(",")) - set(W.OFFLINE) if a.only else set()
    if unknown:
        p.error(f"--only: unknown workloads {sorted(unknown)} (known: {', '.join(W.OFFLINE)})")
    if a.fp8 and set(a.names) - set(W.FP8):
        p.error(f"--fp8 runs only {', '.join(W.FP8)}")
    return a


def kit_modules(kit):
    """The kit's sharegpt_lengths (the lengths pagoda's bench draws) and bench_vllm (its
    offline environment), imported from the kit folder."""
    for f in ("sharegpt_lengths.py", "bench_vllm.py"):
        if not os.path.exists(os.path.join(kit, f)):
            raise SystemExit(f"{kit}/{f} missing: give --kit the folder build_serve_extras.sh filled")
    sys.path.insert(0, os.path.abspath(kit))
    import bench_vllm
    import sharegpt_lengths
    return sharegpt_lengths, bench_vllm


def lengths_of(name, sharegpt_lengths):
    """[(input_len, output_len)] of a throughput workload."""
    w = W.OFFLINE[name]
    if w["dataset"] == "sharegpt":
        return [tuple(x) for x in sharegpt_lengths.lengths(w["num_prompts"], W.SEED)]
    return [(w["input_len"], w["output_len"])] * w["num_prompts"]


def plan(a, sharegpt_lengths):
    """One dict per workload to run: what it is and what it costs."""
    out = []
    for n in a.names:
        w = W.OFFLINE[n]
        d = {"workload": n, "kind": w["kind"], "est_s": w["est_s"]}
        if w["kind"] == "throughput":
            L = lengths_of(n, sharegpt_lengths)
            d.update(num_prompts=len(L), total_input_tokens=sum(i for i, _ in L),
                     total_output_tokens=sum(o for _, o in L),
                     mean_input_len=round(sum(i for i, _ in L) / len(L), 1),
                     mean_output_len=round(sum(o for _, o in L) / len(L), 1),
                     max_input_len=max(i for i, _ in L), max_output_len=max(o for _, o in L),
                     max_total_len=max(i + o for i, o in L))
            if d["max_total_len"] > a.max_model_len:
                raise SystemExit(f"{n}: a request of {d['max_total_len']} tokens > max_model_len {a.max_model_len}")
        else:
            need = w["context"] + w["long_len"]
            if need > a.max_model_len:
                raise SystemExit(f"{n}: {need} tokens > max_model_len {a.max_model_len}")
            d.update(context=w["context"], long_len=w["long_len"], short_len=w["short_len"], iters=w["iters"])
        out.append(d)
    return out


class Reporter:
    """Prints the JSON lines (and appends them to --out)."""

    def __init__(self, path):
        self.f = open(path, "a") if path else None

    def emit(self, d):
        line = json.dumps(d)
        print(line, flush=True)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()


def elapsed():
    return time.monotonic() - T0


def start_watchdog(budget, rep, current):
    """At the budget: a line naming the workload in flight, then SIGKILL to this process group
    (this process and vLLM's engine-core process, which main() put in a group of their own)."""
    def fire():
        rep.emit({"engine": "vllm", "event": "time_budget_exceeded", "budget_s": budget,
                  "workload_in_flight": current.get("name"), "elapsed_s": round(elapsed(), 1)})
        sys.stderr.flush()
        os.killpg(os.getpgrp(), signal.SIGKILL)
    t = threading.Timer(max(1.0, budget - elapsed()), fire)
    t.daemon = True
    t.start()


def make_engine(a, bench_vllm):
    for k, v in bench_vllm.OFFLINE_ENV.items():
        os.environ.setdefault(k, v)
    from vllm import LLM
    W.write_long_config(a.config, a.model_dir)
    kw = dict(model=a.model_dir, load_format="dummy", dtype="bfloat16", seed=W.SEED,
              max_num_seqs=a.max_num_seqs, max_num_batched_tokens=a.max_num_batched_tokens,
              max_model_len=a.max_model_len, gpu_memory_utilization=a.gpu_memory_utilization,
              skip_tokenizer_init=True)
    if a.fp8:
        kw["quantization"] = "fp8"
    print(f"LLM({kw})", file=sys.stderr, flush=True)
    t = time.perf_counter()
    llm = LLM(**kw)
    return llm, kw, time.perf_counter() - t


def engine_facts(llm, kw, init_s, bench_vllm):
    import torch
    import vllm
    d = {"engine": "vllm", "event": "engine_ready", "vllm_version": vllm.__version__,
         "torch_version": torch.__version__, "gpu": bench_vllm.gpu_name(),
         "init_s": round(init_s, 1), "elapsed_s": round(elapsed(), 1),
         "llm_kwargs": {k: v for k, v in kw.items() if k != "model"}}
    try:
        vc = llm.llm_engine.vllm_config
        d.update(cudagraph_mode=str(vc.compilation_config.cudagraph_mode),
                 compilation_mode=str(vc.compilation_config.mode),
                 async_scheduling=bool(vc.scheduler_config.async_scheduling),
                 prefix_caching=bool(vc.cache_config.enable_prefix_caching),
                 num_gpu_blocks=vc.cache_config.num_gpu_blocks, block_size=vc.cache_config.block_size)
    except Exception as e:  # the facts are informative; the run goes on without them
        d["config_error"] = repr(e)
    return d


def run_throughput(llm, name, L, vocab, rng, bench_vllm):
    from vllm import SamplingParams

    def sp(n):
        return SamplingParams(n=1, temperature=W.TEMPERATURE, top_p=1.0, ignore_eos=True,
                              max_tokens=n, detokenize=False)
    warm = [(min(i, 128), 16) for i, _ in L[:WARMUP_PROMPTS]]
    llm.generate(bench_vllm.random_prompts(rng, vocab, [i for i, _ in warm]), [sp(o) for _, o in warm],
                 use_tqdm=False)
    prompts = bench_vllm.random_prompts(rng, vocab, [i for i, _ in L])
    params = [sp(o) for _, o in L]
    t = time.perf_counter()
    outs = llm.generate(prompts, params, use_tqdm=False)
    dt = time.perf_counter() - t
    n_in = sum(len(o.prompt_token_ids) for o in outs)
    n_out = sum(len(c.token_ids) for o in outs for c in o.outputs)
    return {"num_requests": len(outs), "total_input_tokens": n_in, "total_output_tokens": n_out,
            "expected_output_tokens": sum(o for _, o in L), "elapsed_s": round(dt, 3),
            "output_tok_per_s": round(n_out / dt, 1), "total_tok_per_s": round((n_in + n_out) / dt, 1),
            "requests_per_s": round(len(outs) / dt, 3)}


def run_latency(llm, w, vocab, rng, bench_vllm):
    from vllm import SamplingParams
    I, Lg, S = w["context"], w["long_len"], w["short_len"]

    def timed(n):
        sp = SamplingParams(n=1, temperature=W.TEMPERATURE, top_p=1.0, ignore_eos=True,
                            max_tokens=n, detokenize=False)
        t = time.perf_counter()
        o = llm.generate(bench_vllm.random_prompts(rng, vocab, [I]), sp, use_tqdm=False)
        dt = time.perf_counter() - t
        assert len(o[0].outputs[0].token_ids) == n, "a latency request stopped early"
        return dt
    timed(Lg)  # warm-up: this context's shapes
    tl, ts = [], []
    for _ in range(w["iters"]):
        tl.append(timed(Lg))
        ts.append(timed(S))
    med = lambda x: sorted(x)[len(x) // 2]  # noqa: E731
    per_tok = (med(tl) - med(ts)) / (Lg - S)
    return {"context": I, "long_len": Lg, "short_len": S, "iters": w["iters"],
            "t_long_s": [round(x, 4) for x in tl], "t_short_s": [round(x, 4) for x in ts],
            "decode_ms_per_token": round(1000 * per_tok, 4),
            "ttft_est_ms": round(1000 * (med(ts) - (S - 1) * per_tok), 2),
            "elapsed_s": round(sum(tl) + sum(ts), 3), "output_tok_per_s": round(1 / per_tok, 1),
            "requests_per_s": round(2 * w["iters"] / (sum(tl) + sum(ts)), 3)}


def main():
    a = parse_args()
    sharegpt_lengths, bench_vllm = kit_modules(a.kit)
    steps = plan(a, sharegpt_lengths)
    startup = FP8_STARTUP_S if a.fp8 else VLLM_STARTUP_S
    rep = Reporter(a.out)
    rep.emit({"engine": "vllm", "event": "plan", "fp8": a.fp8, "time_budget_s": a.time_budget,
              "startup_est_s": startup, "total_est_s": startup + sum(s["est_s"] for s in steps),
              "workloads": steps})
    if a.dry_run:
        return 0
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # a group of our own: the watchdog's SIGKILL reaches the engine core
    current = {}
    start_watchdog(a.time_budget, rep, current)
    llm, kw, init_s = make_engine(a, bench_vllm)
    rep.emit(engine_facts(llm, kw, init_s, bench_vllm))
    import numpy as np
    with open(a.config) as f:
        vocab = json.load(f)["vocab_size"]
    rng = np.random.default_rng(W.SEED)
    for s in steps:
        name = s["workload"]
        left = a.time_budget - elapsed()
        if s["est_s"] > left:
            rep.emit({"engine": "vllm", "workload": name, "skipped": "time budget",
                      "est_s": s["est_s"], "left_s": round(left, 1)})
            continue
        current["name"] = name
        w = W.OFFLINE[name]
        if w["kind"] == "throughput":
            r = run_throughput(llm, name, lengths_of(name, sharegpt_lengths), vocab, rng, bench_vllm)
        else:
            r = run_latency(llm, w, vocab, rng, bench_vllm)
        rep.emit({"engine": "vllm", "workload": name, "quantization": "fp8" if a.fp8 else None,
                  "max_num_seqs": a.max_num_seqs, "max_num_batched_tokens": a.max_num_batched_tokens,
                  **r, "at_s": round(elapsed(), 1)})
        current["name"] = None
    rep.emit({"engine": "vllm", "event": "done", "elapsed_s": round(elapsed(), 1)})
    try:  # stop the engine-core process now rather than at interpreter exit
        llm.llm_engine.engine_core.shutdown()
    except Exception as e:  # already gone, or another vLLM layout: exit tears it down too
        print(f"engine shutdown: {e!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
