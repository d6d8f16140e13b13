package kiln

// Tests that need a GPU: each skips without one, saying why (KILN_REQUIRE_GPU=1 makes them fail).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// gpuKernel compiles source for device 0, loads it and finds the kernel; everything is closed
// when the test ends.
func gpuKernel(t testing.TB, source, name string) *Kernel {
	t.Helper()
	requireGPU(t)
	img, err := Compile(testContext(t), Program{Name: name + ".cu", Source: source})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	m, err := LoadModule(img, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	k, err := m.Kernel(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func gpuStream(t testing.TB) *Stream {
	t.Helper()
	s, err := NewStream(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func gpuBuffer(t testing.TB, s *Stream, bytes int, tag string) *Buffer {
	t.Helper()
	b, err := NewBuffer(s, bytes, tag)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestGPUSaxpyEndToEnd(t *testing.T) {
	leaks := LeaksReported()
	saxpy := gpuKernel(t, saxpySource, "saxpy")
	if p, err := saxpy.Params(); err != nil || fmt.Sprint(p) != "[4 8 8 4]" {
		t.Fatalf("params %v, %v", p, err)
	}
	s := gpuStream(t)
	const n = 100_000
	hostX, hostY := make([]float32, n), make([]float32, n)
	for i := range hostX {
		hostX[i], hostY[i] = float32(i), 1
	}
	x, y := gpuBuffer(t, s, n*4, "x"), gpuBuffer(t, s, n*4, "y")
	if err := CopyToDevice(s, x.Ptr(), hostX); err != nil {
		t.Fatal(err)
	}
	if err := CopyToDevice(s, y.Ptr(), hostY); err != nil {
		t.Fatal(err)
	}
	if err := saxpy.Launch(s, Cover(n, 256), float32(2), x, y, int32(n)); err != nil {
		t.Fatal(err)
	}
	// The same launch through a prepared argument list.
	var a Args
	a.Float32(2).Buffer(x).Ptr(y.Ptr()).Int32(n)
	if err := saxpy.LaunchArgs(s, Cover(n, 256), &a); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(testContext(t)); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, n)
	if err := CopyToHost(s, out, y.Ptr()); err != nil {
		t.Fatal(err)
	}
	for i, v := range out {
		if want := 4*float32(i) + 1; v != want {
			t.Fatalf("y[%d] = %v, want %v", i, v, want)
		}
	}
	if got := LeaksReported(); got != leaks {
		t.Fatalf("%d leaks reported", got-leaks)
	}
}

func TestGPUWrongArgumentsAreRefusedBeforeLaunch(t *testing.T) {
	saxpy := gpuKernel(t, saxpySource, "saxpy")
	s := gpuStream(t)
	y := gpuBuffer(t, s, 4*256, "y")
	if err := Memset(s, y.Ptr(), 0, 4*256); err != nil {
		t.Fatal(err)
	}
	err := saxpy.Launch(s, Cover(256, 256), float32(2), y, y)
	wantError(t, err, ErrInvalidArgument, "takes 4 parameters, the launch passed 3", "Nothing was launched")
	err = saxpy.Launch(s, Cover(256, 256), float64(2), y, y, int32(256))
	wantError(t, err, ErrInvalidArgument, "argument 0 is 8 bytes, the parameter is 4 bytes")
	y.Close()
	err = saxpy.Launch(s, Cover(256, 256), float32(2), y, y, int32(256))
	wantError(t, err, ErrInvalidHandle, "argument 1")
	if err := s.Synchronize(); err != nil {
		t.Fatal("a refused launch reached the GPU:", err)
	}
}

func TestGPUBufferOfAnotherDevice(t *testing.T) {
	requireGPU(t)
	if n, _ := DeviceCount(); n < 2 {
		t.Skip("needs 2 GPUs (the check itself is TestBufferOfAnotherDeviceIsRefused)")
	}
	saxpy := gpuKernel(t, saxpySource, "saxpy")
	s0 := gpuStream(t)
	s1, err := NewStream(1)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	x := gpuBuffer(t, s0, 1024, "x")
	y := gpuBuffer(t, s1, 1024, "y on device 1")
	err = saxpy.Launch(s0, Cover(256, 256), float32(2), x, y, int32(256))
	wantError(t, err, ErrInvalidArgument, "argument 2", "device 1", "device 0")
}

// 64 goroutines launch on one GPU at once, on streams they share by eight.
func TestGPU64GoroutinesLaunch(t *testing.T) {
	add := gpuKernel(t, addOneSource, "add_one")
	const goroutines, launches, n = 64, 200, 256
	streams := make([]*Stream, 8)
	for i := range streams {
		streams[i] = gpuStream(t)
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			s := streams[g%len(streams)]
			b, err := NewBuffer(s, 4*n, fmt.Sprintf("goroutine %d", g))
			if err != nil {
				errs <- err
				return
			}
			defer b.Close()
			if err := Memset(s, b.Ptr(), 0, 4*n); err != nil {
				errs <- err
				return
			}
			var a Args
			for i := 0; i < launches; i++ {
				if g%2 == 0 {
					err = add.Launch(s, Cover(n, 128), b, int32(n))
				} else {
					a.Reset()
					err = add.LaunchArgs(s, Cover(n, 128), a.Buffer(b).Int32(n))
				}
				if err != nil {
					errs <- err
					return
				}
			}
			out := make([]int32, n)
			if err := CopyToHost(s, out, b.Ptr()); err != nil {
				errs <- err
				return
			}
			for i, v := range out {
				if v != launches {
					errs <- fmt.Errorf("goroutine %d: v[%d] = %d, want %d", g, i, v, launches)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

const spinNanoseconds = uint64(200 * time.Millisecond)

func TestGPUDeadlineOnALongKernel(t *testing.T) {
	spin := gpuKernel(t, spinSource, "spin")
	s := gpuStream(t)
	if err := spin.Launch(s, Cover(1, 1), spinNanoseconds); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	err := s.Wait(ctx)
	e := wantError(t, err, ErrTimeout)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v does not unwrap to context.DeadlineExceeded", err)
	}
	if !strings.Contains(e.Message, "still running") {
		t.Errorf("the message does not name the work still running: %s", e.Message)
	}
	if err := s.Synchronize(); err != nil {
		t.Fatal(err)
	}

	// A cancellation while the kernel runs.
	if err := spin.Launch(s, Cover(1, 1), spinNanoseconds); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	err = s.Wait(ctx)
	wantError(t, err, ErrCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v does not unwrap to context.Canceled", err)
	}
	if err := s.Synchronize(); err != nil {
		t.Fatal(err)
	}
}

func TestGPUEventsAndElapsed(t *testing.T) {
	spin := gpuKernel(t, spinSource, "spin")
	s := gpuStream(t)
	start, err := NewEvent(0, Timing)
	if err != nil {
		t.Fatal(err)
	}
	defer start.Close()
	end, err := NewEvent(0, Timing)
	if err != nil {
		t.Fatal(err)
	}
	defer end.Close()
	if err := start.Record(s); err != nil {
		t.Fatal(err)
	}
	if err := spin.Launch(s, Cover(1, 1), uint64(5*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := end.Record(s); err != nil {
		t.Fatal(err)
	}
	if err := end.Wait(testContext(t)); err != nil {
		t.Fatal(err)
	}
	d, err := Elapsed(start, end)
	if err != nil || d < 5*time.Millisecond {
		t.Fatalf("elapsed %v, %v: the kernel spins 5 ms of GPU time", d, err)
	}
	other := gpuStream(t)
	if err := other.WaitEvent(end); err != nil {
		t.Fatal(err)
	}
}

func TestGPUPinnedAsyncCopies(t *testing.T) {
	requireGPU(t)
	pool, err := NewPinnedPool(0, HostPinned, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	src, err := pool.Alloc(1<<20, "src")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := pool.Alloc(1<<20, "dst")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for i := range src.Bytes() {
		src.Bytes()[i] = byte(i * 7)
	}
	s := gpuStream(t)
	d := gpuBuffer(t, s, 1<<20, "device")
	if err := CopyToDeviceAsync(s, d.Ptr(), src); err != nil {
		t.Fatal(err)
	}
	if err := CopyToHostAsync(s, dst.Span(4096, 4096), d.Ptr()); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(testContext(t)); err != nil {
		t.Fatal(err)
	}
	for i, v := range dst.Bytes()[4096:8192] {
		if v != byte(i*7) {
			t.Fatalf("dst[%d] = %d", 4096+i, v)
		}
	}
	if st, _ := DevicePoolStats(0); st.InUse < 1<<20 {
		t.Fatalf("device pool stats %+v", st)
	}
	text, live, err := AllocationReport()
	if err != nil || live < 1<<20 || !strings.Contains(text, "device") {
		t.Fatalf("allocation report (%d bytes, %v):\n%s", live, err, text)
	}
}

func TestGPUManagedMemory(t *testing.T) {
	add := gpuKernel(t, addOneSource, "add_one")
	s := gpuStream(t)
	m, err := NewManaged(0, 4*1024, "managed")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	host := m.Bytes()
	for i := range host {
		host[i] = 0
	}
	if err := m.PrefetchToDevice(s); err != nil {
		t.Fatal(err)
	}
	if err := add.Launch(s, Cover(1024, 256), m, int32(1024)); err != nil {
		t.Fatal(err)
	}
	if err := m.PrefetchToHost(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if host[0] != 1 || host[4*1023] != 1 {
		t.Fatalf("managed memory after add_one: %v ... %v", host[:4], host[4*1023:])
	}
}

func TestGPUTargetForDevice(t *testing.T) {
	requireGPU(t)
	d, err := DeviceInfo(0)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := TargetForDevice(0)
	if err != nil || tg.Arch > d.ComputeCapability.Arch() {
		t.Fatalf("target %v for compute capability %+v: %v", tg, d.ComputeCapability, err)
	}
}

// An illegal address is sticky: it kills the process's CUDA context, so it runs in a child.
func TestGPUIllegalAddressIsSticky(t *testing.T) {
	if childRole() != "fault" {
		requireGPU(t)
		out := runChild(t, "TestGPUIllegalAddressIsSticky", "fault")
		if !strings.Contains(out, "sticky illegal address seen") {
			t.Fatalf("the child did not see the fault:\n%s", out)
		}
		return
	}
	fault := gpuKernel(t, faultSource, "fault")
	s, err := NewStream(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := fault.Launch(s, Cover(1, 1), DevicePtr(8)); err != nil {
		t.Fatal(err)
	}
	err = s.Wait(testContext(t))
	e := wantError(t, err, ErrIllegalAddress)
	if !e.Sticky() {
		t.Fatalf("an illegal address is not sticky: %+v", e)
	}
	t.Logf("sticky illegal address seen: %v", err)
	// Nothing is closed: the context is dead, the process ends.
}
