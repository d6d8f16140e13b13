package kiln

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A context already done returns before any wait: with a nil stream the library would say
// invalid handle, so getting the context's error proves no wait was made.
func TestDoneContextReturnsBeforeWaiting(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()

	for name, wait := range map[string]func(context.Context) error{
		"Stream.Wait": (*Stream)(nil).Wait,
		"Event.Wait":  (*Event)(nil).Wait,
	} {
		err := wait(cancelled)
		wantError(t, err, ErrCancelled, "kiln."+name, "context canceled")
		if !errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v does not unwrap to context.Canceled alone", name, err)
		}
		err = wait(expired)
		wantError(t, err, ErrTimeout, "kiln."+name, "deadline exceeded")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v does not unwrap to context.DeadlineExceeded", name, err)
		}
	}
}

// A live context reaches the library's wait (here refused for the nil stream) and leaves no
// cancel flag requested or callback behind.
func TestLiveContextReachesTheWait(t *testing.T) {
	kept := func() int {
		cancelFlags.Lock()
		defer cancelFlags.Unlock()
		return len(cancelFlags.free)
	}
	before := kept()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for i := 0; i < 3; i++ {
		wantError(t, (*Stream)(nil).Wait(ctx), ErrInvalidHandle)
		wantError(t, (*Stream)(nil).Wait(context.Background()), ErrInvalidHandle)
	}
	// One flag serves one wait at a time, and is kept for the next: none is made per wait.
	if want := max(before, 1); kept() != want {
		t.Fatalf("%d cancel flags kept for reuse, want %d", kept(), want)
	}
}
