#!/usr/bin/env python3
"""The side-by-side workloads: ONE table that vllm_offline.py, serve_sweep.py and pagoda_all.sh
all read, so both engines run the same lengths, counts, seeds and sampling settings.

  workloads.py list offline|fp8|serve     the workload names of a group, one a line
  workloads.py pagoda-args NAME           `pagoda bench throughput|latency` arguments of NAME
  workloads.py serve-args NAME [RATE]     `pagoda bench serve` arguments of NAME (a client
                                          against either engine's server)
  workloads.py long-config SRC DST_DIR    write DST_DIR/config.json: SRC with
                                          max_position_embeddings raised to MAX_MODEL_LEN

Offline workloads (random weights, Llama-3-8B shape, prompts of random token ids, ignore_eos,
temperature 1.0 and top_p 1.0 as `vllm bench throughput` samples):
  tput_128       128 in / 128 out, 2,000 requests
  tput_sharegpt  ShareGPT-shaped lengths, 1,000 requests: `pagoda bench throughput --dataset
                 sharegpt --seed 0` draws them; vLLM gets the identical list from the kit's
                 sharegpt_lengths.py (mean 195.0 in / 190.1 out, max 1,024 in / 1,708 out)
  tput_1000      1000 / 1000, 1,000 requests
  tput_2048      2048 / 2048, 256 requests
  lat_ctx128     batch-1 decode ms/token with ~128-384 tokens of context
  lat_ctx32k     batch-1 decode ms/token with ~32k tokens of context (the long config below)
Served workloads (`pagoda bench serve` against `vllm serve` / `pagoda serve`):
  serve_128_inf       128 / 128, 2,000 requests, all sent at once (--request-rate inf)
  serve_sharegpt_inf  ShareGPT-shaped, 1,000 requests at once
  sweep_sharegpt      ShareGPT-shaped at each rate of SWEEP_RATES, SWEEP_SECONDS of arrivals
                      each: where vLLM's median TPOT crosses 15 ms, and pagoda's p99 there
"""
import json
import sys

SEED = 0
TEMPERATURE = 1.0
LONG_CONTEXT = 32768
# vLLM's one offline engine holds every workload, the 32k batch-1 run the longest (32,768 in +
# 256 out); the 8B config says 8,192, so both engines read a copy that says this (long-config).
MAX_MODEL_LEN = 34816

# est_s: seconds one engine needs for the workload alone (vLLM 0.26 on one H200, from the figures
# of issue 20: 128/128 16,445 tok/s, FP8 23,318, ShareGPT 50 req/s, 1000/1000 8,453 tok/s; the
# others estimated), what the time budgets plan with.
OFFLINE = {
    "tput_128": dict(kind="throughput", dataset="fixed", input_len=128, output_len=128,
                     num_prompts=2000, est_s=18),
    "tput_sharegpt": dict(kind="throughput", dataset="sharegpt", num_prompts=1000, est_s=24),
    "tput_1000": dict(kind="throughput", dataset="fixed", input_len=1000, output_len=1000,
                      num_prompts=1000, est_s=125),
    "tput_2048": dict(kind="throughput", dataset="fixed", input_len=2048, output_len=2048,
                      num_prompts=256, est_s=95),
    # vLLM: (t(256 tokens) - t(16 tokens)) / 240 over fresh prompts of `context` tokens, as the
    # kit's bench_vllm.py --latency; pagoda: `bench latency` decode steps at that context.
    "lat_ctx128": dict(kind="latency", context=128, long_len=256, short_len=16, iters=5, est_s=10),
    "lat_ctx32k": dict(kind="latency", context=LONG_CONTEXT, long_len=256, short_len=16, iters=3,
                       est_s=30),
}
FP8 = ["tput_128", "lat_ctx128"]    # vllm_offline.py --fp8 runs these only

