#!/usr/bin/env python3
#
# crew — structured concurrency for Boost.Asio coroutines.
# Distributed under the Boost Software License, Version 1.0.
#
"""Runs bench/cold_burst.cpp in alternating rounds and prints crew/raw per cold burst.

    python3 bench/cold_burst.py build/release/bench/cold_burst [--rounds 9] [--n 100000 1000000]

Each round runs raw and crew back to back (in alternating order), one burst per
process. The table shows median ns/task and the median of the per-round ratios with
its range. Python 3 standard library only.
"""

import argparse
import statistics
import subprocess


def burst(binary, impl, workload, n):
    out = subprocess.run([binary, impl, workload, str(n)], check=True, capture_output=True,
                         text=True).stdout
    return float(out.strip())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("binary")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    args = p.parse_args()
    print("| workload | N | raw ns/task | crew ns/task | crew/raw [range] |")
    print("|---|---:|---:|---:|---:|")
    for workload in ("noop", "yield"):
        for n in args.n:
            raw, crew, ratios = [], [], []
            for r in range(args.rounds):
                order = ("raw", "crew") if r % 2 == 0 else ("crew", "raw")
                t = {impl: burst(args.binary, impl, workload, n) for impl in order}
                raw.append(t["raw"])
                crew.append(t["crew"])
                ratios.append(t["crew"] / t["raw"])
            print(f"| {workload} | {n:,} | {statistics.median(raw):,.0f} | "
                  f"{statistics.median(crew):,.0f} | **{statistics.median(ratios):.2f}** "
                  f"[{min(ratios):.2f}–{max(ratios):.2f}] |")


if __name__ == "__main__":
    main()
