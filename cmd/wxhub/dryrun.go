package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/wxhub/wxhub/config"
	httpconn "github.com/wxhub/wxhub/connectors/http"
	"github.com/wxhub/wxhub/connectors/http/ticketdemo"
	"github.com/wxhub/wxhub/connectors/webhook"
	"github.com/wxhub/wxhub/gateway/hooks"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/schemas"
)

// connectorCmd is `wxhub connector test NAME`: what an http or webhook
// connector would send for an event, and what it would answer, sending nothing.
func connectorCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "test" {
		return errors.New("usage: wxhub connector test NAME [--config wxhub.yaml] (--event e.json | --text T) [--response r.json] [--status N]")
	}
	fs := flag.NewFlagSet("connector test", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (default: the demo's connectors)")
	eventPath := fs.String("event", "", "the event: a wxhub.event/v1 JSON file, or just its data")
	text := fs.String("text", "", "instead of --event: a text message with this content")
	user := fs.String("user", "zhangsan", "the sender of --text")
	respPath := fs.String("response", "", "a response body to show the outcome and the replies for")
	status := fs.Int("status", 200, "the status of --response")
	name, err := parseNamed(fs, args[1:])
	if err != nil {
		return err
	}
	cfg, err := dryRunConfig(*cfgPath)
	if err != nil {
		return err
	}
	node, ok := cfg.Connectors[name]
	if !ok {
		return fmt.Errorf("no connector %q in connectors", name)
	}
	ev, err := dryRunEvent(*eventPath, *text, *user)
	if err != nil {
		return err
	}
	var resp []byte
	if *respPath != "" {
		if resp, err = os.ReadFile(*respPath); err != nil {
			return err
		}
	}
	var typ struct {
		Type string `yaml:"type"`
	}
	node.Decode(&typ)
	var out fmt.Stringer
	switch typ.Type {
	case "http":
		var sample *httpconn.SampleResponse
		if resp != nil {
			sample = &httpconn.SampleResponse{Status: *status, Body: resp}
		}
		out, err = httpconn.DryRun(ctx, name, &node, ev, sample)
	case "webhook":
		out, err = webhook.DryRun(ctx, name, &node, ev, resp)
	default:
		return fmt.Errorf("connector %q is of type %q: dry runs cover http and webhook connectors", name, typ.Type)
	}
	if err != nil {
		return err
	}
	fmt.Println(out.String())
	return nil
}

// hookCmd is `wxhub hook test NAME --payload p.json`: the message an inbound
// hook would queue for a payload, queueing nothing.
func hookCmd(_ context.Context, args []string) error {
	if len(args) == 0 || args[0] != "test" {
		return errors.New("usage: wxhub hook test NAME [--config wxhub.yaml] --payload p.json")
	}
	fs := flag.NewFlagSet("hook test", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (default: the demo's hooks)")
	payloadPath := fs.String("payload", "", "the payload the system would POST")
	name, err := parseNamed(fs, args[1:])
	if err != nil {
		return err
	}
	if *payloadPath == "" {
		return errors.New("--payload is required")
	}
	cfg, err := dryRunConfig(*cfgPath)
	if err != nil {
		return err
	}
	h, ok := cfg.Hooks.Hook(name)
	if !ok {
		return fmt.Errorf("no hook %q in hooks", name)
	}
	payload, err := os.ReadFile(*payloadPath)
	if err != nil {
		return err
	}
	msg, err := hooks.DryRun(h, payload)
	if errors.Is(err, hooks.ErrSkipped) {
		fmt.Println("skipped: the hook's skip_if holds for this payload; nothing would be queued")
		return nil
	}
	if err != nil {
		return err
	}
	out, _ := json.MarshalIndent(msg, "", "  ")
	fmt.Printf("would queue on wxhub.out.%s:\n%s\n", msg.App, out)
	return nil
}

// parseNamed parses flags given before or after the one positional NAME.
func parseNamed(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	var name string
	if fs.NArg() > 0 {
		name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return "", err
		}
	}
	if name == "" {
		return "", errors.New("name the connector or hook")
	}
	return name, nil
}

// dryRunConfig loads path, or without one the demo's connectors and hooks.
func dryRunConfig(path string) (*config.Config, error) {
	if path != "" {
		return config.Load(path)
	}
	cfg := &config.Config{}
	if err := hub.AddSections(cfg, ticketdemo.Snippet("http://"+ticketdemo.DefaultListen)); err != nil {
		return nil, err
	}
	cfg.Hooks = hooks.Examples()
	return cfg, nil
}

func dryRunEvent(path, text, user string) (*schemas.Event, error) {
	ev := &schemas.Event{SpecVersion: schemas.SpecVersion, ID: "dry-run-1", Source: "wecom/helpdesk", Type: "wxhub.in.text",
		Time: time.Now().UTC(), DataContentType: "application/json"}
	switch {
	case text != "":
		ev.Data = schemas.EventData{Channel: schemas.ChannelWeCom, App: "helpdesk", User: user, MsgType: "text", Content: text}
		return ev, nil
	case path == "":
		return nil, errors.New("give --event or --text")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, whole := probe["data"]; whole {
		if err := json.Unmarshal(raw, ev); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return ev, nil
	}
	if err := json.Unmarshal(raw, &ev.Data); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ev, nil
}
