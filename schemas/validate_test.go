package schemas_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/schemas"
)

func TestValidatePush(t *testing.T) {
	tests := []struct {
		name      string
		given     string
		wantField string
		wantErr   string
	}{
		{"text ok", `{"app":"helpdesk","touser":"a|b","msgtype":"text","text":{"content":"hi"}}`, "", ""},
		{"agentid as string ok", `{"agentid":"1000002","touser":"a","msgtype":"text","text":{"content":"hi"}}`, "", ""},
		{"agentid as number ok", `{"agentid":1000002,"chatid":"c1","msgtype":"markdown","markdown":{"content":"**x**"}}`, "", ""},
		{"missing text content", `{"app":"helpdesk","touser":"a","msgtype":"text","text":{}}`, "text.content", "is required"},
		{"empty text content", `{"app":"helpdesk","touser":"a","msgtype":"text","text":{"content":""}}`, "text.content", ""},
		{"missing text object", `{"app":"helpdesk","touser":"a","msgtype":"text"}`, "text", "is required"},
		{"bad msgtype", `{"app":"helpdesk","touser":"a","msgtype":"fax"}`, "msgtype", ""},
		{"bad priority", `{"app":"helpdesk","touser":"a","msgtype":"text","text":{"content":"x"},"priority":"asap"}`, "priority", ""},
		{"no recipient", `{"app":"helpdesk","msgtype":"text","text":{"content":"x"}}`, "touser", "is required"},
		{"not json", `{"app":`, "", "not valid JSON"},
		{"too many articles", `{"app":"h","touser":"a","msgtype":"news","news":{"articles":[{"title":"1"},{"title":"2"},{"title":"3"},{"title":"4"},{"title":"5"},{"title":"6"},{"title":"7"},{"title":"8"},{"title":"9"}]}}`, "news.articles", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := schemas.Validate("push.v1", []byte(tt.given))
			if tt.wantField == "" && tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var fe *schemas.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if fe.Field != tt.wantField || !strings.Contains(fe.Reason, tt.wantErr) {
				t.Errorf("got field %q reason %q, want field %q reason ~%q", fe.Field, fe.Reason, tt.wantField, tt.wantErr)
			}
		})
	}
}
