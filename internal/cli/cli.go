// Package cli runs a binary of subcommands (wxhub, wxhub-bench): dispatch,
// usage, exit codes and the interrupt that cancels the command's context.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	Run     func(ctx context.Context, args []string) error
}

// Main runs the command args[1] names with args[2:] and exits: 0 on success
// or -h, 1 on an error (printed as "prog name: error"), 2 on a bad command.
// SIGINT and SIGTERM cancel the command's context.
func Main(prog string, commands []Command, args []string) {
	if len(args) < 2 {
		usage(prog, commands)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands {
		if c.Name != args[1] {
			continue
		}
		err := c.Run(ctx, args[2:])
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, prog+" "+c.Name+": "+err.Error())
			stop()
			os.Exit(1)
		}
		return
	}
	if args[1] == "-h" || args[1] == "--help" || args[1] == "help" {
		usage(prog, commands)
		return
	}
	fmt.Fprintf(os.Stderr, "%s: unknown command %q\n", prog, args[1])
	usage(prog, commands)
	os.Exit(2)
}

func usage(prog string, commands []Command) {
	width := 0
	for _, c := range commands {
		width = max(width, len(c.Name))
	}
	fmt.Fprintf(os.Stderr, "usage: %s <command> [flags]\n\ncommands:\n", prog)
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-*s %s\n", width+1, c.Name, c.Summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun '%s <command> -h' for a command's flags.\n", prog)
}
