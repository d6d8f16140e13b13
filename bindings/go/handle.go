package kiln

import (
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// cHandle is an owner's C handle, NULL once the owner is closed. It is atomic so that closing
// twice, even from two goroutines at once, destroys the handle once. (A typed atomic.Pointer
// cannot hold a pointer to an incomplete C struct.)
type cHandle struct{ p unsafe.Pointer }

func (h *cHandle) load() unsafe.Pointer { return atomic.LoadPointer(&h.p) }

func (h *cHandle) store(p unsafe.Pointer) { atomic.StorePointer(&h.p, p) }

// take returns the handle and leaves NULL: the caller destroys what it got, if anything.
func (h *cHandle) take() unsafe.Pointer { return atomic.SwapPointer(&h.p, nil) }

// A finalizer costs two runtime calls, set when an owner is made and cleared when it is closed:
// together several times a cgo call. Owners made and closed on hot paths (pinned blocks, buffers,
// the images of cache hits) therefore keep their state in a record taken from a recycler, whose
// finalizer was set once, when the record was made: the owner points at its record until Close
// gives the record back, emptied. An owner dropped without Close leaves its record unreachable with
// a handle still in it, and the record's finalizer reports the leak and frees the handle. A record
// the pool itself drops is finalized empty, which does nothing.
type recycler[T any] struct{ pool sync.Pool }

func newRecycler[T any](finalize func(*T)) *recycler[T] {
	r := &recycler[T]{}
	r.pool.New = func() any {
		record := new(T)
		runtime.SetFinalizer(record, finalize)
		return record
	}
	return r
}

func (r *recycler[T]) get() *T { return r.pool.Get().(*T) }

// put takes back an emptied record.
func (r *recycler[T]) put(record *T) { r.pool.Put(record) }
