// kiln-go-bench measures the Go binding against the goals, on a GPU, and prints a table:
// launch from Go against kiln's C++ launch and the raw driver call in the same process (built with
// -tags kilnpeers and libkiln_go_peers.so), 8 goroutines against 8 C++ threads, a memory-tier
// compile hit, a pinned alloc+free, and what a cgo call costs by itself. It exits 1 when a goal is
// missed, 2 when it cannot run, 3 when the peers were not built in (ratios not measured).
//
//	kiln-go-bench [-quick] [-device N]
package main

/*
static void kiln_go_bench_noop(void) {}
*/
import "C"

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	kiln "github.com/kiln-gpu/kiln/bindings/go"
)

// peers are the C++ figures (peers.go), or nil without -tags kilnpeers.
type peers interface {
	launchLoopRaw(device, n int) (time.Duration, error)
	launchLoopCore(device, n int) (time.Duration, error)
	launchThreadsCore(device, threads, nEach int) (time.Duration, error)
}

const emptySource = `extern "C" __global__ void empty() {}`

func main() {
	quick := flag.Bool("quick", false, "fewer launches and repetitions")
	device := flag.Int("device", 0, "the CUDA device")
	flag.Parse()
	b, err := newBench(*device, *quick)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-go-bench:", err)
		os.Exit(2)
	}
	defer b.close()
	os.Exit(b.run(newPeers()))
}

type bench struct {
	device             int
	launches, reps     int
	cache              *kiln.Cache
	module             *kiln.Module
	empty              *kiln.Kernel
	missed, unmeasured bool
}

func newBench(device int, quick bool) (*bench, error) {
	b := &bench{device: device, launches: 100_000, reps: 7}
	if quick {
		b.launches, b.reps = 20_000, 3
	}
	var err error
	if b.cache, err = kiln.NewCache(kiln.CacheOptions{DisableDisk: true}); err != nil {
		return nil, err
	}
	t, err := kiln.TargetForDevice(device)
	if err != nil {
		return nil, err
	}
	img, err := b.cache.Compile(context.Background(), kiln.Program{Name: "empty.cu", Source: emptySource}, t)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if b.module, err = kiln.LoadModule(img, device); err != nil {
		return nil, err
	}
	if b.empty, err = b.module.Kernel("empty"); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bench) close() {
	b.empty.Close()
	b.module.Close()
	b.cache.Close()
}

func median(v []time.Duration) time.Duration {
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kiln-go-bench:", err)
		os.Exit(2)
	}
}

// goal prints one row and remembers a miss.
func (b *bench) goal(what string, value float64, unit string, limit float64, atMost bool) {
	ok := value <= limit
	bound := "<="
	if !atMost {
		ok, bound = value >= limit, ">="
	}
	verdict := "ok"
	if !ok {
		verdict, b.missed = "MISSED", true
	}
	fmt.Printf("%-58s %10.3f %-8s goal %s %-6g %s\n", what, value, unit, bound, limit, verdict)
}

func (b *bench) notMeasured(what string) {
	b.unmeasured = true
	fmt.Printf("%-58s %10s          (build with -tags kilnpeers and libkiln_go_peers.so)\n", what, "n/a")
}

// goLaunchLoop is n launches of the empty kernel from Go, then a synchronize.
func (b *bench) goLaunchLoop(s *kiln.Stream, n int) time.Duration {
	cfg := kiln.Cover(1, 1)
	t := time.Now()
	for i := 0; i < n; i++ {
		must(b.empty.Launch(s, cfg))
	}
	must(s.Synchronize())
	return time.Since(t)
}

func (b *bench) goGoroutines(goroutines, nEach int) time.Duration {
	streams := make([]*kiln.Stream, goroutines)
	for i := range streams {
		s, err := kiln.NewStream(b.device)
		must(err)
		streams[i] = s
		defer s.Close()
	}
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(goroutines)
	done.Add(goroutines)
	for _, s := range streams {
		go func(s *kiln.Stream) {
			defer done.Done()
			cfg := kiln.Cover(1, 1)
			ready.Done()
			<-start
			for i := 0; i < nEach; i++ {
				must(b.empty.Launch(s, cfg))
			}
			must(s.Synchronize())
		}(s)
	}
	ready.Wait()
	t := time.Now()
	close(start)
	done.Wait()
	return time.Since(t)
}

func perOp(d time.Duration, n int) float64 { return float64(d.Nanoseconds()) / float64(n) / 1000 } // µs

