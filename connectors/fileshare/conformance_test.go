package fileshare_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/webdav"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/connectors/conformance"
	"github.com/wxhub/wxhub/connectors/fileshare"
)

// TestConformance runs the connector kit against the file share connector,
// with a WebDAV share behind the kit's failure switch as its legacy system
// (delivering a file reads it from the share). The connector consumes with
// the kit's restricted NATS user; its media store and list bucket are on a
// second, full-access bus, since bus.ConnectorPermissions grants neither yet.
func TestConformance(t *testing.T) {
	root := t.TempDir()
	if err := fileshare.WriteSamples(root, now); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, fileshare.SampleCompany)
	legacy := conformance.NewLegacyServer(t, &webdav.Handler{FileSystem: webdav.Dir(dir), LockSystem: webdav.NewMemLS()})
	state := bustest.Open(t, bus.Config{})
	conformance.Run(t, conformance.Connector{
		Name: fileshare.Name,
		Start: func(t *testing.T, env conformance.Env) func() {
			cfg := fileshare.Config{
				IndexPath: filepath.Join(t.TempDir(), "index.json.gz"),
				Sources: []fileshare.SourceConfig{{Name: "company", Kind: "webdav", URL: legacy.URL(), Everyone: true,
					Timeout: 2 * time.Second}},
				ScanInterval: time.Hour,
			}
			ctx, cancel := context.WithCancel(context.Background())
			c, err := fileshare.New(ctx, fileshare.Name, cfg, fileshare.Deps{Bus: state, Logger: zap.NewNop(), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			<-c.Scanned()
			stop := conformance.GoHandler(c)(t, env)
			return func() { stop(); cancel() }
		},
		Samples: []conformance.Sample{
			{Name: "one match", Event: conformance.Text("合同模板"), Want: conformance.ReplyContains(`"msgtype":"file"`, bus.MediaObjectField)},
			{Name: "pinyin initials", Event: conformance.Text("找 ygsc"), Want: conformance.ReplyContains(bus.MediaObjectField)},
			{Name: "list", Event: conformance.Text("找 合同"), Want: conformance.ReplyContains("请回复序号")},
			{Name: "none", Event: conformance.Text("找 工资条"), Want: conformance.ReplyContains("没有找到")},
		},
		Legacy:       legacy,
		LegacySample: conformance.Sample{Event: conformance.Text("员工手册"), Want: conformance.ReplyContains(bus.MediaObjectField)},
	})
}
