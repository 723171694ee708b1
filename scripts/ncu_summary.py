#!/usr/bin/env python3
"""Sums an Nsight Compute CSV (scripts/gpu_check.sh NCU=..., --metrics gpu__time_duration.sum)
by kernel name over one step: steps end at each launch of the step's last kernel (the argmax
that ends every greedy step). Lists every step's kernel count and time, then breaks down step
STEP (default 1: the first timed decode step of `pagoda bench latency --warmup 1`).

  scripts/ncu_summary.py ncu-NAME.csv [STEP] [STEP_END_KERNEL_SUBSTRING]
"""
import csv, sys, collections

def launches(path):
    """(kernel name, grid size, ns) of every launch in the CSV, in launch order (the units row
    skipped). Also scripts/ncu_ab.py's reader."""
    with open(path) as f:
        lines = [l for l in f if l.startswith('"')]
    for d in csv.DictReader(lines):
        t = d.get("gpu__time_duration.sum", "")
        try:
            yield d["Kernel Name"], d.get("Grid Size", ""), float(t.replace(",", ""))
        except ValueError:
            continue  # the units row

def rows(path):
    for name, _, t in launches(path):
        yield name, t

def main():
    ks = list(rows(sys.argv[1]))
    want = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    end = sys.argv[3] if len(sys.argv) > 3 else "argmax"
    ends = [i for i, (n, _) in enumerate(ks) if end in n]
    if want >= len(ends):
        sys.exit("%d steps ending in a kernel named *%s*, no step %d" % (len(ends), end, want))
    starts = [0] + [e + 1 for e in ends[:-1]]
    for j, (a, b) in enumerate(zip(starts, ends)):
        print("step %d: %d kernels, %.1f us" % (j, b + 1 - a, sum(t for _, t in ks[a:b + 1]) / 1e3))
    step = ks[starts[want]:ends[want] + 1]
    agg = collections.OrderedDict()
    for n, t in step:
        short = n.split("(")[0].split("<")[0][:60]
        c, s = agg.get(short, (0, 0.0))
        agg[short] = (c + 1, s + t)
    total = sum(t for _, t in step)
    unit = "ns" if total > 1e5 else "us"
    scale = 1e-3 if unit == "ns" else 1.0
    print("one step: %d kernels, %.1f us of kernel time" % (len(step), total * scale))
    for n, (c, s) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
        print("  %-60s %5d  %9.1f us  %5.1f%%" % (n, c, s * scale, 100 * s / total))

if __name__ == "__main__":
    main()