func (b *bench) run(p peers) int {
	d, err := kiln.DeviceInfo(b.device)
	must(err)
	fmt.Printf("kiln %s, Go binding, device %d: %s\n\n", kiln.Version(), b.device, d.Name)
	s, err := kiln.NewStream(b.device)
	must(err)
	defer s.Close()

	// 1. 100k asynchronous launches of an empty kernel, interleaved with the peers, medians.
	b.goLaunchLoop(s, b.launches/10) // warm up
	var goT, rawT, coreT []time.Duration
	for r := 0; r < b.reps; r++ {
		goT = append(goT, b.goLaunchLoop(s, b.launches))
		if p != nil {
			raw, err := p.launchLoopRaw(b.device, b.launches)
			must(err)
			core, err := p.launchLoopCore(b.device, b.launches)
			must(err)
			rawT, coreT = append(rawT, raw), append(coreT, core)
		}
	}
	goLaunch := perOp(median(goT), b.launches)
	fmt.Printf("%-58s %10.3f us\n", "empty kernel, async launch from Go (per launch)", goLaunch)
	if p != nil {
		core, raw := perOp(median(coreT), b.launches), perOp(median(rawT), b.launches)
		fmt.Printf("%-58s %10.3f us\n", "  kiln C++ core::launch (per launch)", core)
		fmt.Printf("%-58s %10.3f us\n", "  raw cuLaunchKernel (per launch)", raw)
		b.goal("  Go / C++ core::launch", goLaunch/core, "x", 1.10, true)
		b.goal("  Go / raw driver call", goLaunch/raw, "x", 1.15, true)
	} else {
		b.notMeasured("  Go / C++ core::launch")
		b.notMeasured("  Go / raw driver call")
	}

	// 2. 8 goroutines against 8 C++ threads, each on its own stream: launches per second.
	const workers = 8
	nEach := b.launches / 2
	var goRate, cppRate []time.Duration
	for r := 0; r < max(1, b.reps/2); r++ {
		goRate = append(goRate, b.goGoroutines(workers, nEach))
		if p != nil {
			t, err := p.launchThreadsCore(b.device, workers, nEach)
			must(err)
			cppRate = append(cppRate, t)
		}
	}
	rate := func(d time.Duration) float64 { return float64(workers*nEach) / d.Seconds() }
	goPerSecond := rate(median(goRate))
	fmt.Printf("%-58s %10.0f launch/s\n", "8 goroutines x own stream", goPerSecond)
	if p != nil {
		cppPerSecond := rate(median(cppRate))
		fmt.Printf("%-58s %10.0f launch/s\n", "  8 C++ threads x own stream", cppPerSecond)
		b.goal("  8 goroutines / 8 threads", goPerSecond/cppPerSecond, "x", 0.95, false)
	} else {
		b.notMeasured("  8 goroutines / 8 threads")
	}

	// 3. A compile the memory tier answers.
	t, err := kiln.TargetForDevice(b.device)
	must(err)
	prog := kiln.Program{Name: "empty.cu", Source: emptySource}
	const compiles = 20_000
	var hits []time.Duration
	for r := 0; r < b.reps; r++ {
		start := time.Now()
		for i := 0; i < compiles; i++ {
			img, err := b.cache.Compile(context.Background(), prog, t)
			must(err)
			img.Close()
		}
		hits = append(hits, time.Since(start))
	}
	b.goal("memory-tier compile hit from Go", perOp(median(hits), compiles), "us", 2, true)

	// 4. A pinned block from the pool and back.
	pool, err := kiln.NewPinnedPool(b.device, kiln.HostPinned, 64<<20)
	must(err)
	defer pool.Close()
	const blocks = 200_000
	var pins []time.Duration
	for r := 0; r < b.reps; r++ {
		start := time.Now()
		for i := 0; i < blocks; i++ {
			blk, err := pool.Alloc(64<<10, "bench")
			must(err)
			blk.Close()
		}
		pins = append(pins, time.Since(start))
	}
	b.goal("pinned pool alloc+free from Go", perOp(median(pins), blocks), "us", 0.5, true)

	// 5. What cgo costs by itself.
	const calls = 1_000_000
	start := time.Now()
	for i := 0; i < calls; i++ {
		C.kiln_go_bench_noop()
	}
	fmt.Printf("%-58s %10.1f ns\n", "cgo call of an empty C function", float64(time.Since(start).Nanoseconds())/calls)

	switch {
	case b.missed:
		fmt.Println("\nsome goals were missed")
		return 1
	case b.unmeasured:
		fmt.Println("\nthe ratios were not measured: build with -tags kilnpeers")
		return 3
	}
	fmt.Println("\nall goals met")
	return 0
}
