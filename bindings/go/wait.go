package kiln

/*
#include "kiln_go.h"
*/
import "C"

import (
	"context"
	"sync"
	"time"
)

// A context maps onto kiln's deadline waits: its deadline becomes the wait's timeout, and its
// cancellation a kiln_cancel the wait watches, requested from the goroutine context.AfterFunc
// starts when the context is cancelled. A context already done returns before any wait.

// cancelFlags keeps kiln_cancel flags that were never requested, for later waits (a requested one
// cannot be reset).
var cancelFlags struct {
	sync.Mutex
	free []*C.kiln_cancel
}

func getCancelFlag() (*C.kiln_cancel, error) {
	cancelFlags.Lock()
	if n := len(cancelFlags.free); n > 0 {
		c := cancelFlags.free[n-1]
		cancelFlags.free = cancelFlags.free[:n-1]
		cancelFlags.Unlock()
		return c, nil
	}
	cancelFlags.Unlock()
	f := getFrame(0, 0)
	defer putFrame(f)
	var c *C.kiln_cancel
	if C.kiln_cancel_create(&c, &f.c.error) != C.KILN_OK {
		return nil, takeError(&f.c.error)
	}
	return c, nil
}

func putCancelFlag(c *C.kiln_cancel, requested bool) {
	cancelFlags.Lock()
	if !requested && len(cancelFlags.free) < 64 {
		cancelFlags.free = append(cancelFlags.free, c)
		c = nil
	}
	cancelFlags.Unlock()
	if c != nil {
		C.kiln_cancel_destroy(c)
	}
}

// waitFunc is one C wait: with this timeout (ns, < 0: none) and cancel flag (may be NULL).
type waitFunc func(timeoutNs C.int64_t, cancel *C.kiln_cancel, e *C.kiln_error) C.kiln_status

// waitWithContext runs a C wait under ctx. A timeout or cancellation error unwraps to the
// context's error, so it satisfies both errors.Is(err, ErrTimeout) and
// errors.Is(err, context.DeadlineExceeded) (ErrCancelled and context.Canceled likewise).
func waitWithContext(ctx context.Context, call string, wait waitFunc) error {
	if err := ctx.Err(); err != nil {
		return contextError(call, err)
	}
	timeout := C.int64_t(-1)
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		left := time.Until(deadline)
		if left <= 0 {
			return contextError(call, context.DeadlineExceeded)
		}
		timeout = C.int64_t(left)
	}
	var cancel *C.kiln_cancel
	var stop func() bool
	var fired chan struct{}
	requested := false
	if ctx.Done() != nil {
		var err error
		if cancel, err = getCancelFlag(); err != nil {
			return err
		}
		fired = make(chan struct{})
		stop = context.AfterFunc(ctx, func() {
			// A deadline is the wait's own timeout: only a cancellation is requested, so an expired
			// deadline reads as a timeout, not as a cancellation.
			if ctx.Err() == context.Canceled {
				C.kiln_cancel_request(cancel)
				requested = true
			}
			close(fired)
		})
	}

	f := getFrame(0, 0)
	defer putFrame(f)
	status := wait(timeout, cancel, &f.c.error)

	if stop != nil {
		if !stop() {
			<-fired // the callback ran or runs: the flag is ours again only after it returns
		}
		putCancelFlag(cancel, requested)
	}
	if status == C.KILN_OK {
		return nil
	}
	err := takeError(&f.c.error)
	if err.Domain == DomainKiln {
		switch err.Code {
		case C.KILN_ERRC_TIMEOUT:
			err.context = context.DeadlineExceeded
		case C.KILN_ERRC_CANCELLED:
			err.context = context.Canceled
			if ctxErr := ctx.Err(); ctxErr != nil {
				err.context = ctxErr
			}
		}
	}
	return err
}
