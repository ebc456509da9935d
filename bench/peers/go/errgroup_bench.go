// crew — peer benchmark: Go 1.19 errgroup (golang.org/x/sync), one process per
// measurement, printed as one JSON object in bench_workloads' shape.
//
//	errgroup_bench WORKLOAD N THREADS [--warm R]
//
// WORKLOAD: noop | yield | fail10 | limit64 | cancel | rss. THREADS sets GOMAXPROCS.
// Without --warm, one cold burst. With --warm R (not for rss): one warm-up burst, then
// R bursts of the same size in this process; ns_per_task and cpu_ns_per_task are the
// medians of the R, rounds_ns and rounds_cpu_ns every one. CPU time is user + system
// time of every thread of the process over the burst (getrusage), divided by N.
// Built by bench/run in GOPATH mode against Debian's golang-golang-x-sync-dev.
package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

var errTask = errors.New("task failed")

// recovered runs f, turning a panic into an error: errgroup does not recover panics.
func recovered(f func() error) func() error {
	return func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return f()
	}
}

// cpuTime is the user + system time of every thread of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
}

// sample is one timed burst: wall time and CPU time of the process.
type sample struct{ wall, cpu time.Duration }

// timed runs f between two readings of both clocks. f may return a shorter wall time
// of its own (cancel and rss time only the cancellation, not the parking).
func timed(f func()) sample {
	cpu := cpuTime()
	start := time.Now()
	f()
	return sample{time.Since(start), cpuTime() - cpu}
}

func burst(n int, task func(i int) error, limit int) {
	var g errgroup.Group
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i := 0; i < n; i++ {
		i := i
		g.Go(recovered(func() error { return task(i) }))
	}
	g.Wait()
}

func rssBytes() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmRSS:") {
			fields := strings.Fields(s.Text())
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	panic("no VmRSS")
}

// parked starts n goroutines that each wait on a one-hour timer or the context, and
// returns once all of them are parked.
func parked(n int) (context.CancelFunc, *errgroup.Group) {
	ctx, cancel := context.WithCancel(context.Background())
	g, ctx := errgroup.WithContext(ctx)
	var started atomic.Int64
	for i := 0; i < n; i++ {
		g.Go(func() error {
			t := time.NewTimer(time.Hour)
			defer t.Stop()
			started.Add(1)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			return nil
		})
	}
	for started.Load() < int64(n) {
		runtime.Gosched()
	}
	return cancel, g
}

// measure runs one burst of the workload and returns its times, and for rss the
// resident bytes per parked task.
func measure(workload string, n int) (sample, int64, bool) {
	var bytes int64 = -1
	var s sample
	switch workload {
	case "noop":
		s = timed(func() { burst(n, func(int) error { return nil }, 0) })
	case "yield":
		s = timed(func() { burst(n, func(int) error { runtime.Gosched(); return nil }, 0) })
	case "fail10":
		s = timed(func() {
			burst(n, func(i int) error {
				if i%10 == 0 {
					panic(errTask)
				}
				return nil
			}, 0)
		})
	case "limit64":
		s = timed(func() { burst(n, func(int) error { return nil }, 64) })
	case "cancel":
		cancel, g := parked(n)
		s = timed(func() {
			cancel()
			g.Wait()
		})
	case "rss":
		runtime.GC()
		before := rssBytes()
		cancel, g := parked(n)
		bytes = (rssBytes() - before) / int64(n)
		s = timed(func() {
			cancel()
			g.Wait()
		})
	default:
		return s, bytes, false
	}
	return s, bytes, true
}

func median(xs []float64) float64 {
	ys := append([]float64(nil), xs...)
	sort.Float64s(ys)
	m := len(ys) / 2
	if len(ys)%2 == 1 {
		return ys[m]
	}
	return (ys[m-1] + ys[m]) / 2
}

func jsonList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: errgroup_bench WORKLOAD N THREADS [--warm R]")
	os.Exit(2)
}

func main() {
	if len(os.Args) != 4 && !(len(os.Args) == 6 && os.Args[4] == "--warm") {
		usage()
	}
	workload := os.Args[1]
	n, err1 := strconv.Atoi(os.Args[2])
	threads, err2 := strconv.Atoi(os.Args[3])
	warm := 0
	var err3 error
	if len(os.Args) == 6 {
		warm, err3 = strconv.Atoi(os.Args[5])
		if err3 == nil && warm <= 0 {
			err3 = errors.New("R must be positive")
		}
	}
	if err1 != nil || err2 != nil || err3 != nil || n <= 0 || threads <= 0 {
		fmt.Fprintln(os.Stderr, "errgroup_bench: bad arguments")
		usage()
	}
	if warm > 0 && workload == "rss" {
		fmt.Fprintln(os.Stderr, "errgroup_bench: --warm does not apply to rss")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(threads)
	debug.SetTraceback("none")

	bursts := 1
	if warm > 0 {
		bursts = warm + 1 // the first one warms up and is not reported
	}
	var wall, cpu []float64
	var bytes int64
	for b := 0; b < bursts; b++ {
		s, by, ok := measure(workload, n)
		if !ok {
			fmt.Fprintf(os.Stderr, "errgroup_bench: unknown workload %q\n", workload)
			os.Exit(2)
		}
		bytes = by
		if warm > 0 && b == 0 {
			continue
		}
		wall = append(wall, float64(s.wall.Nanoseconds())/float64(n))
		cpu = append(cpu, float64(s.cpu.Nanoseconds())/float64(n))
	}
	fmt.Printf("{\"impl\": \"go\", \"workload\": %q, \"n\": %d, \"threads\": %d, \"executor\": \"go\", \"warm\": %d, \"ns_per_task\": %.1f, \"cpu_ns_per_task\": %.1f, \"bytes_per_task\": %d",
		workload, n, threads, warm, median(wall), median(cpu), bytes)
	if warm > 0 {
		fmt.Printf(", \"rounds_ns\": %s, \"rounds_cpu_ns\": %s", jsonList(wall), jsonList(cpu))
	}
	fmt.Println("}")
}
