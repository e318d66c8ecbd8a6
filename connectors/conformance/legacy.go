package conformance

import (
	"net"
	"net/http"
	"sync"
	"testing"
)

// Mode is how the legacy system misbehaves.
type Mode string

const (
	// ModeTimeout: a request hangs until the client gives up (the connector's
	// own timeout) or Recover is called, which answers it 504.
	ModeTimeout Mode = "timeout"
	// Mode500: a request is answered 500 Internal Server Error at once.
	Mode500 Mode = "500"
	// ModeHold: a request waits until Recover, then is served normally; the
	// kit uses it to have events in flight when the connector is stopped.
	ModeHold Mode = "hold"
)

// Legacy is the legacy system the connector under test calls, with a switch
// to make it fail. A connector's conformance test wraps its demo or fake
// legacy system in NewLegacyServer, or implements Legacy itself.
type Legacy interface {
	// Fail makes the next n requests misbehave as mode; n <= 0: every request
	// until Recover.
	Fail(mode Mode, n int)
	// Recover serves every request normally again, including held ones.
	Recover()
	// Calls is the number of requests received so far, failed ones included.
	Calls() int
}

// LegacyServer is an HTTP server on 127.0.0.1 that passes requests to next
// unless told to fail. Safe for concurrent use.
type LegacyServer struct {
	srv  *http.Server
	url  string
	next http.Handler

	mu       sync.Mutex
	mode     Mode
	left     int           // failures left; <= 0 with a mode: until Recover
	released chan struct{} // closed by Recover: releases hanging and held requests
	open     bool          // released is not closed yet
	calls    int
}

// NewLegacyServer serves next on a free loopback port until the test ends.
func NewLegacyServer(t testing.TB, next http.Handler) *LegacyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("conformance: legacy listen: %v", err)
	}
	s := &LegacyServer{next: next, url: "http://" + ln.Addr().String()}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go func() { _ = s.srv.Serve(ln) }()
	t.Cleanup(func() {
		s.Recover()
		_ = s.srv.Close()
	})
	return s
}

// URL is the server's base URL, e.g. http://127.0.0.1:41234.
func (s *LegacyServer) URL() string { return s.url }

// Fail implements Legacy.
func (s *LegacyServer) Fail(mode Mode, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		s.released, s.open = make(chan struct{}), true
	}
	s.mode, s.left = mode, n
}

// Recover implements Legacy.
func (s *LegacyServer) Recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open {
		close(s.released)
		s.open = false
	}
	s.mode, s.left = "", 0
}

// Calls implements Legacy.
func (s *LegacyServer) Calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *LegacyServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	mode, released := s.mode, s.released
	if mode != "" && s.left > 0 {
		if s.left--; s.left == 0 {
			s.mode = "" // the next request works; this one still fails
		}
	}
	s.mu.Unlock()

	switch mode {
	case Mode500:
		http.Error(w, "legacy system failing (conformance test)", http.StatusInternalServerError)
		return
	case ModeTimeout:
		select {
		case <-r.Context().Done():
		case <-released:
		}
		http.Error(w, "legacy system timed out (conformance test)", http.StatusGatewayTimeout)
		return
	case ModeHold:
		select {
		case <-r.Context().Done():
			return
		case <-released:
		}
	}
	s.next.ServeHTTP(w, r)
}
