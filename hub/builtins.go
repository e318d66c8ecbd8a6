package hub

import (
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/connectors/directorysync"
	"github.com/wxhub/wxhub/connectors/echo"
	"github.com/wxhub/wxhub/connectors/erp"
	"github.com/wxhub/wxhub/connectors/fileshare"
	"github.com/wxhub/wxhub/connectors/help"
	httpconn "github.com/wxhub/wxhub/connectors/http"
	"github.com/wxhub/wxhub/connectors/mpreply"
	"github.com/wxhub/wxhub/connectors/quiethours"
	"github.com/wxhub/wxhub/connectors/scanlogin"
	"github.com/wxhub/wxhub/connectors/webhook"
)

// Builtins is the registration list: every connector the hub can run in its
// own process. Adding one is a folder that exports a connectors.Builtin and a
// line here; the order is the order of their rules before the configured ones.
var Builtins = []connectors.Builtin{
	quiethours.Builtin,
	scanlogin.Builtin,
	erp.Builtin,
	fileshare.Builtin,
	directorysync.Builtin,
	httpconn.Builtin,
	webhook.Builtin,
	help.Builtin,
	echo.Builtin,
	mpreply.Builtin, // after echo: its fallback takes every Official Account event left
}
