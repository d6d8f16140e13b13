package kiln

import (
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
