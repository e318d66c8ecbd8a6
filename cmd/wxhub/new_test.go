package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewConnectorCommand(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    func(dir string) []string
		want    string
		wantErr string
	}{
		{"name first", func(d string) []string {
			return []string{"connector", "leave", "--dir", d, "--wxhub", "../.."}
		}, "wrote 8 files", ""},
		{"name last, node", func(d string) []string {
			return []string{"connector", "--lang", "node", "--dir", d, "--wxhub", "../..", "leave"}
		}, "npm install", ""},
		{"no name", func(d string) []string { return []string{"connector", "--dir", d} }, "", "usage"},
		{"http connector without a name", func(d string) []string { return []string{"http-connector", "--dir", d} }, "", "name the connector"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "leave")
			out, err := captureStdout(func() error { return newCmd(context.Background(), tt.args(dir)) })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out, tt.want) {
				t.Fatalf("out %q err %v, want %q", out, err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "routing.yaml")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
