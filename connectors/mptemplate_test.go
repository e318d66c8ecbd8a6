package connectors_test

import (
	"encoding/json"
	"testing"

	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/schemas"
)

func TestMPTemplate(t *testing.T) {
	r := connectors.MPTemplate("oX1", "tpl_order_shipped", "https://shop.example/o/1", map[string]string{"first": "已发货", "keyword1": "1001"})
	b, _ := json.Marshal(r.Body)
	var got struct {
		ToUser     string                           `json:"touser"`
		TemplateID string                           `json:"template_id"`
		URL        string                           `json:"url"`
		Data       map[string]schemas.TemplateValue `json:"data"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if r.Kind != schemas.KindMPTemplate || got.ToUser != "oX1" || got.TemplateID != "tpl_order_shipped" ||
		got.URL != "https://shop.example/o/1" || got.Data["keyword1"].Value != "1001" || len(got.Data) != 2 {
		t.Fatalf("reply %+v body %s", r, b)
	}
	if b, _ := json.Marshal(connectors.MPTemplate("o", "t", "", nil).Body); string(b) != `{"data":{},"template_id":"t","touser":"o"}` {
		t.Fatalf("without url: %s", b)
	}
}
