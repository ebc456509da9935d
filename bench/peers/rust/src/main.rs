//! crew — peer benchmark: tokio 1.24 JoinSet, one measurement per process, printed as
//! one JSON object.
//!
//!     joinset_bench WORKLOAD N THREADS
//!
//! WORKLOAD: noop | yield | fail10 | limit64 | cancel | rss. THREADS 1 is the
//! current-thread runtime, more is the multi-thread runtime with that many workers.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

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

async fn burst(n: usize, workload: &str) -> Duration {
    let start = Instant::now();
    let mut set = JoinSet::new();
    let limit = if workload == "limit64" { Some(Arc::new(Semaphore::new(64))) } else { None };
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
    start.elapsed()
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

async fn cancel_all(mut set: JoinSet<()>) -> Duration {
    let start = Instant::now();
    set.abort_all();
    while set.join_next().await.is_some() {}
    start.elapsed()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: joinset_bench WORKLOAD N THREADS");
        std::process::exit(2);
    }
    let workload = args[1].clone();
    let n: usize = args[2].parse().expect("N");
    let threads: usize = args[3].parse().expect("THREADS");
    assert!(n > 0 && threads > 0);
    std::panic::set_hook(Box::new(|_| {})); // the fail10 panics are expected
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_time().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_time()
            .build()
    }
    .unwrap();
    let (elapsed, bytes) = runtime.block_on(async {
        match workload.as_str() {
            "noop" | "yield" | "fail10" | "limit64" => (burst(n, &workload).await, -1),
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
    });
    println!(
        "{{\"impl\": \"tokio\", \"workload\": \"{}\", \"n\": {}, \"threads\": {}, \"ns_per_task\": {:.1}, \"bytes_per_task\": {}}}",
        workload,
        n,
        threads,
        elapsed.as_nanos() as f64 / n as f64,
        bytes
    );
}
