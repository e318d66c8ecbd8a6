// Command wxhub is the one binary of the hub: `run` (production), `demo`
// (everything in one process with the simulator), `sim` (the WeCom simulator),
// `send` (push a message), `dlq` (dead letters), `version`. The benchmarks and
// the load generator are cmd/wxhub-bench.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/wxhub/wxhub/internal/cli"
)

var version = "dev"

func commands() []cli.Command {
	return []cli.Command{
		{Name: "run", Summary: "run the hub (or some components) from a config file", Run: runCmd},
		{Name: "demo", Summary: "the whole hub on an embedded NATS with the WeCom simulator and sample legacy systems", Run: demoCmd},
		{Name: "sim", Summary: "the WeCom simulator: serve, say, event, sent, dropped", Run: simCmd},
		{Name: "send", Summary: "push a message through a running hub's API", Run: sendCmd},
		{Name: "dlq", Summary: "dead letters: list, show, replay, drop", Run: dlqCmd},
		{Name: "connector", Summary: "connector test NAME: the request an http or webhook connector would make, sending nothing", Run: connectorCmd},
		{Name: "hook", Summary: "hook test NAME --payload p.json: the message an inbound hook would queue, queueing nothing", Run: hookCmd},
		{Name: "new", Summary: "scaffold a connector project: new connector NAME [--lang go|node]", Run: newCmd},
		{Name: "trace", Summary: "the path of a user's last messages: callback, route, connector, reply, WeCom", Run: traceCmd},
		{Name: "erpdemo", Summary: "the sample ERP of the demo, on its own", Run: erpdemoCmd},
		{Name: "healthcheck", Summary: "exit 0 when a URL answers 200 (container healthchecks)", Run: healthcheckCmd},
		{Name: "version", Summary: "print the version", Run: func(context.Context, []string) error {
			fmt.Println("wxhub", version)
			return nil
		}},
	}
}

func main() { cli.Main("wxhub", commands(), os.Args) }
