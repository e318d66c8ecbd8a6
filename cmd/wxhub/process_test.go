package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/wecom/sim"
)

// TestMain lets the test binary act as the wxhub binary: the process tests
// start it with WXHUB_TEST_BE_MAIN=1 and real arguments, then kill it for real.
func TestMain(m *testing.M) {
	if os.Getenv("WXHUB_TEST_BE_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	if os.Getenv("WXHUB_TEST_BE_CONNECTOR") == "1" {
		os.Exit(testConnectorMain())
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a `wxhub run` child process with the smallest config.
type proc struct {
	t       *testing.T
	dir     string
	env     []string
	gateway string
	cmd     *exec.Cmd
}

func newProc(t *testing.T, simURL string) *proc {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "wxhub.yaml"), config.Smallest, 0o600); err != nil {
		t.Fatal(err)
	}
	gw := "127.0.0.1:" + strconv.Itoa(freePort(t))
	return &proc{t: t, dir: dir, gateway: gw, env: append(os.Environ(),
		"WXHUB_TEST_BE_MAIN=1",
		"WXHUB_HELPDESK_SECRET=helpdesk-demo-secret",
		"WXHUB_ERP_KEY=erp-key-for-tests",
		"WXHUB_WECOM_API_BASE="+simURL,
		"WXHUB_GATEWAY_LISTEN="+gw,
		"WXHUB_NATS_PORT="+strconv.Itoa(freePort(t)),
	)}
}

// start runs `wxhub run --config wxhub.yaml [--only ...]` in the temp dir (so
// ./data/nats is there) and waits until /readyz answers 200.
func (p *proc) start(only string) {
	p.t.Helper()
	args := []string{"run", "--config", "wxhub.yaml"}
	if only != "" {
		args = append(args, "--only", only)
	}
	p.cmd = exec.Command(os.Args[0], args...)
	p.cmd.Dir = p.dir
	p.cmd.Env = p.env
	logf, err := os.Create(filepath.Join(p.dir, "wxhub.log"))
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.gateway + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(p.dir, "wxhub.log"))
			p.t.Fatalf("wxhub run not ready in 30 s; log:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill is SIGKILL: no drain, no graceful anything.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	p.cmd = nil
}

func startSim(t *testing.T) *sim.Server {
	t.Helper()
	s, err := sim.New(sim.DemoConfig().WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRunWithTheSmallestConfigAnswersWithHelp(t *testing.T) {
	s := startSim(t)
	p := newProc(t, s.URL())
	s.SetGatewayURL("http://" + p.gateway)
	p.start("")
	ctx := waitCtx(t, 30*time.Second)
	if d, err := s.Say(ctx, "helpdesk", "zhangsan", "hello"); err != nil || d.Status != 200 {
		t.Fatalf("say: %+v %v", d, err)
	}
	m, err := s.WaitSent(ctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" })
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(m.Content, "您好") {
		t.Fatalf("reply %q is not the help text", m.Content)
	}
}

func TestKilledHubAnswersAcknowledgedCallbackAfterRestart(t *testing.T) {
	s := startSim(t)
	p := newProc(t, s.URL())
	s.SetGatewayURL("http://" + p.gateway)
	ctx := waitCtx(t, 90*time.Second)

	// 1. Only the gateway runs: the event exists nowhere but in JetStream when
	// WeChat gets its 200. Then the process is killed.
	p.start("gateway")
	if d, err := s.Say(ctx, "helpdesk", "zhangsan", "echo stored-only"); err != nil || d.Status != 200 {
		t.Fatalf("say: %+v %v", d, err)
	}
	p.kill()

	// 2. The whole hub, killed the moment the callback is acknowledged: wherever
	// it was on the way (router, connector, sender), the work is redone.
	p.start("")
	if _, err := s.WaitSent(ctx, func(m sim.SentMessage) bool { return strings.Contains(m.Content, "stored-only") }); err != nil {
		t.Fatalf("the acknowledged event was lost: %v", err)
	}
	if d, err := s.Say(ctx, "helpdesk", "lisi", "echo killed-in-flight"); err != nil || d.Status != 200 {
		t.Fatalf("say: %+v %v", d, err)
	}
	p.kill()
	p.start("")
	if _, err := s.WaitSent(ctx, func(m sim.SentMessage) bool { return strings.Contains(m.Content, "killed-in-flight") }); err != nil {
		t.Fatalf("the acknowledged event was lost: %v", err)
	}
	// No duplicate either: WeCom's duplicate check absorbs a resend after the kill.
	var n int
	for _, m := range s.SentTo("lisi") {
		if strings.Contains(m.Content, "killed-in-flight") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("reply delivered %d times, want 1", n)
	}
}
