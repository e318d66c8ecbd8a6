package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wxhub/wxhub/schemas"
	"github.com/wxhub/wxhub/wecom/sim"
)

// simCmd: `sim serve` runs the simulator; the other verbs talk to a running one
// (a `sim serve` or the one inside `wxhub demo`) over its /sim/ endpoints.
func simCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		simUsage()
		return flag.ErrHelp
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet("sim "+verb, flag.ContinueOnError)
	simURL := fs.String("sim", envOr("WXHUB_SIM_URL", "http://"+sim.DefaultListen), "the running simulator (default $WXHUB_SIM_URL or the demo's)")
	app := fs.String("app", "helpdesk", "the app (or account) the user writes to")
	switch verb {
	case "serve":
		cfgPath := fs.String("config", "", "simulator config (YAML); empty: the demo corp")
		if err := fs.Parse(args); err != nil {
			return err
		}
		cfg, err := sim.LoadConfig(*cfgPath)
		if err != nil {
			return err
		}
		log, err := newLogger("info", "console")
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "WeCom simulator on http://%s (callbacks to %s)\n", cfg.WithDefaults().Listen, cfg.WithDefaults().GatewayURL)
		return sim.Serve(ctx, cfg, log)
	case "say":
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 2 {
			return fmt.Errorf("usage: wxhub sim say [--app APP] USER TEXT")
		}
		d, err := sim.NewRemote(*simURL).Say(ctx, *app, fs.Arg(0), fs.Arg(1))
		return printDelivery(d, err)
	case "voice":
		media := fs.String("media", "", "media id of the voice (WeCom voice has no transcript)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() < 1 {
			return fmt.Errorf("usage: wxhub sim voice [--app ACCOUNT] USER [RECOGNITION]")
		}
		d, err := sim.NewRemote(*simURL).Voice(ctx, *app, fs.Arg(0), *media, fs.Arg(1))
		return printDelivery(d, err)
	case "event":
		key := fs.String("key", "", "EventKey (click, view, scancode_*)")
		scan := fs.String("scan", "", "ScanResult of a scancode_push/scancode_waitmsg event")
		task := fs.String("task", "", "TaskId of a template_card_event")
		code := fs.String("response-code", "", "ResponseCode of a template_card_event")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 2 {
			return fmt.Errorf("usage: wxhub sim event [--app APP] [--key K] USER EVENT (click, view, enter_agent, subscribe, scancode_waitmsg, template_card_event, ...)")
		}
		ev := schemas.EventData{Event: fs.Arg(1), EventKey: *key, TaskID: *task, ResponseCode: *code}
		if *scan != "" {
			ev.ScanType, ev.ScanResult = "qrcode", *scan
		}
		d, err := sim.NewRemote(*simURL).Event(ctx, *app, fs.Arg(0), ev)
		return printDelivery(d, err)
	case "sent", "dropped":
		user := fs.String("user", "", "only messages to this user")
		asJSON := fs.Bool("json", false, "print JSON")
		wait := fs.Duration("wait", 0, "wait up to this long for at least one message")
		if err := fs.Parse(args); err != nil {
			return err
		}
		r := sim.NewRemote(*simURL)
		deadline := time.Now().Add(*wait)
		for {
			var msgs []sim.SentMessage
			var err error
			if verb == "sent" {
				msgs, err = r.Sent(ctx, sim.SentFilter{User: *user})
			}
			if err != nil {
				return err
			}
			// What WeCom accepted (errcode 0) but delivered to no one, with the reason.
			dropped, err := r.Dropped(ctx, sim.SentFilter{User: *user})
			if err != nil {
				return err
			}
			if len(msgs)+len(dropped) > 0 || time.Now().After(deadline) {
				if verb == "dropped" && *asJSON {
					return printJSON(dropped)
				}
				return printSent(msgs, dropped, *asJSON)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	case "stats":
		if err := fs.Parse(args); err != nil {
			return err
		}
		st, err := sim.NewRemote(*simURL).Stats(ctx)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(st)
	case "reset":
		if err := fs.Parse(args); err != nil {
			return err
		}
		return sim.NewRemote(*simURL).Reset(ctx)
	default:
		simUsage()
		return fmt.Errorf("unknown sim verb %q", verb)
	}
}

func simUsage() {
	fmt.Fprint(os.Stderr, `usage: wxhub sim <verb> [flags]
  serve  [--config sim.yaml]             run the simulator (the demo corp by default)
  say    [--app A] USER TEXT             USER writes TEXT to app A (encrypted callback to the gateway)
  voice  [--app A] USER [RECOGNITION]    a voice message (Official Accounts carry the transcript)
  event  [--app A] [--key K] USER EVENT  an event: click, view, enter_agent, scancode_waitmsg, ...
  sent   [--user U] [--json] [--wait D]  what the hub sent through the WeCom API, and what WeCom dropped (with why)
  dropped [--user U] [--json]            only what WeCom accepted but dropped: duplicate, member_minute_limit, ...
  stats | reset
Every verb but serve talks to --sim (default $WXHUB_SIM_URL or http://127.0.0.1:8090).
A load of many virtual members: wxhub-bench load (cmd/wxhub-bench).
`)
}

func printDelivery(d *sim.Delivery, err error) error {
	if err != nil {
		return err
	}
	fmt.Printf("delivered to %s: HTTP %d after %d attempt(s) in %s\n", d.URL, d.Status, d.Attempts, d.Duration.Round(time.Millisecond))
	for _, f := range d.Failures {
		fmt.Println("  failed attempt:", f)
	}
	if d.ReplyContent != "" {
		fmt.Println("passive reply:", d.ReplyContent)
	}
	return nil
}

// printSent lists sent and dropped messages by time; --json prints the sent
// ones only (as before drops were listed), `sim dropped --json` the drops.
func printSent(msgs []sim.SentMessage, dropped []sim.DroppedMessage, asJSON bool) error {
	if asJSON {
		return printJSON(msgs)
	}
	rows := make([]sim.DroppedMessage, 0, len(msgs)+len(dropped))
	for _, m := range msgs {
		rows = append(rows, sim.DroppedMessage{SentMessage: m})
	}
	rows = append(rows, dropped...)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Seq < rows[j].Seq })
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tAPP\tTO\tTYPE\tSTATUS\tCONTENT")
	for _, m := range rows {
		to := m.User
		if m.ChatID != "" {
			to = "chat:" + m.ChatID
		}
		status := "delivered"
		if m.Reason != "" {
			status = "DROPPED: " + m.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Time.Local().Format("15:04:05"), m.App, to, m.MsgType, status,
			truncate(strings.ReplaceAll(m.Content, "\n", " ⏎ "), 100))
	}
	if len(dropped) > 0 {
		fmt.Fprintln(tw, "\n(DROPPED: WeCom answered errcode 0 but delivered nothing; see docs/outbound.md, \"Dropped messages\")")
	}
	return tw.Flush()
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
