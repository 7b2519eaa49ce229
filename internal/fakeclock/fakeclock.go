// Package fakeclock is a clock for tests: it stands still until the test
// moves it, so deadlines, expiries and grace periods are exact. It is safe
// for concurrent use, because the code under test often reads it from a
// server or worker goroutine.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a settable time source; pass its Now method where code takes a
// func() time.Time.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock stopped at t.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (backward when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
