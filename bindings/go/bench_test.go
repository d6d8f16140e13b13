package kiln

import (
	"context"
	"sync"
	"testing"
)

// What one cgo call costs by itself: the floor under every figure below.
func BenchmarkCgoCall(b *testing.B) {
	for i := 0; i < b.N; i++ {
		cgoNoop()
	}
}

// A compile the memory tier answers (the goal: <= 2 us). PTX, so it runs without a GPU.
func BenchmarkCompileMemoryHit(b *testing.B) {
	c, err := NewCache(CacheOptions{DisableDisk: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	p := Program{Name: "saxpy.cu", Source: saxpySource}
	img, err := c.Compile(ctx, p, Target{PTX, 90})
	if err != nil {
		b.Fatal(err)
	}
	img.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		img, err := c.Compile(ctx, p, Target{PTX, 90})
		if err != nil {
			b.Fatal(err)
		}
		img.Close()
	}
}

// A pinned block taken from the pool and given back (the goal: <= 0.5 us). Plain memory without a
// GPU, pinned with one.
func BenchmarkPinnedAllocFree(b *testing.B) {
	memory := HostPlain
	if hasGPU() {
		memory = HostPinned
	}
	pool, err := NewPinnedPool(0, memory, 64<<20)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	warm, err := pool.Alloc(64<<10, "warm")
	if err != nil {
		b.Fatal(err)
	}
	warm.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		blk, err := pool.Alloc(64<<10, "bench")
		if err != nil {
			b.Fatal(err)
		}
		blk.Close()
	}
}

// Asynchronous launches of an empty kernel, synchronized at the end (as bench_core measures the
// C++ launch).
func BenchmarkLaunchEmpty(b *testing.B) {
	k := gpuKernel(b, emptySource, "empty")
	s := gpuStream(b)
	cfg := Cover(1, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := k.Launch(s, cfg); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Synchronize(); err != nil {
		b.Fatal(err)
	}
}

// A launch with arguments through ...any and through a reused Args.
func BenchmarkLaunchSaxpyArguments(b *testing.B) {
	k := gpuKernel(b, saxpySource, "saxpy")
	s := gpuStream(b)
	x, y := gpuBuffer(b, s, 4*256, "x"), gpuBuffer(b, s, 4*256, "y")
	cfg := Cover(256, 256)
	b.Run("any", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if err := k.Launch(s, cfg, float32(2), x, y, int32(256)); err != nil {
				b.Fatal(err)
			}
		}
		s.Synchronize()
	})
	b.Run("args", func(b *testing.B) {
		var a Args
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			a.Reset()
			if err := k.LaunchArgs(s, cfg, a.Float32(2).Buffer(x).Buffer(y).Int32(256)); err != nil {
				b.Fatal(err)
			}
		}
		s.Synchronize()
	})
}

// 8 goroutines, each on its own stream, launching at once: ns per launch of the aggregate.
func BenchmarkLaunchEmpty8Goroutines(b *testing.B) {
	k := gpuKernel(b, emptySource, "empty")
	const goroutines = 8
	streams := make([]*Stream, goroutines)
	for i := range streams {
		streams[i] = gpuStream(b)
	}
	cfg := Cover(1, 1)
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(s *Stream) {
			defer wg.Done()
			for i := 0; i < b.N/goroutines; i++ {
				if err := k.Launch(s, cfg); err != nil {
					b.Error(err)
					return
				}
			}
			s.Synchronize()
		}(streams[g])
	}
	wg.Wait()
}
