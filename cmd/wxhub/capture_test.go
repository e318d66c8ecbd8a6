package main

import (
	"io"
	"os"
	"sync"
)

var stdoutMu sync.Mutex

// captureStdout runs f with os.Stdout redirected to a pipe and returns what it wrote.
func captureStdout(f func() error) (string, error) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	orig := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() { b, _ := io.ReadAll(r); out <- string(b) }()
	ferr := f()
	w.Close()
	os.Stdout = orig
	return <-out, ferr
}
