#!/usr/bin/env python3
"""crew — peer benchmark: Python 3.11 asyncio.TaskGroup, one process per measurement,
printed as one JSON object in bench_workloads' shape.

    taskgroup_bench.py WORKLOAD N THREADS [--warm R]

WORKLOAD: noop | yield | fail10 | limit64 | cancel | rss. asyncio runs on one thread,
so THREADS must be 1. Without --warm, one cold burst. With --warm R (not for rss): one
warm-up burst, then R bursts of the same size in this process and event loop;
ns_per_task and cpu_ns_per_task are the medians of the R, rounds_ns and rounds_cpu_ns
every one. CPU time is user + system time of the process over the burst (getrusage),
divided by N.
"""
import asyncio
import json
import resource
import statistics
import sys
import time


def cpu_ns():
    """User + system time of every thread of the process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return round((r.ru_utime + r.ru_stime) * 1e9)


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def noop(i):
    pass


async def yield_once(i):
    await asyncio.sleep(0)


failures = []


async def fail10(i):
    # Every failure is kept, as crew and the other peers keep theirs; a TaskGroup
    # would cancel its other tasks at the first exception.
    try:
        if i % 10 == 0:
            raise RuntimeError("task failed")
    except RuntimeError as e:
        failures.append(e)


async def burst(n, task, limit=None):
    if limit:
        sem = asyncio.Semaphore(limit)

        async def limited(i):
            async with sem:
                await task(i)

        async with asyncio.TaskGroup() as tg:
            for i in range(n):
                await sem.acquire()  # back-pressure: at most `limit` tasks exist
                sem.release()
                tg.create_task(limited(i))
    else:
        async with asyncio.TaskGroup() as tg:
            for i in range(n):
                tg.create_task(task(i))


async def parked(n):
    started = 0

    async def park():
        nonlocal started
        started += 1
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(park()) for _ in range(n)]
    while started < n:
        await asyncio.sleep(0)
    return tasks


async def cancel_all(tasks):
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def timed(coro):
    """(wall ns, CPU ns) of awaiting coro."""
    cpu, start = cpu_ns(), time.perf_counter_ns()
    await coro
    return time.perf_counter_ns() - start, cpu_ns() - cpu


async def measure(workload, n):
    """One burst: (wall ns, CPU ns, resident bytes per parked task or -1)."""
    bytes_per_task = -1
    if workload == "noop":
        elapsed = await timed(burst(n, noop))
    elif workload == "yield":
        elapsed = await timed(burst(n, yield_once))
    elif workload == "fail10":
        failures.clear()
        elapsed = await timed(burst(n, fail10))
    elif workload == "limit64":
        elapsed = await timed(burst(n, noop, 64))
    elif workload == "cancel":
        elapsed = await timed(cancel_all(await parked(n)))
    elif workload == "rss":
        before = rss_bytes()
        tasks = await parked(n)
        bytes_per_task = (rss_bytes() - before) // n
        elapsed = await timed(cancel_all(tasks))
    else:
        raise SystemExit(f"taskgroup_bench: unknown workload {workload!r}")
    return (*elapsed, bytes_per_task)


async def main(workload, n, warm):
    """Per-task ns of every reported burst, wall and CPU, and the bytes per task. The
    first burst of a warm run warms up and is not reported."""
    wall, cpu = [], []
    for b in range(warm + 1 if warm else 1):
        elapsed, cpu_elapsed, bytes_per_task = await measure(workload, n)
        if warm and b == 0:
            continue
        wall.append(round(elapsed / n, 1))
        cpu.append(round(cpu_elapsed / n, 1))
    return wall, cpu, bytes_per_task


if __name__ == "__main__":
    usage = "usage: taskgroup_bench.py WORKLOAD N 1 [--warm R]"
    args = sys.argv[1:]
    warm = 0
    if len(args) == 5 and args[3] == "--warm":
        if not args[4].isdigit() or int(args[4]) <= 0:
            raise SystemExit(usage)
        warm = int(args.pop())
        args.pop()
    if len(args) != 3 or not args[1].isdigit() or int(args[1]) <= 0 or args[2] != "1":
        raise SystemExit(usage)
    workload, n = args[0], int(args[1])
    if warm and workload == "rss":
        raise SystemExit("taskgroup_bench: --warm does not apply to rss")
    wall, cpu, bytes_per_task = asyncio.run(main(workload, n, warm))
    out = {"impl": "python", "workload": workload, "n": n, "threads": 1,
           "executor": "asyncio", "warm": warm,
           "ns_per_task": round(statistics.median(wall), 1),
           "cpu_ns_per_task": round(statistics.median(cpu), 1),
           "bytes_per_task": bytes_per_task}
    if warm:
        out.update(rounds_ns=wall, rounds_cpu_ns=cpu)
    print(json.dumps(out))