# Each served run draws its prompts with a seed of its own: both servers cache prefixes, and
# runs on one seed would share prompts (the sweep's rates would find the ShareGPT run's prompts
# cached and skip most of their prefill).
SERVE = {
    "serve_128_inf": dict(dataset="random", input_len=128, output_len=128, num_prompts=2000,
                          rate="inf", seed=1, est_s=25),
    "serve_sharegpt_inf": dict(dataset="sharegpt", num_prompts=1000, rate="inf", seed=2, est_s=30),
}
SWEEP_RATES = [16, 32, 48, 64, 96, 160]  # requests/s, Poisson arrivals (past 64 both engines queue)
SWEEP_SECONDS = 10                       # of arrivals at each rate: num_prompts = rate x this
SWEEP_MIN_PROMPTS = 200
TARGET_TPOT_MS = 15.0


def sweep_prompts(rate):
    return max(SWEEP_MIN_PROMPTS, int(round(rate * SWEEP_SECONDS)))


def sweep_seed(rate):
    """The prompts' seed of the sweep's run at `rate` (distinct from every other run's)."""
    return 1000 + int(round(float(rate) * 10))


def pagoda_args(name):
    """The `pagoda bench throughput` / `pagoda bench latency` arguments of an offline workload
    (the model, and the batch limits of the run, are the caller's)."""
    w = OFFLINE[name]
    if w["kind"] == "latency":
        # --steps: as many decode steps as vLLM's long - short difference (240).
        return ["--batch", "1", "--context", str(w["context"]), "--steps",
                str(w["long_len"] - w["short_len"]), "--prompt-len", "2048", "--seed", str(SEED)]
    a = ["--num-prompts", str(w["num_prompts"]), "--seed", str(SEED), "--temperature", str(TEMPERATURE)]
    if w["dataset"] == "sharegpt":
        return a + ["--dataset", "sharegpt"]
    return a + ["--input-len", str(w["input_len"]), "--output-len", str(w["output_len"])]


def serve_args(name, rate=None):
    """`pagoda bench serve` arguments of a served workload (the server's address and model are
    the caller's). name: a SERVE key, or sweep_sharegpt with a rate."""
    if name == "sweep_sharegpt":
        if rate is None:
            raise SystemExit("sweep_sharegpt needs a rate")
        w = dict(dataset="sharegpt", num_prompts=sweep_prompts(float(rate)), rate=rate,
                 seed=sweep_seed(rate))
    else:
        w = SERVE[name]
    a = ["--dataset-name", w["dataset"], "--num-prompts", str(w["num_prompts"]),
         "--request-rate", str(w["rate"]), "--seed", str(w["seed"]), "--temperature", str(TEMPERATURE),
         "--ignore-eos"]
    if w["dataset"] == "random":
        a += ["--random-input-len", str(w["input_len"]), "--random-output-len", str(w["output_len"])]
    return a


def write_long_config(src, dst_dir):
    """dst_dir/config.json: src with max_position_embeddings = MAX_MODEL_LEN (random weights:
    RoPE at positions below 8,192 is unchanged; nothing else reads it)."""
    import os
    with open(src) as f:
        cfg = json.load(f)
    cfg["max_position_embeddings"] = max(int(cfg.get("max_position_embeddings", 0)), MAX_MODEL_LEN)
    os.makedirs(dst_dir, exist_ok=True)
    with open(os.path.join(dst_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    return os.path.join(dst_dir, "config.json")


def main(argv):
    if len(argv) >= 2 and argv[0] == "list":
        names = {"offline": list(OFFLINE), "fp8": FP8, "serve": list(SERVE)}.get(argv[1])
        if names is None:
            raise SystemExit(f"list: unknown group {argv[1]!r} (offline, fp8, serve)")
        print("\n".join(names))
    elif len(argv) == 2 and argv[0] == "pagoda-args":
        if argv[1] not in OFFLINE:
            raise SystemExit(f"pagoda-args: unknown workload {argv[1]!r} ({', '.join(OFFLINE)})")
        print(" ".join(pagoda_args(argv[1])))
    elif len(argv) in (2, 3) and argv[0] == "serve-args":
        if argv[1] not in SERVE and argv[1] != "sweep_sharegpt":
            raise SystemExit(f"serve-args: unknown workload {argv[1]!r}")
        print(" ".join(serve_args(argv[1], argv[2] if len(argv) == 3 else None)))
    elif len(argv) == 3 and argv[0] == "long-config":
        print(write_long_config(argv[1], argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
