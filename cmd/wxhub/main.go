// Command wxhub is the one binary of the hub: `run` (production), `demo`
// (everything in one process with the simulator), `sim` (the WeCom simulator),
// `send` (push a message), `dlq` (dead letters), `version`. The benchmarks and
// the load generator are cmd/wxhub-bench.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

var version = "dev"

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"run", "run the hub (or some components) from a config file", runCmd},
		{"demo", "the whole hub on an embedded NATS with the WeCom simulator and sample legacy systems", demoCmd},
		{"sim", "the WeCom simulator: serve, say, event, sent, dropped", simCmd},
		{"send", "push a message through a running hub's API", sendCmd},
		{"dlq", "dead letters: list, show, replay, drop", dlqCmd},
		{"connector", "connector test NAME: the request an http or webhook connector would make, sending nothing", connectorCmd},
		{"hook", "hook test NAME --payload p.json: the message an inbound hook would queue, queueing nothing", hookCmd},
		{"new", "scaffold a connector project: new connector NAME [--lang go|node]", newCmd},
		{"trace", "the path of a user's last messages: callback, route, connector, reply, WeCom", traceCmd},
		{"erpdemo", "the sample ERP of the demo, on its own", erpdemoCmd},
		{"healthcheck", "exit 0 when a URL answers 200 (container healthchecks)", healthcheckCmd},
		{"version", "print the version", func(context.Context, []string) error {
			fmt.Println("wxhub", version)
			return nil
		}},
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: wxhub <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'wxhub <command> -h' for a command's flags.")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands() {
		if c.name == os.Args[1] {
			err := c.run(ctx, os.Args[2:])
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "wxhub "+c.name+": "+err.Error())
				os.Exit(1)
			}
			return
		}
	}
	if os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		return
	}
	fmt.Fprintf(os.Stderr, "wxhub: unknown command %q\n", os.Args[1])
	usage()
	os.Exit(2)
}
