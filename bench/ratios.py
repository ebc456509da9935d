#!/usr/bin/env python3
#
# crew — structured concurrency for Boost.Asio coroutines.
# Distributed under the Boost Software License, Version 1.0.
#
"""Runs crew's Google Benchmark binaries (or reads their JSON) and prints crew/raw ratios.

    python3 bench/ratios.py build/release/bench/bench_task_group
    python3 bench/ratios.py build/release/bench/bench_throw_site --filter 'N:1000/|throw'
    python3 bench/ratios.py --rounds 0 --repetitions 9 build/release/bench/bench_task_group
    python3 bench/ratios.py saved.json     # --save output, or any --benchmark_format=json

Benchmarks are named <workload>/<impl>/.../N:<n> with impl `raw` or `crew`; the script
pairs the two implementations of every other name and prints a Markdown table:
workload, threads, N, raw ns/task, crew ns/task (medians) and crew/raw.

Pairing. By default every benchmark runs --rounds times (7), each time in a fresh
process and after a warm-up (a burst of 10^5 tasks leaves glibc's heap in a state that slows whatever runs
next in the same process, by up to 2x); the raw and crew members of a pair run back
to back, in alternating order. crew/raw is the median of the per-round ratios (its
interquartile range is shown), so a load spike on this shared 2-core machine spoils one
round, not the table. --same-process runs each round as one process instead (the
binaries then run each pair back to back, crew first when CREW_BENCH_CREW_FIRST is
set, which every other round does). With --rounds 0 the binary runs once with
--benchmark_repetitions and random interleaving, and repetitions pair by index. JSON
holding only aggregates (--benchmark_report_aggregates_only) is paired by medians.

The CPU column is the same ratio from the process CPU time, where the benchmark
measures it (bench_task_group does: helper threads included, idle time excluded).
Python 3 standard library only.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

IMPLS = ("raw", "crew")
UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
# Suffixes Google Benchmark appends to a registered name. (crew's benchmarks name their
# io threads `threads:<t>` themselves and never use ->Threads(), so that part stays.)
NOISE = re.compile(r"^(real_time|process_time|manual_time|iterations:\d+|repeats:\d+|"
                   r"min_time:[\d.]+)$")
# Table order; other workloads follow alphabetically.
ORDER = ["noop", "yield", "limit64", "limit64_async", "fail0", "fail10 traces:off",
         "fail10 traces:on"]


# ---------------------------------------------------------------- running

def bench_command(path, args, extra):
    cmd = [os.path.abspath(path), "--benchmark_format=json"]
    if args.min_time is not None:
        cmd.append(f"--benchmark_min_time={args.min_time}")  # 1.7.1: plain seconds
    if args.warmup:
        cmd.append(f"--benchmark_min_warmup_time={args.warmup}")
    if args.filter:
        cmd.append(f"--benchmark_filter={args.filter}")
    return cmd + extra


def run_once(cmd, crew_first=False, quiet=False):
    env = dict(os.environ)
    env.pop("CREW_BENCH_CREW_FIRST", None)
    if crew_first:
        env["CREW_BENCH_CREW_FIRST"] = "1"
    if not quiet:
        print("running:", ("CREW_BENCH_CREW_FIRST=1 " if crew_first else "") + " ".join(cmd),
              file=sys.stderr)
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=env).stdout
    return json.loads(out)


def list_benchmarks(path, args):
    cmd = [os.path.abspath(path), "--benchmark_list_tests=true"]
    if args.filter:
        cmd.append(f"--benchmark_filter={args.filter}")
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def run_isolated(path, args):
    """Every benchmark in a process of its own, pairs back to back, order alternating."""
    names = list_benchmarks(path, args)
    groups = {}
    for name in names:
        impl, workload, threads, n = split_name(name)
        groups.setdefault((workload, threads, n) if impl else name, []).append((impl, name))
    rounds = []
    for r in range(args.rounds):
        merged = None
        for members in groups.values():
            members = sorted(members, key=lambda m: IMPLS.index(m[0]) if m[0] else 0,
                             reverse=r % 2 == 1)
            for _, name in members:
                cmd = bench_command(path, args, args.extra)
                cmd = [c for c in cmd if not c.startswith("--benchmark_filter=")]
                cmd.append(f"--benchmark_filter=^{re.escape(name)}$")
                doc = run_once(cmd, quiet=True)
                if merged is None:
                    merged = doc
                else:
                    merged["benchmarks"] += doc.get("benchmarks", [])
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        rounds.append(merged or {"benchmarks": []})
    return {"crew_rounds": rounds, "crew_isolated": True}


def run_binary(path, args):
    if args.rounds > 0 and not args.same_process:
        return run_isolated(path, args)
    if args.rounds > 0:
        cmd = bench_command(path, args, args.extra)
        return {"crew_rounds": [run_once(cmd, crew_first=r % 2 == 1)
                                for r in range(args.rounds)]}
    cmd = bench_command(path, args, [f"--benchmark_repetitions={args.repetitions}",
                                     "--benchmark_enable_random_interleaving=true"] + args.extra)
    return run_once(cmd)


def load(path, args):
    with open(path, "rb") as f:
        head = f.read(1)
    if head in (b"{", b"[") or not os.access(path, os.X_OK):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    doc = run_binary(path, args)
    if args.save:
        target = args.save
        if len(args.inputs) > 1:
            target = f"{args.save}.{os.path.basename(path)}.json"
        with open(target, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        print("saved:", target, file=sys.stderr)
    return doc


# ---------------------------------------------------------------- reading

def split_name(run_name):
    """(impl, workload, threads, n) from a run name; impl is None when unpaired."""
    parts = [p for p in run_name.split("/") if not NOISE.match(p)]
    impl = next((p for p in parts if p in IMPLS), None)
    threads, n, workload = 1, None, []
    for p in parts:
        if p == impl:
            continue
        if p.startswith("threads:"):
            threads = int(p.split(":", 1)[1])
        elif p.startswith("N:"):
            n = int(p.split(":", 1)[1])
        else:
            workload.append(p)
    return impl, " ".join(workload), threads, n


def samples_of(doc):
    """run_name -> {round: (real ns, cpu ns per iteration)}, and run_name -> cv if known."""
    rounds = doc["crew_rounds"] if "crew_rounds" in doc else [doc]
    samples, cvs = {}, {}
    for r, d in enumerate(rounds):
        for b in d.get("benchmarks", []):
            name = b.get("run_name", b["name"])
            if b.get("error_occurred"):
                print(f"warning: {name}: {b.get('error_message')}", file=sys.stderr)
                continue
            scale = UNIT_NS[b.get("time_unit", "ns")]
            value = (b["real_time"] * scale, b["cpu_time"] * scale)
            if b.get("run_type") == "aggregate":
                if b.get("aggregate_name") == "median":
                    samples.setdefault(name, {}).setdefault(("median", r), value)
                elif b.get("aggregate_name") == "cv":
                    cvs[name] = b["real_time"]  # a fraction, not a time
                continue
            key = (r, b.get("repetition_index", 0))
            samples.setdefault(name, {})[key] = value
    # Aggregates stand in only for runs whose repetitions were not reported.
    for name, s in samples.items():
        if any(k[0] != "median" for k in s):
            for k in [k for k in s if k[0] == "median"]:
                del s[k]
    return samples, cvs


# ---------------------------------------------------------------- reporting

def fmt_ns(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def quartiles(values):
    if len(values) < 2:
        return None
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def report(doc, source):
    samples, cvs = samples_of(doc)
    pairs, single = {}, []
    for name, s in samples.items():
        impl, workload, threads, n = split_name(name)
        per = n or 1
        per_task = {k: (real / per, cpu / per) for k, (real, cpu) in s.items()}
        if impl is None:
            single.append((name, workload, per_task))
        else:
            pairs.setdefault((workload, threads, n), {})[impl] = (name, per_task)

    n_rounds = len(doc["crew_rounds"]) if "crew_rounds" in doc else 1
    first = doc["crew_rounds"][0] if "crew_rounds" in doc else doc
    ctx = first.get("context", {})
    loads = ", ".join(f"{x:.2f}" for x in ctx.get("load_avg", [])) or "?"
    how = (f"{n_rounds} rounds"
           + (", one process per benchmark" if doc.get("crew_isolated") else "")
           + ", crew/raw = median of per-round ratios"
           if n_rounds > 1 else "crew/raw = median of per-repetition ratios")
    print(f"### {source}\n")
    print(f"{ctx.get('date', '?')}, {ctx.get('num_cpus', '?')} CPUs at "
          f"{ctx.get('mhz_per_cpu', '?')} MHz, load average {loads} at the start; "
          f"{how} (IQR in brackets).\n")

    medians = {}
    rows = []
    for key, v in pairs.items():
        if not all(i in v for i in IMPLS):
            print(f"warning: no pair for {key}", file=sys.stderr)
            continue
        raw, crew = v["raw"][1], v["crew"][1]
        med = {impl: (statistics.median(x[0] for x in v[impl][1].values()),
                      statistics.median(x[1] for x in v[impl][1].values())) for impl in IMPLS}
        medians[key] = med
        common = sorted(set(raw) & set(crew), key=str)
        if common and all(k[0] != "median" for k in common):
            ratios = [crew[k][0] / raw[k][0] for k in common]
            cpu_ratios = [crew[k][1] / raw[k][1] for k in common]
        else:  # aggregates only: ratio of medians
            ratios = [med["crew"][0] / med["raw"][0]]
            cpu_ratios = [med["crew"][1] / med["raw"][1]]
        rows.append((key, med, ratios, cpu_ratios,
                     max([cvs[v[i][0]] for i in IMPLS if v[i][0] in cvs], default=None)))

    if rows:
        print("| workload | threads | N | raw ns/task | crew ns/task | crew/raw | "
              "crew/raw (CPU) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        rows.sort(key=lambda r: (ORDER.index(r[0][0]) if r[0][0] in ORDER else len(ORDER),
                                 r[0][0], r[0][1], r[0][2] or 0))
        for (workload, threads, n), med, ratios, cpu_ratios, cv in rows:
            q = quartiles(ratios)
            spread = f" [{q[0]:.2f}–{q[1]:.2f}]" if q else (
                f" (cv {100 * cv:.0f}%)" if cv is not None else "")
            cpu = (f"{statistics.median(cpu_ratios):.2f}"
                   if any(x[1] != x[0] for x in [med["raw"], med["crew"]]) else "-")
            print(f"| {workload} | {threads} | {n if n else '-'} | {fmt_ns(med['raw'][0])} | "
                  f"{fmt_ns(med['crew'][0])} | **{statistics.median(ratios):.2f}**{spread} | "
                  f"{cpu} |")
        print()

    # Cost of one failing task: (t(failP) - t(fail0)) / (P / 100), from the medians.
    extra = []
    for (workload, threads, n), med in medians.items():
        m = re.match(r"^fail(\d+)(.*)$", workload)
        base = medians.get(("fail0", threads, n))
        if not m or m.group(1) == "0" or not base:
            continue
        share = int(m.group(1)) / 100
        extra.append((workload, n, [(med[i][0] - base[i][0]) / share for i in IMPLS]))
    if extra:
        print("| failing tasks | N | raw: extra ns per failing task | crew: extra ns per "
              "failing task | crew/raw |")
        print("|---|---:|---:|---:|---:|")
        for workload, n, (raw, crew) in sorted(extra, key=lambda e: (e[0], e[1])):
            print(f"| {workload} | {n} | {fmt_ns(raw)} | {fmt_ns(crew)} | {crew / raw:.2f} |")
        print()

    if single:
        print("| benchmark | ns/iteration | IQR |")
        print("|---|---:|---:|")
        for name, workload, per in sorted(single, key=lambda s: s[1]):
            reals = [x[0] for x in per.values()]
            q = quartiles(reals)
            print(f"| {workload} | {fmt_ns(statistics.median(reals))} | "
                  f"{f'{fmt_ns(q[0])}–{fmt_ns(q[1])}' if q else '-'} |")
        print()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="Other --benchmark_* flags are passed to the binaries.")
    p.add_argument("inputs", nargs="+", help="benchmark binaries to run, or JSON files to read")
    p.add_argument("--rounds", type=int, default=7,
                   help="passes over every benchmark, crew first in every other one "
                        "(default 7); 0: one run with --repetitions")
    p.add_argument("--same-process", action="store_true",
                   help="run each round in one process instead of one process per benchmark")
    p.add_argument("--repetitions", type=int, default=5,
                   help="with --rounds 0: --benchmark_repetitions (default 5)")
    p.add_argument("--min-time", type=float, default=None,
                   help="--benchmark_min_time in seconds (default 0.1 with rounds, "
                        "0.2 with repetitions)")
    p.add_argument("--warmup", type=float, default=0.1,
                   help="--benchmark_min_warmup_time in seconds (default 0.1): the first "
                        "bursts of a process grow the heap and run up to 2x slower")
    p.add_argument("--filter", help="--benchmark_filter regex")
    p.add_argument("--save", help="write the JSON of the run to this file")
    args, args.extra = p.parse_known_args()
    if args.min_time is None:
        args.min_time = 0.1 if args.rounds > 0 else 0.2
    for path in args.inputs:
        report(load(path, args), os.path.basename(path))


if __name__ == "__main__":
    main()
