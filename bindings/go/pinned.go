package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// HostMemory is what a pinned pool allocates.
type HostMemory int

// The kinds of host memory.
const (
	// HostPinned is page-locked memory (cuMemHostAlloc, portable): needs a driver.
	HostPinned HostMemory = C.KILN_HOST_PINNED
	// HostPlain is malloc'd memory with the pool's bookkeeping: for tests and tools without a driver.
	HostPlain HostMemory = C.KILN_HOST_PLAIN
)

// PinnedPool is a caching pool of pinned host memory (power-of-two size classes, per-thread
// shards). Any goroutine may use it.
type PinnedPool struct {
	handle cHandle
	device int
}

// NewPinnedPool makes a pool whose memory the primary context of `device` allocates (portable:
// usable by all devices), keeping up to maxCachedBytes of freed blocks for reuse.
func NewPinnedPool(device int, memory HostMemory, maxCachedBytes uint64) (*PinnedPool, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	var h *C.kiln_pinned_pool
	if C.kiln_pinned_pool_create(C.int(device), C.kiln_host_memory(memory), C.uint64_t(maxCachedBytes), &h, &f.c.error) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	p := &PinnedPool{device: device}
	p.handle.store(unsafe.Pointer(h))
	runtime.SetFinalizer(p, (*PinnedPool).finalize)
	return p, nil
}

func (p *PinnedPool) raw() *C.kiln_pinned_pool {
	if p == nil {
		return nil
	}
	return (*C.kiln_pinned_pool)(p.handle.load())
}

// Alloc takes a block of at least `bytes` bytes from the pool; the tag names it in reports.
func (p *PinnedPool) Alloc(bytes int, tag string) (*Pinned, error) {
	if bytes < 0 {
		return nil, newError(C.KILN_ERRC_INVALID_ARGUMENT, "kiln.PinnedPool.Alloc", "a size of %d bytes", bytes)
	}
	f, hasTag := frameWithTag(tag)
	status := C.kiln_go_pinned_create(p.raw(), C.size_t(bytes), hasTag, f.c)
	runtime.KeepAlive(p)
	if status != C.KILN_OK {
		err := takeError(&f.c.error)
		putFrame(f)
		return nil, err
	}
	r := pinnedRecords.get()
	*r = pinnedRecord{handle: (*C.kiln_pinned)(f.c.handle), data: f.c.data, size: bytes, tag: tag, pool: p}
	putFrame(f)
	b := &Pinned{}
	b.record.Store(r)
	return b, nil
}

// PinnedPoolStats are a pinned pool's counters.
type PinnedPoolStats struct {
	InUse, Cached, Hits, Misses, AllocatorBytes uint64
}

// Stats are the pool's counters.
func (p *PinnedPool) Stats() (PinnedPoolStats, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	s := &f.c.pinned_pool_stats
	s.size = C.size_t(unsafe.Sizeof(*s))
	status := C.kiln_pinned_pool_get_stats(p.raw(), s, &f.c.error)
	runtime.KeepAlive(p)
	if status != C.KILN_OK {
		return PinnedPoolStats{}, takeError(&f.c.error)
	}
	return PinnedPoolStats{uint64(s.in_use), uint64(s.cached), uint64(s.hits), uint64(s.misses), uint64(s.allocator_bytes)}, nil
}

// Close releases the pool's memory; blocks still handed out stay valid until closed. Closing
// twice does nothing.
func (p *PinnedPool) Close() error {
	if p == nil {
		return nil
	}
	if h := (*C.kiln_pinned_pool)(p.handle.take()); h != nil {
		runtime.SetFinalizer(p, nil)
		C.kiln_pinned_pool_destroy(h)
	}
	return nil
}

func (p *PinnedPool) finalize() {
	if h := (*C.kiln_pinned_pool)(p.handle.take()); h != nil {
		reportLeak("kiln.PinnedPool of device %d", p.device)
		C.kiln_pinned_pool_destroy(h)
	}
}

// Pinned is a block of a pinned pool. Its memory is visible to Go as a []byte (Bytes) without a
// copy, valid until Close.
type Pinned struct {
	record atomic.Pointer[pinnedRecord] // nil once closed
}

type pinnedRecord struct {
	handle *C.kiln_pinned
	data   unsafe.Pointer // C memory
	size   int
	tag    string
	pool   *PinnedPool // reachable while the block is, so the pool is finalized after its blocks
}

var pinnedRecords = newRecycler(func(r *pinnedRecord) {
	if r.handle != nil {
		reportLeak("kiln.Pinned block of %d bytes (tag %q)", r.size, r.tag)
		C.kiln_pinned_destroy(r.handle)
	}
})

func (b *Pinned) open() *pinnedRecord {
	if b == nil {
		return nil
	}
	return b.record.Load()
}

// Bytes is the block's memory: valid until Close, nil after.
func (b *Pinned) Bytes() []byte {
	r := b.open()
	if r == nil {
		return nil
	}
	return unsafe.Slice((*byte)(r.data), r.size)
}

// Size is the block's size in bytes, as asked for (0 once closed).
func (b *Pinned) Size() int {
	if r := b.open(); r != nil {
		return r.size
	}
	return 0
}

// Tag is the name the block was given ("" once closed).
func (b *Pinned) Tag() string {
	if r := b.open(); r != nil {
		return r.tag
	}
	return ""
}

// Close returns the block to its pool; slices of Bytes must not be used afterwards. Closing twice
// does nothing.
func (b *Pinned) Close() error {
	if b == nil {
		return nil
	}
	if r := b.record.Swap(nil); r != nil {
		C.kiln_pinned_destroy(r.handle)
		*r = pinnedRecord{}
		pinnedRecords.put(r)
	}
	return nil
}

func (b *Pinned) hostSpan() (unsafe.Pointer, int, bool) {
	r := b.open()
	if r == nil {
		return nil, 0, false
	}
	return r.data, r.size, true
}
