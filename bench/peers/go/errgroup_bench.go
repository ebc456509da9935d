// crew — peer benchmark: Go 1.19 errgroup (golang.org/x/sync), one measurement per
// process, printed as one JSON object.
//
//	errgroup_bench WORKLOAD N THREADS
//
// WORKLOAD: noop | yield | fail10 | limit64 | cancel | rss. THREADS sets GOMAXPROCS.
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
	"strconv"
	"strings"
	"sync/atomic"
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

func burst(n int, task func(i int) error, limit int) time.Duration {
	start := time.Now()
	var g errgroup.Group
	if limit > 0 {
		g.SetLimit(limit)
	}
	for i := 0; i < n; i++ {
		i := i
		g.Go(recovered(func() error { return task(i) }))
	}
	g.Wait()
	return time.Since(start)
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

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: errgroup_bench WORKLOAD N THREADS")
		os.Exit(2)
	}
	workload := os.Args[1]
	n, err1 := strconv.Atoi(os.Args[2])
	threads, err2 := strconv.Atoi(os.Args[3])
	if err1 != nil || err2 != nil || n <= 0 || threads <= 0 {
		fmt.Fprintln(os.Stderr, "errgroup_bench: bad arguments")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(threads)
	debug.SetTraceback("none")

	var elapsed time.Duration
	var bytes int64 = -1
	switch workload {
	case "noop":
		elapsed = burst(n, func(int) error { return nil }, 0)
	case "yield":
		elapsed = burst(n, func(int) error { runtime.Gosched(); return nil }, 0)
	case "fail10":
		elapsed = burst(n, func(i int) error {
			if i%10 == 0 {
				panic(errTask)
			}
			return nil
		}, 0)
	case "limit64":
		elapsed = burst(n, func(int) error { return nil }, 64)
	case "cancel":
		cancel, g := parked(n)
		start := time.Now()
		cancel()
		g.Wait()
		elapsed = time.Since(start)
	case "rss":
		runtime.GC()
		before := rssBytes()
		cancel, g := parked(n)
		bytes = (rssBytes() - before) / int64(n)
		start := time.Now()
		cancel()
		g.Wait()
		elapsed = time.Since(start)
	default:
		fmt.Fprintf(os.Stderr, "errgroup_bench: unknown workload %q\n", workload)
		os.Exit(2)
	}
	fmt.Printf("{\"impl\": \"go\", \"workload\": %q, \"n\": %d, \"threads\": %d, \"ns_per_task\": %.1f, \"bytes_per_task\": %d}\n",
		workload, n, threads, float64(elapsed.Nanoseconds())/float64(n), bytes)
}
