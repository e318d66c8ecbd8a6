package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// testConnectorMain is an external connector process (the test binary with
// WXHUB_TEST_BE_CONNECTOR=1): it reads the WXHUB_* settings the demo prints,
// as a scaffolded connector does, and answers "假期" questions.
func testConnectorMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	name := os.Getenv("WXHUB_CONNECTOR")
	parts, _ := strconv.Atoi(os.Getenv("WXHUB_PARTITIONS"))
	log, _ := zap.NewDevelopment()
	b, err := bus.Dial(ctx, bus.Config{URL: os.Getenv("WXHUB_NATS_URL"), User: os.Getenv("WXHUB_NATS_USER"),
		Password: os.Getenv("WXHUB_NATS_PASSWORD"), InboxPrefix: bus.InboxPrefix(name), Partitions: parts}, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	err = connectors.Run(ctx, b, connectors.Options{Name: name, Logger: log, PollWait: time.Second},
		connectors.HandlerFunc(func(ctx context.Context, ev *schemas.Event) ([]connectors.Reply, error) {
			return []connectors.Reply{connectors.Text(ev.Data.User, ev.Data.User+" 的年假还剩 5 天 ("+ev.Data.App+")")}, nil
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// syncBuffer collects a process's output for the test to read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `wxhub demo --config extra.yaml` takes an integrator's rule, connector user
// and app; an external connector process connects with what the banner says
// and its answer reaches the simulator.
func TestDemoWithExtraConfigServesAnExternalConnector(t *testing.T) {
	dir := t.TempDir()
	extra := `
router:
  rules:
    - {name: leave, description: "假期: 年假余额", match: {keywords: [假期]}, to: leave}
nats:
  users:
    - {name: leave, password: "${LEAVE_NATS_PASSWORD}", connector: leave}
wecom:
  apps:
    - {name: hr, agent_id: 1000042, secret: hr-secret, token: hrtoken, encoding_aes_key: abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG}
`
	if err := os.WriteFile(filepath.Join(dir, "extra.yaml"), []byte(extra), 0o600); err != nil {
		t.Fatal(err)
	}
	gw, simAddr := "127.0.0.1:"+strconv.Itoa(freePort(t)), "127.0.0.1:"+strconv.Itoa(freePort(t))
	natsPort := freePort(t)
	demo := exec.Command(os.Args[0], "demo", "--config", "extra.yaml", "--data", filepath.Join(dir, "data"), "--listen", gw,
		"--sim-listen", simAddr, "--erp-listen", "127.0.0.1:"+strconv.Itoa(freePort(t)), "--nats-port", strconv.Itoa(natsPort))
	demo.Dir = dir
	demo.Env = append(os.Environ(), "WXHUB_TEST_BE_MAIN=1", "LEAVE_NATS_PASSWORD=leave-dev-pw")
	var out syncBuffer
	demo.Stdout, demo.Stderr = &out, &out
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = demo.Process.Signal(syscall.SIGTERM)
		_ = demo.Wait()
		if t.Failed() {
			t.Logf("demo output:\n%s", out.String())
		}
	})
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "External connectors") {
		if time.Now().After(deadline) {
			t.Fatal("the demo printed no External connectors section within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	banner := out.String()
	for _, want := range []string{natsURL, "WXHUB_NATS_USER=leave", "WXHUB_CONNECTOR=leave", "wxhub.route.leave.", "WXHUB_PARTITIONS=16"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q", want)
		}
	}

	conn := exec.Command(os.Args[0])
	conn.Env = append(os.Environ(), "WXHUB_TEST_BE_CONNECTOR=1", "WXHUB_NATS_URL="+natsURL, "WXHUB_CONNECTOR=leave",
		"WXHUB_NATS_USER=leave", "WXHUB_NATS_PASSWORD=leave-dev-pw", "WXHUB_PARTITIONS=16")
	var connOut syncBuffer
	conn.Stdout, conn.Stderr = &connOut, &connOut
	if err := conn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Process.Signal(syscall.SIGTERM)
		if err := conn.Wait(); err != nil {
			t.Errorf("connector after SIGTERM: %v\n%s", err, connOut.String())
		}
	})

	ctx := waitCtx(t, 60*time.Second)
	r := sim.NewRemote("http://" + simAddr)
	for _, app := range []string{"helpdesk", "hr"} { // hr is the extra app
		if d, err := r.Say(ctx, app, "zhangsan", "假期 还剩几天"); err != nil || d.Status != http.StatusOK {
			t.Fatalf("say to %s: %+v %v", app, d, err)
		}
		want := "zhangsan 的年假还剩 5 天 (" + app + ")"
		for {
			msgs, err := r.Sent(ctx, sim.SentFilter{User: "zhangsan"})
			if err != nil {
				t.Fatal(err)
			}
			if containsContent(msgs, want) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no %q at the simulator: %+v\nconnector:\n%s", want, msgs, connOut.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func containsContent(msgs []sim.SentMessage, s string) bool {
	for _, m := range msgs {
		if m.Content == s {
			return true
		}
	}
	return false
}

func TestDemoExtraConfigRefusesOtherKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "extra.yaml")
	if err := os.WriteFile(path, []byte("gateway: {listen: 127.0.0.1:1}\nrouter: {rules: []}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := demoCmd(context.Background(), []string{"--config", path})
	if err == nil || !strings.Contains(err.Error(), "gateway.listen") {
		t.Fatalf("err = %v, want one naming gateway.listen", err)
	}
}
