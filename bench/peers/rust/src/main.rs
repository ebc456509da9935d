//! crew — peer benchmark: tokio 1.24 JoinSet, one process per measurement, printed as
//! one JSON object in bench_workloads' shape.
//!
//!     joinset_bench WORKLOAD N THREADS [--warm R]
//!
//! WORKLOAD: noop | yield | fail10 | limit64 | cancel | rss. THREADS 1 is the
//! current-thread runtime, more is the multi-thread runtime with that many workers
//! (the spawner is a task on one of them). Without --warm, one cold burst.
//! With --warm R (not for rss): one warm-up burst, then R bursts of the same size in
//! this process and runtime; ns_per_task and cpu_ns_per_task are the medians of the R,
//! rounds_ns and rounds_cpu_ns every one. CPU time is user + system time of every
//! thread of the process over the burst (getrusage), divided by N.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// User + system time of every thread of the process so far.
fn cpu_time() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One timed burst: wall time and CPU time of the process.
struct Sample {
    wall: Duration,
    cpu: Duration,
}

fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            let kb: i64 = rest.split_whitespace().next().unwrap().parse().unwrap();
            return kb * 1024;
        }
    }
    panic!("no VmRSS");
}

async fn burst(n: usize, workload: &str) -> Sample {
    let cpu = cpu_time();
    let start = Instant::now();
    let mut set = JoinSet::new();
    let limit = if workload == "limit64" {
        Some(Arc::new(Semaphore::new(64)))
    } else {
        None
    };
    for i in 0..n {
        let permit = match &limit {
            Some(s) => Some(s.clone().acquire_owned().await.unwrap()),
            None => None,
        };
        match workload {
            "noop" | "limit64" => set.spawn(async move {
                drop(permit);
            }),
            "yield" => set.spawn(async move {
                tokio::task::yield_now().await;
            }),
            "fail10" => set.spawn(async move {
                if i % 10 == 0 {
                    panic!("task failed");
                }
            }),
            _ => unreachable!(),
        };
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Err(e) = r {
            failures.push(e); // every failure is kept
        }
    }
    Sample {
        wall: start.elapsed(),
        cpu: cpu_time() - cpu,
    }
}

/// n tasks each waiting on a one-hour sleep; returns once all of them are parked.
async fn parked(n: usize) -> JoinSet<()> {
    let started = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..n {
        let started = started.clone();
        set.spawn(async move {
            started.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
    }
    while started.load(Ordering::Relaxed) < n {
        tokio::task::yield_now().await;
    }
    set
}

async fn cancel_all(mut set: JoinSet<()>) -> Sample {
    let cpu = cpu_time();
    let start = Instant::now();
    set.abort_all();
    while set.join_next().await.is_some() {}
    Sample {
        wall: start.elapsed(),
        cpu: cpu_time() - cpu,
    }
}

/// One burst of the workload: its times, and for rss the resident bytes per parked task.
async fn measure(workload: &str, n: usize) -> (Sample, i64) {
    match workload {
        "noop" | "yield" | "fail10" | "limit64" => (burst(n, workload).await, -1),
        "cancel" => (cancel_all(parked(n).await).await, -1),
        "rss" => {
            let before = rss_bytes();
            let set = parked(n).await;
            let bytes = (rss_bytes() - before) / n as i64;
            (cancel_all(set).await, bytes)
        }
        other => {
            eprintln!("joinset_bench: unknown workload {other:?}");
            std::process::exit(2);
        }
    }
}

fn median(xs: &[f64]) -> f64 {
    let mut ys = xs.to_vec();
    ys.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = ys.len() / 2;
    if ys.len() % 2 == 1 {
        ys[m]
    } else {
        (ys[m - 1] + ys[m]) / 2.0
    }
}

fn json_list(xs: &[f64]) -> String {
    let parts: Vec<String> = xs.iter().map(|x| format!("{x:.1}")).collect();
    format!("[{}]", parts.join(", "))
}

fn usage() -> ! {
    eprintln!("usage: joinset_bench WORKLOAD N THREADS [--warm R]");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 && !(args.len() == 6 && args[4] == "--warm") {
        usage();
    }
    let workload = args[1].clone();
    let (n, threads, warm) = match (
        args[2].parse::<usize>(),
        args[3].parse::<usize>(),
        args.get(5).map_or(Ok(0), |r| r.parse::<usize>()),
    ) {
        (Ok(n), Ok(t), Ok(w)) if n > 0 && t > 0 && (args.len() == 4 || w > 0) => (n, t, w),
        _ => {
            eprintln!("joinset_bench: bad arguments");
            usage();
        }
    };
    if warm > 0 && workload == "rss" {
        eprintln!("joinset_bench: --warm does not apply to rss");
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|_| {})); // the fail10 panics are expected
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_time()
            .build()
    }
    .unwrap();
    // The first burst of a warm run warms up and is not reported.
    let bursts = if warm > 0 { warm + 1 } else { 1 };
    let driver_workload = workload.clone();
    let driver = async move {
        let (mut wall, mut cpu, mut bytes) = (Vec::new(), Vec::new(), -1);
        for b in 0..bursts {
            let (s, by) = measure(&driver_workload, n).await;
            bytes = by;
            if warm > 0 && b == 0 {
                continue;
            }
            wall.push(s.wall.as_nanos() as f64 / n as f64);
            cpu.push(s.cpu.as_nanos() as f64 / n as f64);
        }
        (wall, cpu, bytes)
    };
    // With THREADS workers the driver is a task, so the spawner runs on one of them, as
    // Go's main goroutine and crew's driver do (block_on's own future would run on the
    // main thread, one thread more). The current-thread runtime runs block_on's future
    // on its one thread.
    let (wall, cpu, bytes) = if threads == 1 {
        runtime.block_on(driver)
    } else {
        runtime.block_on(runtime.spawn(driver)).unwrap()
    };
    let rounds = if warm > 0 {
        format!(
            ", \"rounds_ns\": {}, \"rounds_cpu_ns\": {}",
            json_list(&wall),
            json_list(&cpu)
        )
    } else {
        String::new()
    };
    println!(
        "{{\"impl\": \"tokio\", \"workload\": \"{}\", \"n\": {}, \"threads\": {}, \"executor\": \"tokio\", \"warm\": {}, \"ns_per_task\": {:.1}, \"cpu_ns_per_task\": {:.1}, \"bytes_per_task\": {}{}}}",
        workload,
        n,
        threads,
        warm,
        median(&wall),
        median(&cpu),
        bytes,
        rounds
    );
}
