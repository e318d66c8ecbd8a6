package e2e_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/hub"
	"github.com/wxhub/wxhub/hub/hubtest"
	"github.com/wxhub/wxhub/internal/scaffold"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The scaffold's output, as generated, passes the conformance kit (its own
// `go test`), and the built connector answers through a whole hub started
// with the generated routing.yaml: the path of docs/connectors.md's tutorial.
func TestE2EScaffoldedConnectorAnswers(t *testing.T) {
	for _, lang := range []string{scaffold.LangGo, scaffold.LangNode} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			var env []string
			if lang == scaffold.LangNode {
				env = append(env, "NODE_PATH="+nodeModules(t))
			}
			dir := filepath.Join(t.TempDir(), "leave")
			if _, err := scaffold.Generate(scaffold.Options{Name: "leave", Lang: lang, Dir: dir, Keyword: "假期", Wxhub: ".."}); err != nil {
				t.Fatal(err)
			}
			// The generated test: the conformance kit against its fake legacy service.
			goCmd(t, dir, env, "vet", ".")
			goCmd(t, dir, env, "test", "-count=1", ".")

			command := []string{"node", "index.js"}
			if lang == scaffold.LangGo {
				goCmd(t, dir, env, "build", "-o", "leave", ".")
				command = []string{filepath.Join(dir, "leave")}
			}
			extra, err := hub.LoadDemoExtra(filepath.Join(dir, "routing.yaml"), func(k string) (string, bool) {
				return "s3cret-" + lang, k == "LEAVE_NATS_PASSWORD"
			})
			if err != nil {
				t.Fatal(err)
			}
			h := hubtest.Start(t, hubtest.WithSim(extra.ApplySim), hubtest.WithConfig(func(c *config.Config) {
				if err := extra.Apply(c); err != nil {
					t.Fatal(err)
				}
			}))
			legacy := httptest.NewServer(leaveService())
			t.Cleanup(legacy.Close)
			stop := startProcess(t, dir, command, append(env, "WXHUB_NATS_URL="+h.Bus.ClientURL(), "WXHUB_NATS_USER=leave",
				"WXHUB_NATS_PASSWORD=s3cret-"+lang, "WXHUB_PARTITIONS="+strconv.Itoa(h.Config.NATS.Partitions),
				"LEGACY_URL="+legacy.URL)...)

			ctx := hubtest.Ctx(t, 30*time.Second)
			if _, err := h.Sim.Say(ctx, "helpdesk", "zhangsan", "假期 还剩几天"); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Sim.WaitSent(ctx, func(m sim.SentMessage) bool {
				return m.User == "zhangsan" && m.Content == "zhangsan 的年假还剩 5 天"
			}); err != nil {
				t.Fatalf("no answer from the scaffolded %s connector: %v (sent: %+v)", lang, err, h.Sim.Sent())
			}
			stop()
		})
	}
}

// leaveService is the legacy service of the tutorial: POST /query {user, text}.
func leaveService() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var q struct{ User, Text string }
		if json.NewDecoder(r.Body).Decode(&q) != nil || r.URL.Path != "/query" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"answer": q.User + " 的年假还剩 5 天"})
	})
}

// nodeModules is examples/node-connector's node_modules (installed by
// .ci/run's npm ci), which holds the nats package a Node scaffold needs.
func nodeModules(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "examples", "node-connector", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	_, errNode := exec.LookPath("node")
	_, errMods := os.Stat(filepath.Join(dir, "nats"))
	if errNode != nil || errMods != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("node and examples/node-connector/node_modules are required in CI: %v %v", errNode, errMods)
		}
		t.Skipf("node or examples/node-connector/node_modules missing (%v, %v): run npm ci there; CI runs this test", errNode, errMods)
	}
	return dir
}

// goCmd runs the go tool in dir with the test's environment (and so its build cache).
func goCmd(t *testing.T, dir string, env []string, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s in the scaffold: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// startProcess starts command in dir, logging its output; stop sends SIGTERM
// and wants exit 0 (a connector finishes its in-flight events and exits).
func startProcess(t *testing.T, dir string, command []string, env ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			t.Log(filepath.Base(command[0]) + ": " + sc.Text())
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); _ = pw.Close(); exited <- err }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			var err error
			select {
			case err = <-exited:
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				err = <-exited
			}
			<-logged
			if err != nil {
				t.Errorf("%v after SIGTERM: %v, want exit 0", command, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
