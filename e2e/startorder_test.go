package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/internal/natstest"
	"github.com/wxhub/wxhub/wecom/sim"
)

func TestMain(m *testing.M) {
	natstest.Main()
	chaosChild()
	os.Exit(m.Run())
}

// Every component started at once as its own process, before the 3-node
// NATS cluster exists: each waits for NATS and for what it needs, none
// exits, all become ready, and a message makes the round trip.
func TestAllStartedAtOnceOnAFreshCluster(t *testing.T) {
	scfg := sim.DemoConfig()
	s, err := sim.New(scfg.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	scfg.Listen = strings.TrimPrefix(s.URL(), "http://")
	cluster := natstest.NewCluster(t, 3)

	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.SetGatewayURL("http://" + gw.Addr().String())
	cfg := hub.DemoConfig(scfg, t.TempDir(), gw.Addr().String())
	cfg.NATS.URL, cfg.NATS.Replicas = cluster.URL(), 3
	setup, err := hub.Configure(cfg, hub.Builtins)
	if err != nil {
		t.Fatal(err)
	}
	var conns []string
	for _, c := range setup.Connectors {
		conns = append(conns, "connector:"+c.Name)
	}
	procs := [][]string{{"gateway"}, {"router"}, {"sender"}, conns}
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		name string
		err  error
	}
	ready := make(chan string, len(procs))
	exited := make(chan result, len(procs))
	for _, only := range procs {
		o := hub.Options{Only: map[string]bool{}, PollWait: 200 * time.Millisecond,
			Ready: func(*hub.Hub) { ready <- strings.Join(only, ",") }}
		for _, c := range only {
			o.Only[c] = true
		}
		if only[0] == "gateway" {
			o.Listener = gw
		}
		// Each process gets its own metrics listener, as in compose.
		pcfg := *setup
		pc := *cfg
		pc.Metrics.Listen = "127.0.0.1:0"
		pcfg.Config = &pc
		go func() {
			err := hub.Run(ctx, &pcfg, zap.NewNop(), o)
			exited <- result{strings.Join(only, ","), err}
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range procs {
			select {
			case <-exited:
			case <-time.After(40 * time.Second):
				t.Error("a process did not stop")
				return
			}
		}
	})
	time.Sleep(time.Second) // every process is now waiting for NATS
	start := time.Now()
	cluster.Start(t)
	for n := 0; n < len(procs); {
		select {
		case p := <-ready:
			n++
			t.Logf("%s ready %s after the cluster started", p, time.Since(start).Round(time.Millisecond))
		case r := <-exited:
			t.Fatalf("process %s exited while starting: %v", r.name, r.err)
		case <-time.After(90 * time.Second):
			t.Fatalf("%d of %d processes ready after 90 s", n, len(procs))
		}
	}
	// The whole path works: a WeChat message is answered through every process.
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	defer scancel()
	for {
		_, err := s.Say(sctx, "helpdesk", "zhangsan", "你好")
		if err == nil {
			break
		}
		if errors.Is(err, context.DeadlineExceeded) || sctx.Err() != nil {
			t.Fatalf("callback never accepted: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, err := s.WaitSent(sctx, func(m sim.SentMessage) bool { return m.User == "zhangsan" }); err != nil {
		t.Fatalf("no answer to zhangsan: %v", err)
	}
}
