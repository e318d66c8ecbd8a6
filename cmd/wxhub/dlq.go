package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"go.uber.org/zap"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/config"
)

// dlqCmd works on WXHUB_DLQ directly over NATS, so it also works when the
// gateway is down. With an embedded hub, point --nats at its address.
func dlqCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dlq", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (its nats section says where the bus is)")
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS URL when no config is given")
	dataDir := fs.String("data-dir", "", "the embedded server's data dir, where its generated logins are (default ./data/nats, or nats.data_dir of --config)")
	stage := fs.String("stage", "", "list: only this stage (router, connector:erp, sender)")
	limit := fs.Int("limit", 50, "list: at most this many")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: wxhub dlq [flags] list | show SEQ | replay SEQ | drop SEQ")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return flag.ErrHelp
	}
	bcfg := bus.Config{URL: *natsURL, DataDir: *dataDir}
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		bcfg = c.NATS
		if *dataDir != "" {
			bcfg.DataDir = *dataDir
		}
		if bcfg.URL == "" {
			bcfg.URL = fmt.Sprintf("nats://%s:%d", orDefault(bcfg.Host, "127.0.0.1"), portOrDefault(bcfg.Port))
		}
	}
	if bcfg.Login == "" {
		bcfg.Login = bus.LoginCLI // from the install's credentials file, when there is one
	}
	b, err := bus.Dial(ctx, bcfg, zap.NewNop()) // a reader of the DLQ declares nothing
	if err != nil {
		return err
	}
	defer b.Close()
	verb := fs.Arg(0)
	if verb == "list" {
		entries, err := b.ListDLQ(ctx, bus.DLQFilter{Stage: *stage, Limit: *limit})
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tSTORED\tSTAGE\tATTEMPTS\tSUBJECT\tREASON")
		for _, e := range entries {
			d := e.Letter.Data
			fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", e.Seq, e.Stored.Format("2006-01-02 15:04:05"), d.Stage, d.Attempts, d.Subject, truncate(d.Reason, 80))
		}
		return tw.Flush()
	}
	if fs.NArg() != 2 {
		return errors.New("dlq " + verb + " needs a sequence number")
	}
	seq, err := strconv.ParseUint(fs.Arg(1), 10, 64)
	if err != nil {
		return fmt.Errorf("sequence %q: %w", fs.Arg(1), err)
	}
	switch verb {
	case "show":
		e, err := b.GetDLQ(ctx, seq)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(e)
	case "replay":
		if err := b.ReplayDLQ(ctx, seq); err != nil {
			return err
		}
		fmt.Printf("replayed %d\n", seq)
	case "drop":
		if err := b.DropDLQ(ctx, seq); err != nil {
			return err
		}
		fmt.Printf("dropped %d\n", seq)
	default:
		return fmt.Errorf("unknown dlq verb %q (list, show, replay, drop)", verb)
	}
	return nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func portOrDefault(p int) int {
	if p <= 0 {
		return 4222
	}
	return p
}
