package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/wecom/sim"
	"github.com/wxhub/wxhub/wecom/sim/load"
)

// loadCmd is the load generator (`wxhub-bench load`): virtual members of the
// simulated corp post callbacks to a gateway on this machine, bounded in count
// and time.
func loadCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	gw := fs.String("url", "http://127.0.0.1:8080", "the gateway (loopback only)")
	simCfgPath := fs.String("config", "", "simulator config with the app's keys and the members (empty: the demo corp)")
	app := fs.String("app", "helpdesk", "the app the members write to")
	users := fs.Int("users", 0, "write as members u0001..uN (they must be in the simulator's config: see --write-config); 0: the config's members")
	rate := fs.Float64("rate", 100, "offered messages per second; 0: closed loop, as fast as --concurrency allows")
	conc := fs.Int("concurrency", 0, "requests in flight at most (default 512 open loop, 64 closed loop)")
	duration := fs.Duration("duration", 10*time.Second, "stop after this long (at most 30m)")
	count := fs.Int("count", 0, "stop after this many (default rate × duration, or 10000 closed loop)")
	mix := fs.String("mix", load.DefaultMix.String(), "kinds and weights")
	prefix := fs.String("prefix", "echo ", "text messages start with this (\"echo \" reaches the echo connector)")
	writeCfg := fs.String("write-config", "", "write a simulator config with --users members to this file and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	scfg, err := sim.LoadConfig(*simCfgPath)
	if err != nil {
		return err
	}
	if *writeCfg != "" {
		if *users <= 0 {
			return errors.New("--write-config needs --users N")
		}
		scfg.Users = append(scfg.Users[:0:0], scfg.Users...)
		for _, u := range load.Users("u", *users) {
			scfg.Users = append(scfg.Users, sim.User{UserID: u, Name: u, Department: []int64{1}})
		}
		b, err := yaml.Marshal(scfg)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*writeCfg, b, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "simulator config with %d members written to %s (wxhub sim serve --config %s)\n", len(scfg.Users), *writeCfg, *writeCfg)
		return nil
	}
	var a *sim.App
	for i := range scfg.Apps {
		if scfg.Apps[i].Name == *app {
			a = &scfg.Apps[i]
		}
	}
	if a == nil {
		return fmt.Errorf("--app: no app %q in the simulator config", *app)
	}
	m, err := load.ParseMix(*mix)
	if err != nil {
		return err
	}
	var members []string
	if *users > 0 {
		members = load.Users("u", *users)
	} else {
		for _, u := range scfg.Users {
			members = append(members, u.UserID)
		}
	}
	cfg := load.Config{
		Target: load.Target{URL: *gw, App: a.Name, AgentID: a.AgentID, CorpID: scfg.CorpID, Token: a.Token, EncodingAESKey: a.EncodingAESKey},
		Users:  members, Rate: *rate, Concurrency: *conc, Duration: *duration, Mix: m, TextPrefix: *prefix,
		Progress: func(p load.Progress) {
			fmt.Fprintf(os.Stderr, "%5.1fs  sent %d  ok %d  failed %d  in flight %d\n", p.Elapsed.Seconds(), p.Sent, p.OK, p.Failed, p.InFlight)
		},
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	n := *count
	if n <= 0 {
		n = 10000
		if *rate > 0 {
			n = int(*rate*duration.Seconds()) + 1
		}
	}
	reqs, err := load.Prepare(cfg, n)
	if err != nil {
		return err
	}
	g, err := load.New(cfg)
	if err != nil {
		return err
	}
	defer g.Close()
	res, err := g.Run(ctx, reqs)
	if res == nil {
		return err
	}
	mode := fmt.Sprintf("open loop at %.0f/s", *rate)
	if *rate == 0 {
		mode = "closed loop"
	}
	fmt.Printf("%s, %d members, mix %s\n", mode, len(members), m)
	fmt.Printf("sent %d in %s: %d answered 200 (%.0f/s), %d failed (%s)\n", res.Sent, res.Elapsed.Round(time.Millisecond),
		res.OK, res.Throughput(), res.Failed, res.ErrorSummary())
	fmt.Printf("callback answer: p50 %s  p99 %s  p99.9 %s  max %s\n", res.Latency.Percentile(50), res.Latency.Percentile(99),
		res.Latency.Percentile(99.9), res.Latency.Max())
	if err != nil {
		return err
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d callbacks failed", res.Failed, res.Sent)
	}
	return nil
}
