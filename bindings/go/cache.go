package kiln

/*
#include <stdlib.h>
#include <stdlib.h>
#include "kiln_go.h"
*/
import "C"

import (
	"context"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// CacheOptions configure a kernel cache; the zero value is kiln's default (256 MiB in memory,
// the disk tier at $KILN_CACHE_DIR or ~/.cache/kiln, capped by $KILN_CACHE_MAX_BYTES or 4 GiB).
type CacheOptions struct {
	MemoryBytes        uint64 // memory tier capacity; 0: 256 MiB
	DisableDisk        bool   // memory tier only
	DiskDirectory      string // "": $KILN_CACHE_DIR, else ~/.cache/kiln
	DiskMaxBytes       uint64 // 0: $KILN_CACHE_MAX_BYTES, else 4 GiB
	PrecompiledHeaders bool
}

// Cache compiles programs through a memory tier, a disk tier shared by processes and NVRTC, one
// compile per key however many goroutines (or processes) ask at once. Any goroutine may use it.
type Cache struct {
	handle    cHandle
	isDefault bool
}

// NewCache makes a kernel cache.
func NewCache(o CacheOptions) (*Cache, error) {
	var opts C.kiln_cache_options
	C.kiln_cache_options_init(&opts)
	opts.memory_bytes = C.uint64_t(o.MemoryBytes)
	if o.DisableDisk {
		opts.use_disk = 0
	}
	if err := refuseNul("kiln.NewCache", "the disk directory", o.DiskDirectory); err != nil {
		return nil, err
	}
	if o.DiskDirectory != "" {
		dir := C.CString(o.DiskDirectory)
		defer C.free(unsafe.Pointer(dir))
		opts.disk_directory = dir
	}
	opts.disk_max_bytes = C.uint64_t(o.DiskMaxBytes)
	if o.PrecompiledHeaders {
		opts.precompiled_headers = 1
	}
	f := getFrame(0, 0)
	defer putFrame(f)
	var h *C.kiln_cache
	if C.kiln_cache_create(&opts, &h, &f.c.error) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	c := &Cache{}
	c.handle.store(unsafe.Pointer(h))
	runtime.SetFinalizer(c, (*Cache).finalize)
	return c, nil
}

var defaultCache struct {
	once  sync.Once
	cache *Cache
	err   error
}

// DefaultCache is the cache Compile uses, made on first use with the default options (so from
// the environment: $KILN_CACHE_DIR, $KILN_CACHE_MAX_BYTES). Closing it does nothing.
func DefaultCache() (*Cache, error) {
	defaultCache.once.Do(func() {
		defaultCache.cache, defaultCache.err = NewCache(CacheOptions{})
		if defaultCache.cache != nil {
			defaultCache.cache.isDefault = true
		}
	})
	return defaultCache.cache, defaultCache.err
}

// Compile compiles p through the default cache for device 0's target (TargetForDevice(0)), so it
// needs a GPU; (*Cache).Compile takes any target.
func Compile(ctx context.Context, p Program) (*Image, error) {
	c, err := DefaultCache()
	if err != nil {
		return nil, err
	}
	t, err := defaultTarget()
	if err != nil {
		return nil, err
	}
	return c.Compile(ctx, p, t)
}

// Compile compiles p for t through the cache. A context already done returns before anything is
// compiled; a compile in progress is not interrupted (NVRTC cannot be). When NVRTC rejects the
// program the error is ErrCompileFailed and its Diagnostics say where and why.
func (c *Cache) Compile(ctx context.Context, p Program, t Target) (*Image, error) {
	return c.compile(ctx, "kiln.Cache.Compile", p, nil, t)
}

// compile is Compile, or CompileAndLink when there are libraries.
func (c *Cache) compile(ctx context.Context, call string, p Program, libraries []*DeviceLibrary, t Target) (*Image, error) {
	if err := ctx.Err(); err != nil {
		return nil, contextError(call, err)
	}
	enc := encodedPrograms.Get().(*programEncoder)
	defer encodedPrograms.Put(enc)
	if err := enc.encode(&p, call); err != nil {
		return nil, err
	}
	f := getFrame(0, 0)
	defer putFrame(f)
	var handles **C.kiln_device_library
	if len(libraries) > 0 {
		// In C memory: cgo lets no Go memory that holds pointers be passed to C.
		list := unsafe.Slice((**C.kiln_device_library)(C.malloc(C.size_t(len(libraries))*C.size_t(unsafe.Sizeof(uintptr(0))))),
			len(libraries))
		defer C.free(unsafe.Pointer(&list[0]))
		for i, l := range libraries {
			if l == nil || l.raw() == nil {
				return nil, newError(C.KILN_ERRC_INVALID_ARGUMENT, call, "libraries[%d] is nil or closed", i)
			}
			list[i] = l.raw()
		}
		handles = &list[0]
	}
	status := C.kiln_go_compile(c.raw(), (*C.uchar)(unsafe.SliceData(enc.buf)), C.size_t(len(enc.buf)), t.c(), handles,
		C.size_t(len(libraries)), f.c)
	runtime.KeepAlive(c)
	runtime.KeepAlive(libraries)
	r := &f.c.compile
	if status != C.KILN_OK {
		err := takeError(&f.c.error)
		err.Diagnostics = takeDiagnostics(r.diagnostics, int(r.diagnostic_count))
		return nil, err
	}
	return newImage(r.image, &r.info), nil
}

// CacheStats count what the cache did.
type CacheStats struct {
	MemoryHits, MemoryMisses, DiskHits, DiskMisses         uint64
	Compiles, CompileFailures, SharedWaits, CorruptEntries uint64
	MemoryBytes, MemoryEntries                             uint64
	CompileTimeSpent, CompileTimeSaved                     time.Duration
}

// Stats are the cache's counters.
func (c *Cache) Stats() (CacheStats, error) {
	f := getFrame(0, 0)
	defer putFrame(f)
	s := &f.c.cache_stats
	s.size = C.size_t(unsafe.Sizeof(*s))
	status := C.kiln_cache_get_stats(c.raw(), s, &f.c.error)
	runtime.KeepAlive(c)
	if status != C.KILN_OK {
		return CacheStats{}, takeError(&f.c.error)
	}
	return CacheStats{
		MemoryHits: uint64(s.memory_hits), MemoryMisses: uint64(s.memory_misses),
		DiskHits: uint64(s.disk_hits), DiskMisses: uint64(s.disk_misses),
		Compiles: uint64(s.compiles), CompileFailures: uint64(s.compile_failures),
		SharedWaits: uint64(s.shared_waits), CorruptEntries: uint64(s.corrupt_entries),
		MemoryBytes: uint64(s.memory_bytes), MemoryEntries: uint64(s.memory_entries),
		CompileTimeSpent: time.Duration(s.compile_ns_spent), CompileTimeSaved: time.Duration(s.compile_ns_saved),
	}, nil
}

func (c *Cache) raw() *C.kiln_cache {
	if c == nil {
		return nil
	}
	return (*C.kiln_cache)(c.handle.load())
}

// Close releases the cache (images it made stay valid). Closing twice, or closing the default
// cache, does nothing.
func (c *Cache) Close() error {
	if c == nil || c.isDefault {
		return nil
	}
	if h := (*C.kiln_cache)(c.handle.take()); h != nil {
		runtime.SetFinalizer(c, nil)
		C.kiln_cache_destroy(h)
	}
	return nil
}

func (c *Cache) finalize() {
	if h := (*C.kiln_cache)(c.handle.take()); h != nil {
		reportLeak("kiln.Cache")
		C.kiln_cache_destroy(h)
	}
}
