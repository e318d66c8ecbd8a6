package loginpage_test

import (
	"testing"

	"github.com/wxhub/wxhub/connectors/scanlogin/loginpage"
)

func TestNewNeedsClient(t *testing.T) {
	if _, err := loginpage.New(loginpage.Config{HubURL: "http://127.0.0.1:1", APIKey: "k"}); err == nil {
		t.Fatal("no client: no error")
	}
}
