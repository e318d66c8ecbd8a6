package conformance

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wxhub/wxhub/connectors"
)

// GoHandler starts h with the SDK runner on env.Bus with env.Options; stop
// cancels it and waits for Run to return (in-flight work finished).
func GoHandler(h connectors.Handler) func(*testing.T, Env) func() {
	return GoRunner(func(o connectors.Options) connectors.Options { return o }, h)
}

// GoRunner is GoHandler with a hook to adjust the options (Concurrency,
// Middleware, ...); keep MaxDeliver, Backoff and Name from the kit.
func GoRunner(opts func(connectors.Options) connectors.Options, h connectors.Handler) func(*testing.T, Env) func() {
	return func(t *testing.T, env Env) func() {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- connectors.Run(ctx, env.Bus, opts(env.Options), h) }()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("conformance: connector Run: %v", err)
					}
				case <-time.After(time.Minute):
					t.Errorf("conformance: connector did not stop within a minute")
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}
}

// Process starts a connector in another language: command in dir, with the
// environment of the test plus extra ("KEY=value") plus
//
//	WXHUB_NATS_URL, WXHUB_NATS_USER, WXHUB_NATS_PASSWORD, WXHUB_NATS_INBOX_PREFIX
//	WXHUB_CONNECTOR (name), WXHUB_PARTITIONS, WXHUB_MAX_DELIVER, WXHUB_BACKOFF_MS
//
// Its output goes to the test log. stop sends SIGTERM and waits for the exit:
// the process must finish in-flight events, then exit 0 (within a minute,
// after which it is killed and the case fails).
func Process(command []string, dir string, extra ...string) func(*testing.T, Env) func() {
	return func(t *testing.T, env Env) func() {
		t.Helper()
		if len(command) == 0 {
			t.Fatal("conformance: Process: empty command")
		}
		cmd := exec.Command(command[0], command[1:]...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), extra...),
			"WXHUB_NATS_URL="+env.URL, "WXHUB_NATS_USER="+env.User, "WXHUB_NATS_PASSWORD="+env.Password,
			"WXHUB_NATS_INBOX_PREFIX="+env.InboxPrefix, "WXHUB_CONNECTOR="+env.Options.Name,
			"WXHUB_PARTITIONS="+strconv.Itoa(env.Partitions), "WXHUB_MAX_DELIVER="+strconv.Itoa(env.MaxDeliver),
			"WXHUB_BACKOFF_MS="+strconv.Itoa(env.BackoffMillis),
		)
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		logged := make(chan struct{})
		go func() {
			defer close(logged)
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				t.Log(command[0] + ": " + sc.Text())
			}
			_, _ = io.Copy(io.Discard, pr)
		}()
		if err := cmd.Start(); err != nil {
			_ = pw.Close()
			<-logged
			t.Fatalf("conformance: start %v: %v", command, err)
		}
		exited := make(chan error, 1)
		var stopping atomic.Bool
		go func() {
			err := cmd.Wait()
			_ = pw.Close()
			if !stopping.Load() && env.died != nil {
				if err == nil {
					err = errors.New("exit status 0 before being stopped")
				}
				env.died(err)
			}
			exited <- err
		}()
		var once sync.Once
		stop := func() {
			once.Do(func() {
				stopping.Store(true)
				_ = cmd.Process.Signal(syscall.SIGTERM)
				var err error
				select {
				case err = <-exited:
				case <-time.After(time.Minute):
					_ = cmd.Process.Kill()
					err = <-exited
					t.Errorf("conformance: %v ignored SIGTERM for a minute; killed", command)
				}
				<-logged // no t.Log after the test ends
				if err != nil {
					t.Errorf("conformance: %v exited with %v after SIGTERM, want 0", command, err)
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}
}
