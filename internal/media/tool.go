package media

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/latentsync/latentsync-service/internal/tail"
)

// stderrTail bounds how much of a tool's stderr is kept for error messages:
// a corrupt file can make ffmpeg log a line per packet.
const stderrTail = 4 << 10

// waitDelay bounds how long Wait waits for the pipes after the process ended
// or was killed.
const waitDelay = 5 * time.Second

// ToolError is a failed ffmpeg or ffprobe run with the end of its stderr,
// kept as the cause behind the public error for logs.
type ToolError struct {
	Tool   string
	Err    error  // usually *exec.ExitError
	Stderr string // last few KB
}

func (e *ToolError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		return fmt.Sprintf("%s: %v", e.Tool, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.Tool, e.Err, msg)
}

func (e *ToolError) Unwrap() error { return e.Err }

// command prepares a tool run that is killed when ctx ends.
func command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.WaitDelay = waitDelay
	return cmd
}

// runTool runs a tool to completion and returns its stdout and stderr tail.
func runTool(ctx context.Context, tool string, args ...string) ([]byte, string, error) {
	cmd := command(ctx, tool, args...)
	var stdout bytes.Buffer
	stderr := tail.New(stderrTail)
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	return stdout.Bytes(), stderr.String(), err
}
