package joberr

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

func TestCodeOf(t *testing.T) {
	cause := errors.New("moov atom not found")
	cases := []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, ""},
		{"typed", New(NoFaceDetected, "no face in %s", "a.mp4"), NoFaceDetected},
		{"wrapped typed", fmt.Errorf("pass 1: %w", Wrap(CorruptMedia, cause, "damaged")), CorruptMedia},
		{"outermost code wins", Wrap(ModelUnavailable, New(CorruptMedia, "inner"), "outer"), ModelUnavailable},
		{"canceled", fmt.Errorf("run: %w", context.Canceled), Canceled},
		{"deadline", fmt.Errorf("run: %w", context.DeadlineExceeded), Timeout},
		{"anything else", cause, Internal},
	}
	for _, c := range cases {
		if got := CodeOf(c.err); got != c.want {
			t.Errorf("%s: CodeOf = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestMessages(t *testing.T) {
	cause := errors.New("exit status 1")
	err := fmt.Errorf("decode: %w", Wrap(CorruptMedia, cause, "file %q is damaged", "a.mp4"))
	if got := MessageOf(err); got != `file "a.mp4" is damaged` {
		t.Errorf("MessageOf = %q", got)
	}
	if got := err.Error(); got != `decode: CORRUPT_MEDIA: file "a.mp4" is damaged: exit status 1` {
		t.Errorf("Error = %q", got)
	}
	if !errors.Is(err, cause) {
		t.Error("the cause is not in the chain")
	}
	if got := MessageOf(cause); got != "exit status 1" {
		t.Errorf("MessageOf(plain) = %q", got)
	}
}
