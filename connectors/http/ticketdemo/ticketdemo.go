// Package ticketdemo is a sample ticketing service for the demo and the
// tests of the http connector: a small JSON API that the `tickets` http
// connector instance (Snippet) queries to answer "工单 77" with no Go code
// for that integration.
//
//	GET /tickets            200 [Ticket]
//	GET /tickets/{id}       200 Ticket | 404 {"error": "no such ticket"}
//	GET /healthz            200 ok
//
// With Config.Token set, /tickets* want "Authorization: Bearer <token>" (401 otherwise).
package ticketdemo

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"
)

// DefaultListen is the service's address in `wxhub demo`.
const DefaultListen = "127.0.0.1:8082"

// DemoToken is the bearer token the demo's service wants and Snippet sends.
const DemoToken = "demo-tickets-token"

// Ticket is one ticket as the API returns it.
type Ticket struct {
	ID       int       `json:"id"`
	Title    string    `json:"title"`
	Status   string    `json:"status"` // open, in_progress, resolved
	Assignee string    `json:"assignee,omitempty"`
	Updated  time.Time `json:"updated"`
}

// Config configures the service; the zero value serves the sample tickets without auth.
type Config struct {
	// Token, if set, is the bearer token every /tickets request must carry.
	Token string
	// Tickets replace the sample tickets.
	Tickets []Ticket
}

// Server is the service; an http.Handler, safe for concurrent use.
type Server struct {
	token string
	mux   *http.ServeMux
	mu    sync.Mutex
	byID  map[int]Ticket
	srv   *http.Server
	ln    net.Listener
}

// Sample returns the sample tickets.
func Sample() []Ticket {
	t := time.Date(2026, 11, 30, 9, 30, 0, 0, time.UTC)
	return []Ticket{
		{ID: 77, Title: "打印机卡纸（三楼）", Status: "in_progress", Assignee: "lisi", Updated: t},
		{ID: 78, Title: "VPN 无法连接", Status: "open", Updated: t.Add(time.Hour)},
		{ID: 1001, Title: "新员工开通邮箱", Status: "resolved", Assignee: "wangwu", Updated: t.Add(2 * time.Hour)},
	}
}

// New returns the service.
func New(cfg Config) *Server {
	s := &Server{token: cfg.Token, mux: http.NewServeMux(), byID: map[int]Ticket{}}
	tickets := cfg.Tickets
	if tickets == nil {
		tickets = Sample()
	}
	for _, t := range tickets {
		s.byID[t.ID] = t
	}
	s.mux.HandleFunc("GET /tickets", s.auth(s.list))
	s.mux.HandleFunc("GET /tickets/{id}", s.auth(s.get))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) })
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Put adds or replaces a ticket.
func (s *Server) Put(t Ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[t.ID] = t
}

// Start serves on addr ("127.0.0.1:0" for a free port) until Close.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("ticketdemo: %w", err)
	}
	s.ln, s.srv = ln, &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return nil
}

// URL is the base URL after Start ("http://127.0.0.1:8082").
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops a started server.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	return s.srv.Close()
}

func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.token != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+s.token)) != 1 {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		next(w, r)
	}
}

func (s *Server) list(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	l := make([]Ticket, 0, len(s.byID))
	for _, t := range s.byID {
		l = append(l, t)
	}
	s.mu.Unlock()
	slices.SortFunc(l, func(a, b Ticket) int { return a.ID - b.ID })
	writeJSON(w, http.StatusOK, l)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "ticket id must be a number"})
		return
	}
	s.mu.Lock()
	t, ok := s.byID[id]
	s.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such ticket"})
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Snippet is the config of the demo's `tickets` http connector instance
// (under `connectors:`), calling the service at baseURL with DemoToken: it
// answers "工单 77" with the ticket's title, status and assignee, and
// "工单 5" with "没有工单 5".
func Snippet(baseURL string) string {
	return fmt.Sprintf(snippet, baseURL, DemoToken)
}

const snippet = `tickets:
  type: http
  description: "工单 <号码>：查询工单"
  match:
    msg_type: text
    content: '^工单\s*(\d+)'
  request:
    method: GET
    url: '%s/tickets/{{ index .match 1 }}'
    headers:
      Accept: application/json
  auth:
    kind: bearer
    token: %s
  timeout: 5s
  response:
    success: ["2xx", "404"]
  reply:
    kind: text
    template: |-
      {{- if eq .status 404 -}}
      没有工单 {{ index .match 1 }}
      {{- else -}}
      工单 {{ .json.id }}：{{ .json.title }}
      状态：{{ .json.status }}
      处理人：{{ .json.assignee | default "未分配" }}
      {{- end }}
`
