package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/wxhub/wxhub/config"
	"github.com/wxhub/wxhub/wecom/sim"
)

// The deployment examples must load, or docker compose fails at the first start.
func TestDeployConfigsLoad(t *testing.T) {
	t.Setenv("WXHUB_HELPDESK_SECRET", "s")
	t.Setenv("WXHUB_ERP_KEY", "erp-key-123")
	t.Setenv("WXHUB_DASHBOARD_TOKEN", "demo-dashboard-token")
	t.Setenv("WXHUB_SIGNING_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") // as in .env.example
	t.Setenv("WXHUB_SESSION_KEY", "demo-session-key-change-me-0123456789abcdef")
	if _, err := config.Load(filepath.Join("..", "..", "deploy", "wxhub.compose.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.LoadConfig(filepath.Join("..", "..", "deploy", "sim.compose.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "docker-compose.yml")); err != nil {
		t.Fatal(err)
	}
}
