package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/internal/natstest"
	"github.com/wxhub/wxhub/wecom/sim"
)

// Child mode: the test binary re-executed as one wxhub process (`wxhub run
// --only ...` on the chaos cluster), so that it can be killed for real.
const envChaosChild = "WXHUB_CHAOS_ONLY"

const chaosMemberMinute = 5000

// chaosConfig is the hub config every chaos process builds the same way.
func chaosConfig(simURL, gwAddr, natsURL, dir string) (*hub.Setup, error) {
	scfg := sim.DemoConfig()
	scfg.Listen = strings.TrimPrefix(simURL, "http://")
	cfg := hub.DemoConfig(scfg, dir, gwAddr)
	cfg.NATS.URL, cfg.NATS.Replicas = natsURL, 3
	// The load sends each member far more than WeCom's 30 a minute: raised
	// here and in the simulator, or the run would measure the limit.
	cfg.Sender.Limits.PerMemberMinute, cfg.Sender.Limits.PerMemberHour = chaosMemberMinute, 100000
	return hub.Configure(cfg, hub.Builtins)
}

func chaosChild() {
	only := os.Getenv(envChaosChild)
	if only == "" {
		return
	}
	setup, err := chaosConfig(os.Getenv("WXHUB_CHAOS_SIM"), os.Getenv("WXHUB_CHAOS_GW"), os.Getenv("WXHUB_CHAOS_NATS"), os.Getenv("WXHUB_CHAOS_DIR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o := hub.Options{Only: map[string]bool{}, PollWait: 200 * time.Millisecond}
	for _, c := range strings.Split(only, ",") {
		o.Only[c] = true
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log, _ := zap.NewDevelopment()
	if err := hub.Run(ctx, setup, log.WithOptions(zap.IncreaseLevel(zap.InfoLevel)), o); err != nil {
		fmt.Fprintln(os.Stderr, "chaos child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// chaosProc is one component process of the chaos run.
type chaosProc struct {
	name string
	only string
	env  []string
	log  string
	cmd  *exec.Cmd
}

func (p *chaosProc) start(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(os.Args[0], "-test.run=^$")
	p.cmd.Env = append(append(os.Environ(), p.env...), envChaosChild+"="+p.only)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

func (p *chaosProc) kill() {
	if p.cmd != nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		p.cmd = nil
	}
}

// The short chaos run (make test; `make chaos` sets WXHUB_CHAOS_LONG=1 for
// the long one): a 3-node cluster, every component its own process, members
// talking through the simulator (which retries like WeChat), and meanwhile
// kill -9 + restart of the stream leader's NATS node, the router, the
// connectors, the sender and the gateway; with WXHUB_CHAOS_LONG also a
// rolling restart of every process. Every acknowledged message must be
// answered, in order per member, none refused during the node's failure.
func TestChaos(t *testing.T) {
	long := os.Getenv("WXHUB_CHAOS_LONG") != ""
	var err error
	// Each member talks until the last fault is over (a few hundred messages
	// in the short run), one message every gap.
	members, gap := 8, 200*time.Millisecond
	if long {
		members, gap = 20, 50*time.Millisecond
	}
	faultsDone := make(chan struct{})
	scfg := sim.DemoConfig()
	scfg.Limits.MemberPerMinute, scfg.Limits.MemberPerHour = chaosMemberMinute, 100000
	dir := t.TempDir()
	if long { // keep the processes' logs for the report's reader
		if dir, err = os.MkdirTemp("", "wxhub-chaos-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("logs in %s", dir)
	}
	s, err := sim.New(scfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	gwAddr := "127.0.0.1:" + fmt.Sprint(natstest.FreePort(t))
	s.SetGatewayURL("http://" + gwAddr)
	cluster := natstest.StartCluster(t, 3)
	env := []string{"WXHUB_CHAOS_SIM=" + s.URL(), "WXHUB_CHAOS_GW=" + gwAddr, "WXHUB_CHAOS_NATS=" + cluster.URL(), "WXHUB_CHAOS_DIR=" + dir}
	setup, err := chaosConfig(s.URL(), gwAddr, cluster.URL(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var conns []string
	for _, c := range setup.Connectors {
		conns = append(conns, "connector:"+c.Name)
	}
	procs := map[string]*chaosProc{}
	for _, p := range []*chaosProc{
		{name: "gateway", only: "gateway"}, {name: "router", only: "router"},
		{name: "sender", only: "sender"}, {name: "connectors", only: strings.Join(conns, ",")},
	} {
		p.env, p.log = env, filepath.Join(dir, p.name+".log")
		procs[p.name] = p
		p.start(t)
		t.Cleanup(p.kill)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// Ready: the gateway accepts a callback and a reply comes back.
	waitUp := func(what string, within time.Duration) {
		deadline := time.Now().Add(within)
		for {
			c, err := net.DialTimeout("tcp", gwAddr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				log, _ := os.ReadFile(procs["gateway"].log)
				t.Fatalf("%s: gateway not listening after %s; its log ends:\n%s", what, within, tail(log, 40))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUp("start", 2*time.Minute) // a fresh 3-node cluster elects and declares R3 streams and buckets first
	// Every component is up (not only the gateway): a callback is answered.
	readyCtx, readyCancel := context.WithTimeout(ctx, 2*time.Minute)
	ready := s.Config().Users[0].UserID
	if _, err := s.Say(readyCtx, "helpdesk", ready, "echo chaos-ready"); err != nil {
		t.Fatalf("start: the ready callback: %v", err)
	}
	if _, err := s.WaitSent(readyCtx, func(m sim.SentMessage) bool { return m.User == ready && strings.Contains(m.Content, "chaos-ready") }); err != nil {
		log, _ := os.ReadFile(procs["sender"].log)
		t.Fatalf("start: no reply to the ready callback within 2 min: %v; the sender's log ends:\n%s", err, tail(log, 40))
	}
	readyCancel()

	type said struct {
		user, text string
		at         time.Time
	}
	var mu sync.Mutex
	var acked []said
	refused := 0
	var lat []time.Duration // each callback until WeChat's (simulated) answer, retries included
	var firstRefusal error
	var refusedAt []time.Time // when WeChat first tried each refused callback
	var wg sync.WaitGroup
	start := time.Now()
	var users []string
	for _, u := range s.Config().Users {
		users = append(users, u.UserID)
	}
	members = min(members, len(users))
	for m := range members {
		user := users[m]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-faultsDone:
					return
				default:
				}
				text := fmt.Sprintf("echo %s-%04d", user, i)
				t0 := time.Now()
				_, err := s.Say(ctx, "helpdesk", user, text)
				mu.Lock()
				lat = append(lat, time.Since(t0))
				if err == nil {
					acked = append(acked, said{user, text, time.Now()})
				} else {
					if firstRefusal == nil {
						firstRefusal = err
					}
					refused++
					refusedAt = append(refusedAt, t0)
				}
				mu.Unlock()
				time.Sleep(gap)
			}
		}()
	}
	// Faults, one after the other, while the load runs.
	type kill struct {
		what           string
		killed, backAt time.Time
	}
	var kills []kill
	restartProc := func(name string) {
		p := procs[name]
		k := kill{what: "kill -9 " + name, killed: time.Now()}
		p.kill()
		time.Sleep(500 * time.Millisecond)
		p.start(t)
		k.backAt = time.Now()
		kills = append(kills, k)
	}
	time.Sleep(2 * time.Second)
	leader, err := cluster.StreamLeader("WXHUB_IN")
	if err != nil || leader == "" {
		t.Fatalf("stream leader %q: %v", leader, err)
	}
	k := kill{what: "kill -9 nats " + leader + " (WXHUB_IN leader)", killed: time.Now()}
	cluster.Server(leader).Kill()
	time.Sleep(3 * time.Second)
	cluster.Server(leader).Start(t)
	k.backAt = time.Now()
	kills = append(kills, k)
	// A callback counts as refused during the node's failure when WeChat's
	// first try came while the node was down or its streams were electing
	// leaders again (up to 5 s after its restart); the gateway's kill, later,
	// refuses the callbacks of its half second down (one gateway here; compose
	// runs two behind a load balancer).
	nodeFrom, nodeTo := k.killed, k.backAt.Add(5*time.Second)
	for _, name := range []string{"router", "connectors", "sender", "gateway"} {
		time.Sleep(2 * time.Second)
		restartProc(name)
		if name == "gateway" {
			waitUp("gateway restart", 30*time.Second)
		}
	}
	if long {
		for _, name := range []string{"gateway", "router", "connectors", "sender"} {
			time.Sleep(2 * time.Second)
			p := procs[name]
			k := kill{what: "SIGTERM " + name, killed: time.Now()}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			_ = p.cmd.Wait()
			p.cmd = nil
			p.start(t)
			k.backAt = time.Now()
			kills = append(kills, k)
			if name == "gateway" {
				waitUp("rolling gateway", 30*time.Second)
			}
		}
	}
	time.Sleep(2 * time.Second) // load after the last restart too
	close(faultsDone)
	wg.Wait()

	// Every acknowledged message answered, once, in order per member.
	answered := func() map[string][]sim.SentMessage {
		by := map[string][]sim.SentMessage{}
		for _, m := range s.Sent() {
			if !strings.Contains(m.Content, "chaos-ready") { // the start's probe, not part of the run
				by[m.User] = append(by[m.User], m)
			}
		}
		return by
	}
	deadline := time.Now().Add(60 * time.Second)
	var lost []string
	for {
		by := answered()
		lost = lost[:0]
		mu.Lock()
		for _, a := range acked {
			found := slices.ContainsFunc(by[a.user], func(m sim.SentMessage) bool { return strings.HasSuffix(m.Content, strings.TrimPrefix(a.text, "echo ")) })
			if !found {
				lost = append(lost, a.text)
			}
		}
		mu.Unlock()
		if len(lost) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(lost) > 0 && os.Getenv("WXHUB_CHAOS_DUMP") != "" {
		for _, p := range procs { // goroutine dumps into the logs, for the diagnosis
			if p.cmd != nil {
				_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			}
		}
		time.Sleep(time.Second)
	}
	refusedDuringNode := 0
	mu.Lock()
	for _, at := range refusedAt {
		if !at.Before(nodeFrom.Add(-3*time.Second)) && at.Before(nodeTo) {
			refusedDuringNode++
		}
	}
	mu.Unlock()
	by := answered()
	dups, outOfOrder, delivered := 0, 0, 0
	for _, msgs := range by {
		seen := map[string]bool{}
		last := ""
		for _, m := range msgs {
			delivered++
			if seen[m.Content] {
				dups++
			}
			seen[m.Content] = true
			if m.Content < last {
				outOfOrder++
			}
			last = m.Content
		}
	}
	// Recovery: from each restart to the first answer after it.
	sent := s.Sent()
	var report strings.Builder
	fmt.Fprintf(&report, "chaos: %d members talking for %s, one message each every %s\n", members, time.Since(start).Round(time.Second), gap)
	fmt.Fprintf(&report, "acknowledged %d, delivered %d, lost %d, duplicates %d, out of order %d, refused %d (during the node failure %d)\n",
		len(acked), delivered, len(lost), dups, outOfOrder, refused, refusedDuringNode)
	if firstRefusal != nil {
		fmt.Fprintf(&report, "first refusal: %v\n", firstRefusal)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		fmt.Fprintf(&report, "callback latency (WeChat's retries included) p50 %s, p99 %s, max %s\n",
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
	for _, k := range kills {
		rec := "none after it"
		for _, m := range sent {
			if m.Time.After(k.backAt) {
				rec = m.Time.Sub(k.backAt).Round(10 * time.Millisecond).String()
				break
			}
		}
		fmt.Fprintf(&report, "  %-40s down %-6s first answer after restart %s\n", k.what, k.backAt.Sub(k.killed).Round(10*time.Millisecond), rec)
	}
	t.Log(report.String())
	if out := os.Getenv("WXHUB_CHAOS_REPORT"); out != "" {
		_ = os.WriteFile(out, []byte(report.String()), 0o644)
	}
	if len(acked) < 100 || refused > len(acked)/10 {
		t.Errorf("only %d messages acknowledged, %d refused (first refusal: %v); logs in %s", len(acked), refused, firstRefusal, dir)
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		t.Errorf("%d acknowledged messages never answered (first %q); logs in %s", len(lost), lost[0], dir)
	}
	if outOfOrder > 0 {
		t.Errorf("%d answers out of order", outOfOrder)
	}
	// Asserted in the long run (make chaos) only: a stream's leader election
	// on this shared 2-core machine sometimes outlasts WeChat's three tries.
	if long && refusedDuringNode > 0 {
		t.Errorf("%d callbacks refused during the NATS node's failure", refusedDuringNode)
	}
}

// tail is the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
