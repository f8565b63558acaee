package redistest

import (
	"sync"
	"time"
)

// Clock is a clock a test moves by hand, for code that takes a Now func:
// what it times passes without the test waiting, and not otherwise.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock is a Clock standing at the present.
func NewClock() *Clock { return &Clock{now: time.Now()} }

// Now is the clock's time; it stands still until Add.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
