package kiln

import (
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

func newPlainPool(t *testing.T) *PinnedPool {
	t.Helper()
	pool, err := NewPinnedPool(0, HostPlain, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

func TestPinnedBlockIsAByteSliceOverCMemory(t *testing.T) {
	pool := newPlainPool(t)
	b, err := pool.Alloc(1000, "view")
	if err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	if len(data) != 1000 || cap(data) != 1000 || b.Size() != 1000 || b.Tag() != "view" {
		t.Fatalf("len %d cap %d size %d tag %q", len(data), cap(data), b.Size(), b.Tag())
	}
	for i := range data {
		data[i] = byte(i)
	}
	// No copy: a second view sees the first one's writes.
	if again := b.Bytes(); &again[0] != &data[0] || again[999] != byte(999%256) {
		t.Fatal("Bytes copies")
	}
	s, err := pool.Stats()
	if err != nil || s.InUse < 1000 || s.Misses != 1 {
		t.Fatalf("stats %+v, %v", s, err)
	}
	b.Close()
	s, _ = pool.Stats()
	if s.InUse != 0 || s.Cached < 1000 {
		t.Fatalf("after Close: %+v", s)
	}
	// The freed block is cached: the next one of its class is a hit.
	c, err := pool.Alloc(900, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if s, _ = pool.Stats(); s.Hits != 1 {
		t.Fatalf("stats %+v: want a hit", s)
	}
}

func TestPinnedSpans(t *testing.T) {
	pool := newPlainPool(t)
	b, err := pool.Alloc(64, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p, n, err := hostRange("test", b.Span(16, 32))
	if err != nil || n != 32 || p != unsafe.Pointer(&b.Bytes()[16]) {
		t.Fatalf("span: %v %d %v", p, n, err)
	}
	_, _, err = hostRange("kiln.CopyToDeviceAsync", b.Span(48, 32))
	wantError(t, err, ErrInvalidArgument, "[48, 80)", "64 bytes")
}

// A block dropped without Close is freed by its finalizer and reported as a leak: run in a child
// whose stderr must hold the report.
func TestPinnedFinalizerReportsTheLeak(t *testing.T) {
	if childRole() != "leak" {
		out := runChild(t, "TestPinnedFinalizerReportsTheLeak", "leak")
		want := `kiln: LEAK: kiln.Pinned block of 4096 bytes (tag "dropped") was garbage-collected without Close()`
		if !strings.Contains(out, want) {
			t.Fatalf("the child's output lacks %q:\n%s", want, out)
		}
		return
	}
	pool := newPlainPool(t)
	before := LeaksReported()
	func() {
		b, err := pool.Alloc(4096, "dropped")
		if err != nil {
			t.Fatal(err)
		}
		b.Bytes()[0] = 1
	}()
	if s, _ := pool.Stats(); s.InUse < 4096 {
		t.Fatalf("the block is not in use: %+v", s)
	}
	// Finalizers run after a collection, on their own goroutine: a generous bound, rarely more than
	// one round.
	for deadline := time.Now().Add(time.Minute); LeaksReported() == before; {
		if time.Now().After(deadline) {
			t.Fatal("the dropped block was never finalized")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := LeaksReported(); got != before+1 {
		t.Fatalf("%d leaks reported, want 1", got-before)
	}
	if s, _ := pool.Stats(); s.InUse != 0 {
		t.Fatalf("the finalizer did not return the block: %+v", s)
	}
}

func TestAllocationReport(t *testing.T) {
	text, live, err := AllocationReport()
	if err != nil {
		t.Fatal(err)
	}
	if live > 0 && text == "" {
		t.Fatalf("%d live bytes but no lines", live)
	}
}
