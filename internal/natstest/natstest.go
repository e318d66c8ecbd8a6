// Package natstest runs real nats-server processes for tests and the chaos
// run: the test binary re-executes itself as the server (the nats-server
// module in go.mod, no download), so a server can be killed with SIGKILL and
// restarted on the same store and ports, alone or as a 3-node cluster.
//
// A test package that uses it calls Main from its TestMain first thing.
package natstest

import (
	"context"
	"fmt"
	"net"
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

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// envConfig names the config file of a child that is to run as nats-server.
const envConfig = "WXHUB_NATSTEST_SERVER_CONFIG"

// Main runs the process as a nats-server when it was started as one by
// Start, and never returns then; otherwise it returns at once.
func Main() {
	path := os.Getenv(envConfig)
	if path == "" {
		return
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest:", err)
		os.Exit(2)
	}
	opts.NoSigs = true
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "natstest:", err)
		os.Exit(2)
	}
	s.ConfigureLogger()
	s.Start()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; s.Shutdown() }()
	s.WaitForShutdown()
	os.Exit(0)
}

// Server is one nats-server child process with JetStream.
type Server struct {
	Name        string
	Port        int // client port on 127.0.0.1
	ClusterPort int // 0 when not clustered
	Dir         string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
}

// URL is the server's client URL.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.Port) }

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// StartServer starts one standalone server with JetStream on a free port.
// It is killed when the test ends.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{Name: "n1", Port: FreePort(t), Dir: t.TempDir()}
	s.WriteConfig(t)
	s.Start(t)
	t.Cleanup(s.Kill)
	return s
}

// WriteConfig writes the config of a standalone server from s's fields; for
// a Server built by hand, before Start.
func (s *Server) WriteConfig(t testing.TB) { s.writeConfig(t, nil) }

func (s *Server) writeConfig(t testing.TB, routes []string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %q\nlisten: \"127.0.0.1:%d\"\n", s.Name, s.Port)
	fmt.Fprintf(&b, "jetstream { store_dir: %q }\n", filepath.Join(s.Dir, "js"))
	if s.ClusterPort != 0 {
		fmt.Fprintf(&b, "cluster { name: wxhub\n listen: \"127.0.0.1:%d\"\n routes: [%s] }\n", s.ClusterPort, strings.Join(routes, ", "))
		// Short timeouts so that a killed node is noticed in seconds.
		b.WriteString("ping_interval: \"1s\"\nping_max: 2\n")
	}
	// A system account, as in production; clients without login land in APP.
	b.WriteString("accounts {\n SYS { users: [{user: sys, password: sys}] }\n APP { jetstream: enabled, users: [{user: app, password: app}] }\n}\nsystem_account: SYS\nno_auth_user: app\n")
	if err := os.WriteFile(filepath.Join(s.Dir, "nats.conf"), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Start (re)starts the server process on its store and ports and waits until
// it accepts connections (at most 20 s).
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		t.Fatalf("natstest: %s already running", s.Name)
	}
	logf, err := os.OpenFile(filepath.Join(s.Dir, "nats.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envConfig+"="+filepath.Join(s.Dir, "nats.conf"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd, s.log = cmd, logf
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.Port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: %s not listening on %d after 20 s (log %s)", s.Name, s.Port, filepath.Join(s.Dir, "nats.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to exit. No-op when stopped.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	_ = s.log.Close()
	s.cmd = nil
}

// Running reports whether the process was started and not killed.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Cluster is n servers routed to each other, JetStream on each.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts n clustered servers on free ports and waits until
// JetStream has a meta leader (at most 30 s). They are killed when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := NewCluster(t, n)
	c.Start(t)
	c.WaitJetStream(t, 30*time.Second)
	return c
}

// NewCluster prepares n clustered servers (ports, stores, configs) without
// starting them: URL is known before any server runs.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	var routes []string
	for i := range n {
		s := &Server{Name: "n" + strconv.Itoa(i+1), Port: FreePort(t), ClusterPort: FreePort(t), Dir: t.TempDir()}
		c.Servers = append(c.Servers, s)
		routes = append(routes, fmt.Sprintf("\"nats-route://127.0.0.1:%d\"", s.ClusterPort))
	}
	for _, s := range c.Servers {
		s.writeConfig(t, routes)
	}
	return c
}

// Start starts every server not running; they are killed when the test ends.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	for _, s := range c.Servers {
		if !s.Running() {
			s.Start(t)
			t.Cleanup(s.Kill)
		}
	}
}

// URL is the comma-separated client URL list of every server.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Server returns the server named name (n1, n2...), nil if none.
func (c *Cluster) Server(name string) *Server {
	for _, s := range c.Servers {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// WaitJetStream waits until a JetStream account info request succeeds
// through the running servers (the meta group has a leader).
func (c *Cluster) WaitJetStream(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		if last = c.ping(); last == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("natstest: JetStream not available after %s: %v", within, last)
}

func (c *Cluster) ping() error {
	nc, err := nats.Connect(c.URL(), nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// StreamLeader names the server leading stream's group ("" when unknown).
func (c *Cluster) StreamLeader(stream string) (string, error) {
	nc, err := nats.Connect(c.URL(), nats.Timeout(time.Second))
	if err != nil {
		return "", err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	if s.CachedInfo().Cluster == nil {
		return "", nil
	}
	return s.CachedInfo().Cluster.Leader, nil
}
