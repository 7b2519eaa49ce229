package fakeclock_test

import (
	"sync"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/fakeclock"
)

func TestClockMovesOnlyWhenTold(t *testing.T) {
	t0 := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	c := fakeclock.New(t0)
	steps := []struct {
		name string
		move func()
		want time.Time
	}{
		{"stands still", func() {}, t0},
		{"advance", func() { c.Advance(90 * time.Second) }, t0.Add(90 * time.Second)},
		{"advance backward", func() { c.Advance(-30 * time.Second) }, t0.Add(time.Minute)},
		{"set", func() { c.Set(t0.Add(time.Hour)) }, t0.Add(time.Hour)},
	}
	for _, st := range steps {
		st.move()
		if got := c.Now(); !got.Equal(st.want) {
			t.Errorf("%s: Now() = %v, want %v", st.name, got, st.want)
		}
	}
}

// Readers on other goroutines see every advance (go test -race checks the
// locking).
func TestClockConcurrentAdvance(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := fakeclock.New(t0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Second)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), t0.Add(800*time.Second); !got.Equal(want) {
		t.Fatalf("Now() = %v, want %v", got, want)
	}
}
