#!/usr/bin/env python3
"""Two Nsight Compute CSVs of the same run (--csv --page raw --metrics gpu__time_duration.sum),
old code and new (scripts/gpu_ab.sh), side by side: every kernel's launches grouped by name
and grid, with their mean time a launch in each and old / new. The runs must launch the same
kernels in the same order (the same binary and arguments: only the library differs); a
difference in the sequence is reported and the comparison stops there.

  scripts/ncu_ab.py OLD.csv NEW.csv
"""
import collections
import sys

from ncu_summary import launches   # the CSV reader (name, grid, ns a launch)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    old, new = list(launches(sys.argv[1])), list(launches(sys.argv[2]))
    for path, got in ((sys.argv[1], old), (sys.argv[2], new)):
        if not got:
            sys.exit(f"{path}: no kernel launches in it (did ncu run?)")
    n = min(len(old), len(new))
    if len(old) != len(new):
        print(f"note: {len(old)} launches old, {len(new)} new; comparing the first {n}")
    groups = collections.OrderedDict()
    for i in range(n):
        (ko, go, to), (kn, gn, tn) = old[i], new[i]
        if (ko, go) != (kn, gn):
            print(f"launch {i}: old {ko[:60]} {go}, new {kn[:60]} {gn}: the sequences differ, stopping")
            break
        g = groups.setdefault((ko, go), [0, 0.0, 0.0])
        g[0] += 1
        g[1] += to
        g[2] += tn
    print(f"{'kernel':60s} {'grid':>14s} {'launches':>8s} {'old us':>9s} {'new us':>9s} {'old/new':>8s}")
    for (k, grid), (c, to, tn) in groups.items():
        short = k.split("(")[0][:60]
        print(f"{short:60s} {grid:>14s} {c:8d} {to / c / 1e3:9.2f} {tn / c / 1e3:9.2f} {to / tn if tn else 0:8.2f}")
    tot_o = sum(g[1] for g in groups.values())
    tot_n = sum(g[2] for g in groups.values())
    print(f"{'all of the above':60s} {'':>14s} {sum(g[0] for g in groups.values()):8d} "
          f"{tot_o / 1e3:9.1f} {tot_n / 1e3:9.1f} {tot_o / tot_n if tot_n else 0:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
