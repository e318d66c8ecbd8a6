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
	pid     int
	natsPID int // the NATS server's process with Options.NATSCommand, else 0
	stderr  *lockedBuffer
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
	var stopNATS func()
	natsPID := 0
	if len(o.NATSCommand) > 0 {
		if stopNATS, natsPID, err = startNATS(ctx, o, e, port); err != nil {
			return nil, err
		}
		port = 0 // the child connects to natsAddr instead of embedding a server
	}
	ok := false
	defer func() {
		if !ok && stopNATS != nil {
			stopNATS()
		}
	}()
	yml, err := childConfig(e, o, listen, port, "nats://"+natsAddr)
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
			if stopNATS != nil {
				stopNATS()
			}
		})
		return stopErr
	}
	base := "http://" + listen
	if err := waitReady(ctx, base+"/readyz", exited); err != nil {
		_ = stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(stderr.String(), 2000))
	}
	credsDir := filepath.Join(e.dir, "nats") // the child's generated hub login
	if len(o.NATSCommand) > 0 {
		credsDir = filepath.Join(e.dir, "nats-external")
	}
	client, err = bus.Dial(ctx, bus.Config{URL: "nats://" + natsAddr, DataDir: credsDir}, nil)
	if err != nil {
		_ = stop()
		return nil, fmt.Errorf("bench: dial the child's NATS: %w", err)
	}
	e.target.URL = base
	e.sim.SetGatewayURL(base)
	ok = true
	return &childHub{Hub: &Hub{Addr: listen, Bus: client, Stop: stop}, pid: cmd.Process.Pid, natsPID: natsPID, stderr: stderr}, nil
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

// startNATS runs o.NATSCommand on 127.0.0.1:port with a store in e's
// directory, waits until it accepts connections and returns what stops it.
func startNATS(ctx context.Context, o *Options, e *env, port int) (stop func(), pid int, err error) {
	args := append(append([]string(nil), o.NATSCommand[1:]...), "--port", strconv.Itoa(port), "--data-dir", filepath.Join(e.dir, "nats-external"))
	out := &lockedBuffer{}
	cmd := exec.Command(o.NATSCommand[0], args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("bench: start NATS: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			o.progressf("nats", "NATS (pid %d) on %s", cmd.Process.Pid, addr)
			return stop, cmd.Process.Pid, nil
		}
		select {
		case err := <-exited:
			return nil, 0, fmt.Errorf("bench: NATS exited before it was ready: %v\n%s", err, tail(out.String(), 2000))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			return nil, 0, fmt.Errorf("bench: NATS not ready on %s within 30 s\n%s", addr, tail(out.String(), 2000))
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}
