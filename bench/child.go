package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/wxhub/wxhub/bus"
)

// childHub is `wxhub run` started as a child process with the env's corp: the
// product binary with a production-like config, in a process of its own, so
// that the load generator's and the simulator's garbage collection and heap do
// not count as the hub's.
type childHub struct {
	*Hub
	pid    int
	stderr *lockedBuffer
}

// startChild starts o.Binary `run` for e, waits for /readyz and points the
// simulator and the load target at it. The returned Hub's Bus is a client of
// the child's embedded NATS (for the backlog figures); Stop sends SIGTERM.
func startChild(ctx context.Context, o *Options, e *env) (*childHub, error) {
	bin, err := filepath.Abs(o.Binary)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build` first)", o.Binary, err)
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	natsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, natsPort, _ := net.SplitHostPort(natsAddr)
	port, _ := strconv.Atoi(natsPort)
	yml, err := childConfig(e, listen, port)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(e.dir, "wxhub.yaml")
	if err := os.WriteFile(cfgPath, yml, 0o600); err != nil {
		return nil, err
	}
	stderr := &lockedBuffer{}
	args := []string{"run", "--config", cfgPath}
	if o.ChildPprof != "" {
		args = append(args, "--pprof", o.ChildPprof)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = e.dir
	cmd.Stdout, cmd.Stderr = stderr, stderr
	var stderrFile *os.File
	if o.ChildStderr != "" {
		if stderrFile, err = os.OpenFile(o.ChildStderr, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return nil, fmt.Errorf("--child-stderr: %w", err)
		}
		cmd.Stderr = io.MultiWriter(stderr, stderrFile)
	}
	if err := cmd.Start(); err != nil {
		closeFile(stderrFile)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		closeFile(stderrFile)
		exited <- err
	}()
	var once sync.Once
	var stopErr error
	var client *bus.Bus
	stop := func() error {
		once.Do(func() {
			if client != nil {
				_ = client.Close()
			}
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case stopErr = <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				stopErr = errors.New("wxhub run did not stop within 30 s of SIGTERM")
			}
			var ee *exec.ExitError
			if errors.As(stopErr, &ee) {
				stopErr = fmt.Errorf("wxhub run exited with %v\n%s", stopErr, tail(stderr.String(), 2000))
			}
		})
		return stopErr
	}
	base := "http://" + listen
	if err := waitReady(ctx, base+"/readyz", exited); err != nil {
		_ = stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(stderr.String(), 2000))
	}
	client, err = bus.Dial(ctx, bus.Config{URL: "nats://" + natsAddr, DataDir: filepath.Join(e.dir, "nats")}, nil) // the child's generated hub login
	if err != nil {
		_ = stop()
		return nil, fmt.Errorf("bench: dial the child's NATS: %w", err)
	}
	e.target.URL = base
	e.sim.SetGatewayURL(base)
	return &childHub{Hub: &Hub{Addr: listen, Bus: client, Stop: stop}, pid: cmd.Process.Pid, stderr: stderr}, nil
}

func closeFile(f *os.File) {
	if f != nil {
		_ = f.Close()
	}
}

// lockedBuffer collects the child's output; the exec package writes it from
// its own goroutine while a failure report may read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
