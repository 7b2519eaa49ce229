// Package awstest runs AWS-API emulators on 127.0.0.1 for tests of the aws
// adapters: DynamoDB Local (AWS's own) and fauxqs (SQS and S3). Each Start
// function launches a fresh emulator on a free port, waits until it serves,
// stops it in t.Cleanup and returns SDK clients pointing at it.
//
// `make emulators` (a prerequisite of `make test`) installs both under
// .deps/ and exports their directories as LATENTSYNC_DYNAMODB_LOCAL and
// LATENTSYNC_FAUXQS; unset, the module's .deps/ is searched. A missing
// emulator (or java, node) skips the test, unless CI or
// LATENTSYNC_REQUIRE_EMULATORS is set, as `make test` does: then it fails.
package awstest

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latentsync/latentsync-service/internal/syncbuf"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/latentsync/latentsync-service/internal/modroot"
)

// Region every emulator client uses.
const Region = "us-east-1"

// Config returns an SDK config for an emulator at endpoint: static dummy
// credentials, region us-east-1, no EC2 metadata lookups, and the endpoint
// as the base endpoint of every service client built from it.
func Config(t testing.TB, endpoint string) aws.Config {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(),
		config.WithRegion(Region),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
		config.WithBaseEndpoint(endpoint),
		// Shared config files of the machine must not change what tests talk to.
		config.WithSharedConfigFiles([]string{}),
		config.WithSharedCredentialsFiles([]string{}),
	)
	if err != nil {
		t.Fatalf("aws config for %s: %v", endpoint, err)
	}
	return cfg
}

// Env returns the standard environment that points SDK v2 programs at the
// emulator with no code change (what a Lambda binary run locally gets).
// services are AWS_ENDPOINT_URL_<SERVICE> suffixes, e.g. "DYNAMODB", "S3".
func Env(endpoint string, services ...string) map[string]string {
	env := map[string]string{
		"AWS_REGION":                Region,
		"AWS_ACCESS_KEY_ID":         "test",
		"AWS_SECRET_ACCESS_KEY":     "test",
		"AWS_EC2_METADATA_DISABLED": "true",
	}
	for _, s := range services {
		env["AWS_ENDPOINT_URL_"+strings.ToUpper(s)] = endpoint
	}
	return env
}

// required reports whether missing emulators fail tests instead of skipping.
func required() bool {
	return os.Getenv("CI") != "" || os.Getenv("LATENTSYNC_REQUIRE_EMULATORS") != ""
}

// unavailable skips t, or fails it when emulators are required.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + " (run `make emulators`)"
	if required() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// installDir is the emulator's directory: env's value, or dir under the
// module's .deps when env is unset.
func installDir(t testing.TB, env, dir string) string {
	t.Helper()
	if d := os.Getenv(env); d != "" {
		return d
	}
	root, err := modroot.Find()
	if err != nil {
		unavailable(t, "%s is not set and %v", env, err)
	}
	return filepath.Join(root, ".deps", dir)
}

// freePort returns a port on 127.0.0.1 that was free a moment ago. Another
// process may take it before the emulator binds; start retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a started emulator.
type process struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer // the emulator's output, for failure reports
	done chan struct{}   // closed when the process exited
	err  error           // Wait's result, set before done closes
}

// startTimeout bounds one emulator start (the JVM takes ~2 s here, more on
// a loaded machine).
const startTimeout = 60 * time.Second

// start launches an emulator on a free port and waits for ready, a line it
// prints once it listens; it retries with another port when the process
// exits first (the port was taken meanwhile). cmdFor builds the command for
// a port.
func start(t testing.TB, name, ready string, cmdFor func(port int) *exec.Cmd) int {
	t.Helper()
	var lastErr error
	for range 3 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("%s: free port: %v", name, err)
		}
		p, err := launch(cmdFor(port), ready)
		if err == nil {
			t.Cleanup(func() {
				p.stop()
				if t.Failed() {
					t.Logf("%s output:\n%s", name, tail(p.out.String(), 4000))
				}
			})
			return port
		}
		lastErr = err
	}
	t.Fatalf("%s did not start: %v", name, lastErr)
	return 0
}

func launch(cmd *exec.Cmd, ready string) (*process, error) {
	p := &process{cmd: cmd, out: &syncbuf.Buffer{}, done: make(chan struct{})}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd.Path, err)
	}
	readyc := make(chan struct{})
	go func() {
		// Copy every line into the log buffer; report the ready line once.
		sc := bufio.NewScanner(stdout)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(p.out, sc.Text())
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(readyc)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case <-readyc:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("exited before ready (%v):\n%s", p.err, tail(p.out.String(), 4000))
	case <-time.After(startTimeout):
		p.stop()
		return nil, fmt.Errorf("not ready after %s:\n%s", startTimeout, tail(p.out.String(), 4000))
	}
}

// stop ends the process this package started: SIGTERM, then SIGKILL if it
// lingers.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func endpoint(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// lookPath resolves a tool the emulator needs or gives up on the test.
func lookPath(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		unavailable(t, "%s is not installed", tool)
	}
	return p
}

// requireFile gives up on the test when an installed file is missing.
func requireFile(t testing.TB, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		unavailable(t, "%s not found at %s", what, path)
	}
}

// Name returns a resource name unique to the test and call (a random
// suffix), made of lower-case letters, digits and dashes: valid for tables,
// queues and buckets.
func Name(t testing.TB, prefix string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	n := strings.Trim(b.String(), "-")
	if len(n) > 20 {
		n = strings.Trim(n[len(n)-20:], "-")
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:]) // crypto/rand does not fail
	return fmt.Sprintf("%s-%s-%x", prefix, n, suffix)
}
