#!/usr/bin/env python3
"""crew — peer benchmark: Python 3.11 asyncio.TaskGroup, one measurement per process,
printed as one JSON object.

    taskgroup_bench.py WORKLOAD N THREADS

WORKLOAD: noop | yield | fail10 | limit64 | cancel | rss. asyncio runs on one thread,
so THREADS must be 1.
"""
import asyncio
import json
import sys
import time


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
    start = time.perf_counter_ns()
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
    return time.perf_counter_ns() - start


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
    start = time.perf_counter_ns()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return time.perf_counter_ns() - start


async def main(workload, n):
    bytes_per_task = -1
    if workload == "noop":
        elapsed = await burst(n, noop)
    elif workload == "yield":
        elapsed = await burst(n, yield_once)
    elif workload == "fail10":
        elapsed = await burst(n, fail10)
    elif workload == "limit64":
        elapsed = await burst(n, noop, 64)
    elif workload == "cancel":
        elapsed = await cancel_all(await parked(n))
    elif workload == "rss":
        before = rss_bytes()
        tasks = await parked(n)
        bytes_per_task = (rss_bytes() - before) // n
        elapsed = await cancel_all(tasks)
    else:
        raise SystemExit(f"taskgroup_bench: unknown workload {workload!r}")
    return elapsed, bytes_per_task


if __name__ == "__main__":
    if len(sys.argv) != 4 or int(sys.argv[2]) <= 0 or sys.argv[3] != "1":
        raise SystemExit("usage: taskgroup_bench.py WORKLOAD N 1")
    workload, n = sys.argv[1], int(sys.argv[2])
    elapsed, bytes_per_task = asyncio.run(main(workload, n))
    print(json.dumps({"impl": "python", "workload": workload, "n": n, "threads": 1,
                      "ns_per_task": round(elapsed / n, 1), "bytes_per_task": bytes_per_task}))
