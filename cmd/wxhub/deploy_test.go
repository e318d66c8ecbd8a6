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
