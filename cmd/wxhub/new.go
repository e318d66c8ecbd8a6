package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/wxhub/wxhub/internal/scaffold"
)

// sourceDir is the wxhub checkout the binary was built from (make build sets
// it), the default of `wxhub new connector --wxhub`.
var sourceDir = ""

// newCmd: `wxhub new connector NAME` scaffolds a standalone connector project.
func newCmd(_ context.Context, args []string) error {
	if len(args) > 0 && args[0] == "http-connector" {
		return newHTTPConnector(args[1:])
	}
	if len(args) == 0 || args[0] != "connector" {
		fmt.Fprint(os.Stderr, `usage: wxhub new connector NAME [--lang go|node] [--dir DIR] [--keyword WORD] [--module PATH] [--wxhub CHECKOUT]
       wxhub new http-connector NAME [--dir DIR] [--keyword WORD] [--url TEMPLATE]
  A standalone connector project: the handler, a main reading the WXHUB_* settings,
  a conformance-kit test against a fake legacy service, routing.yaml, a Dockerfile, a README.
`)
		return flag.ErrHelp
	}
	fs := flag.NewFlagSet("new connector", flag.ContinueOnError)
	lang := fs.String("lang", scaffold.LangGo, "go or node")
	dir := fs.String("dir", "", "where to write the project (default ./NAME)")
	keyword := fs.String("keyword", "", "what the routing rule matches in a text (default NAME)")
	module := fs.String("module", "", "the Go module path (default example.com/NAME-connector)")
	wxhub := fs.String("wxhub", defaultCheckout(), "a wxhub checkout: the generated go.mod replaces github.com/wxhub/wxhub with it")
	// NAME may come before or after the flags.
	rest := args[1:]
	var name string
	if len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		name, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 || name == "" {
		return errors.New("usage: wxhub new connector NAME [flags]")
	}
	files, err := scaffold.Generate(scaffold.Options{Name: name, Lang: *lang, Dir: *dir, Keyword: *keyword, Module: *module, Wxhub: *wxhub})
	if err != nil {
		return err
	}
	out := *dir
	if out == "" {
		out = name
	}
	slices.Sort(files)
	fmt.Printf("wrote %d files to %s: %v\n", len(files), out, files)
	if *lang == scaffold.LangNode {
		fmt.Printf("next: cd %s && npm install && go test ./...   (then see README.md)\n", out)
	} else {
		fmt.Printf("next: cd %s && go test ./...   (then see README.md)\n", out)
	}
	return nil
}

// defaultCheckout is the checkout the binary was built from if it still is
// one, else the current directory if it is one, else "" (--wxhub required).
func defaultCheckout() string {
	for _, d := range []string{sourceDir, "."} {
		if d != "" && scaffold.IsCheckout(d) {
			abs, err := filepath.Abs(d)
			if err == nil {
				return abs
			}
		}
	}
	return ""
}
