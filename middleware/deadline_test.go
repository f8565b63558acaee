package middleware

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The clock ends a wait when its deadline has passed, or its client has
// gone, and not before; swept here by hand, at chosen times (its own
// goroutine ticks once an hour).
func TestClockSweep(t *testing.T) {
	c := &clock{tick: time.Hour}
	deadline := time.Now().Add(time.Minute)
	parent, leave := context.WithCancel(context.Background())
	defer leave()
	late := &request{parent: context.Background(), deadline: deadline, clock: c}
	gone := &request{parent: parent, deadline: deadline.Add(time.Minute), clock: c}
	lateDone, goneDone := late.Done(), gone.Done()

	if !c.sweep(deadline.Add(-time.Nanosecond)) {
		t.Fatal("sweep found nothing waiting, with two requests armed")
	}
	for name, done := range map[string]<-chan struct{}{"late": lateDone, "gone": goneDone} {
		select {
		case <-done:
			t.Fatalf("%s: done before its deadline, with its client there", name)
		default:
		}
	}

	leave()
	c.sweep(deadline.Add(-time.Nanosecond))
	<-goneDone
	if err := gone.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err() = %v after the client left, want context.Canceled", err)
	}
	select {
	case <-lateDone:
		t.Fatal("the other request ended with it")
	default:
	}

	if c.sweep(deadline) {
		t.Error("sweep reports requests waiting after the last one's deadline")
	}
	<-lateDone
	if err := late.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Err() = %v at the deadline, want context.DeadlineExceeded", err)
	}
}

// Once the request has been served, what still waits on its context (a
// goroutine the handler left behind, a derived context) sees it canceled,
// and arming it then ends it at once; AfterFunc's stop keeps f from running.
func TestClockRelease(t *testing.T) {
	c := &clock{tick: time.Hour}
	rq := &request{parent: context.Background(), deadline: time.Now().Add(time.Hour), clock: c}
	derived, cancel := context.WithCancel(rq)
	defer cancel()
	ran := make(chan struct{})
	rq.AfterFunc(func() { close(ran) })
	stopped := rq.AfterFunc(func() { t.Error("a stopped AfterFunc ran") })
	if !stopped() {
		t.Error("stop() = false before the context ended")
	}

	rq.release()
	<-derived.Done()
	<-ran
	if err := derived.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("derived Err() = %v once served, want context.Canceled", err)
	}
	if c.waiting != nil {
		t.Error("the served request is still on the clock")
	}

	after := &request{parent: context.Background(), deadline: time.Now().Add(time.Hour), clock: c}
	after.release()
	<-after.Done()
	if err := after.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("Err() = %v when armed after being served, want context.Canceled", err)
	}
}
