// Package browsertest finds the headless browser the browser tests drive.
package browsertest

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns Debian's chromium. Without it the calling test skips on a
// developer's machine and fails in CI (CI set), whose .ci/run installs it.
func Chromium(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found and CI is set: .ci/run must install it (apt-get install -y chromium)")
	}
	t.Skip("chromium not found (apt-get install -y chromium); skipped outside CI")
	return ""
}
