package fileshare

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/connectors"
	"github.com/wxhub/wxhub/directory"
	"github.com/wxhub/wxhub/internal/transcribe"
	"github.com/wxhub/wxhub/schemas"
)

// Name is the connector's type and default instance name.
const Name = "fileshare"

// MaxWeComFile is WeCom's limit for a file message (media/upload type file).
const MaxWeComFile = 20 << 20

// Config is a connectors.<name> section of type fileshare.
type Config struct {
	connectors.RunnerConfig `yaml:",inline"`
	// Sources are the shares searched; at least one.
	Sources []SourceConfig `yaml:"sources"`
	// IndexPath is the index snapshot file. Default ./data/fileshare/<name>.index.json.gz.
	IndexPath string `yaml:"index_path"`
	// MaxFileSize: larger files are offered as a link instead of a file
	// message. Default and maximum 20 MB (WeCom's file limit).
	MaxFileSize int64 `yaml:"max_file_size"`
	// ListSize: at most this many matches are listed to choose from. Default 5, at most 9.
	ListSize int `yaml:"list_size"`
	// Timeout: a list waits this long for the user's number. Default 5m.
	Timeout time.Duration `yaml:"timeout"`
	// Pattern: text matching this regexp is a search (routed before the
	// configured rules). Default `^\s*(找|查找|搜索|文件)\s*`.
	Pattern string `yaml:"pattern"`
	// Keywords: text containing one of them is a search too (routed after the
	// configured rules). Default 周报, 月报, 合同, 模板, 报表, 手册, 制度; [] for none.
	Keywords *[]string `yaml:"keywords"`
	// Voice: route voice messages here (after the configured rules). Default true.
	Voice *bool `yaml:"voice"`
	// Transcriber is the speech-to-text service for WeCom voice messages
	// (transcribe.Config: base_url, api_key, model, language, timeout); without
	// base_url voice from WeCom is answered "voice search is not enabled".
	// Official Account voice uses WeChat's own Recognition.
	Transcriber transcribe.Config `yaml:"transcriber"`
	// Directory: users' departments and tags written in the config (tests, a
	// demo without the directory): user id -> {departments, tags}. Empty: the
	// hub's company directory (the directory: section) answers.
	Directory StaticDirectory `yaml:"directory"`
	// Link: links to files over MaxFileSize, served by the hub's gateway.
	Link LinkConfig `yaml:"link"`
	// Rescan: a full scan of each local tree this often besides the watch.
	// Default 1h. ScanInterval: WebDAV shares are scanned this often. Default 5m.
	Rescan       time.Duration `yaml:"rescan"`
	ScanInterval time.Duration `yaml:"scan_interval"`
}

// SourceConfig is one share and who may see it.
type SourceConfig struct {
	// Name identifies the source (in links and the audit log). Required, unique.
	Name string `yaml:"name"`
	// Kind is dir (a local or mounted tree) or webdav. Default dir.
	Kind string `yaml:"kind"`
	// Root: dir: the tree's directory; webdav: the path under URL (default /).
	Root string `yaml:"root"`
	// URL, User, Password: the WebDAV server (kind webdav). Timeout of one
	// WebDAV request, default 10s.
	URL      string        `yaml:"url"`
	User     string        `yaml:"user"`
	Password string        `yaml:"password"`
	Timeout  time.Duration `yaml:"timeout"`
	// Who may see the source's files: any listed user id, any member of a
	// listed department or tag (resolved through the Directory), or everyone.
	// At least one is required: a share open to all says so.
	Users       []string `yaml:"users"`
	Departments []int    `yaml:"departments"`
	Tags        []int    `yaml:"tags"`
	Everyone    bool     `yaml:"everyone"`
	// Corp is the WeCom corp id whose members these rules name (user ids and
	// department/tag ids are per corp). Default: the hub's first corp. A
	// member of another corp sees nothing of the source, "everyone" included.
	Corp string `yaml:"corp"`
}

// LinkConfig: signed, expiring download links through the gateway.
type LinkConfig struct {
	// BaseURL is the gateway's public address; links are <base_url>/files/<token>.
	// Required for files over max_file_size to be offered at all.
	BaseURL string `yaml:"base_url"`
	// Secret signs the links (HMAC-SHA256); every process serving links needs
	// the same. Default: a random one per process (links die with it).
	Secret string `yaml:"secret"`
	// TTL of a link. Default 24h.
	TTL time.Duration `yaml:"ttl"`
}

var defaultKeywords = []string{"周报", "月报", "合同", "模板", "报表", "手册", "制度"}

// WithDefaults fills the zero keys.
func (c Config) WithDefaults(name string) Config {
	if c.IndexPath == "" {
		c.IndexPath = "./data/fileshare/" + name + ".index.json.gz"
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = MaxWeComFile
	}
	if c.ListSize == 0 {
		c.ListSize = 5
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Pattern == "" {
		c.Pattern = `^\s*(找|查找|搜索|文件)\s*`
	}
	if c.Keywords == nil {
		k := slices.Clone(defaultKeywords)
		c.Keywords = &k
	}
	if c.Voice == nil {
		v := true
		c.Voice = &v
	}
	if c.Link.TTL == 0 {
		c.Link.TTL = 24 * time.Hour
	}
	if c.Rescan == 0 {
		c.Rescan = time.Hour
	}
	if c.ScanInterval == 0 {
		c.ScanInterval = 5 * time.Minute
	}
	for i := range c.Sources {
		s := &c.Sources[i]
		if s.Kind == "" {
			s.Kind = "dir"
		}
		if s.Timeout == 0 {
			s.Timeout = 10 * time.Second
		}
	}
	return c
}

// Validate names the first bad key, relative to the section.
func (c Config) Validate() error {
	if err := c.RunnerConfig.Validate(); err != nil {
		return err
	}
	if len(c.Sources) == 0 {
		return errors.New("sources: at least one source is required")
	}
	seen := map[string]bool{}
	for i, s := range c.Sources {
		k := fmt.Sprintf("sources[%d]", i)
		switch {
		case s.Name == "" || strings.ContainsAny(s.Name, "/\x00"):
			return fmt.Errorf("%s.name: required, without '/'", k)
		case seen[s.Name]:
			return fmt.Errorf("%s.name: %q is listed twice", k, s.Name)
		case s.Kind != "dir" && s.Kind != "webdav":
			return fmt.Errorf("%s.kind: %q, want dir or webdav", k, s.Kind)
		case s.Kind == "dir" && s.Root == "":
			return fmt.Errorf("%s.root: required for kind dir", k)
		case s.Kind == "webdav" && !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://"):
			return fmt.Errorf("%s.url: %q is not an http(s) URL", k, s.URL)
		case !s.Everyone && len(s.Users) == 0 && len(s.Departments) == 0 && len(s.Tags) == 0:
			return fmt.Errorf("%s: say who may see it: users, departments, tags or everyone: true", k)
		}
		seen[s.Name] = true
	}
	switch {
	case c.MaxFileSize < 0 || c.MaxFileSize > MaxWeComFile:
		return fmt.Errorf("max_file_size: %d, want 1 to %d (WeCom's file limit)", c.MaxFileSize, MaxWeComFile)
	case c.ListSize < 0 || c.ListSize > 9:
		return fmt.Errorf("list_size: %d, want 1 to 9", c.ListSize)
	case c.Timeout < 0:
		return errors.New("timeout: must not be negative")
	case c.Link.TTL < 0:
		return errors.New("link.ttl: must not be negative")
	case c.Link.BaseURL != "" && !strings.HasPrefix(c.Link.BaseURL, "http://") && !strings.HasPrefix(c.Link.BaseURL, "https://"):
		return fmt.Errorf("link.base_url: %q is not an http(s) URL", c.Link.BaseURL)
	}
	if _, err := regexp.Compile(c.Pattern); err != nil {
		return fmt.Errorf("pattern: %v", err)
	}
	if err := c.Transcriber.Validate(); err != nil {
		return fmt.Errorf("transcriber: %w", err)
	}
	return nil
}

// Rules are the routing rules of an instance: the search pattern before the
// configured rules; the keywords, a list's number (1-9) and voice after them.
func (c Config) Rules(name string) (rules, fallback []schemas.RouteRule) {
	to := schemas.Strings{name}
	rules = []schemas.RouteRule{{
		Name: "builtin-" + name, Description: "找 <文件名>：在文件共享中查找并发送文件（支持拼音首字母，如 xszb）",
		Match: schemas.RouteMatch{MsgType: schemas.Strings{"text"}, Content: c.Pattern}, To: to,
	}}
	if c.Keywords != nil && len(*c.Keywords) > 0 {
		fallback = append(fallback, schemas.RouteRule{Name: "builtin-" + name + "-keywords",
			Match: schemas.RouteMatch{MsgType: schemas.Strings{"text"}, Keywords: schemas.Strings(*c.Keywords)}, To: to})
	}
	fallback = append(fallback, schemas.RouteRule{Name: "builtin-" + name + "-choice",
		Match: schemas.RouteMatch{MsgType: schemas.Strings{"text"}, Content: `^\s*[1-9]\s*$`}, To: to})
	if c.Voice != nil && *c.Voice {
		fallback = append(fallback, schemas.RouteRule{Name: "builtin-" + name + "-voice",
			Description: "语音说出文件名：查找并发送文件",
			Match:       schemas.RouteMatch{MsgType: schemas.Strings{"voice"}}, To: to})
	}
	return rules, fallback
}

// Builtin registers the file share connector with the hub. It is not on by
// default: it needs sources. Its link handler is Links (mount at /files/).
var Builtin = connectors.Builtin{
	Type:    Name,
	Summary: "finds files on local and WebDAV shares by name, pinyin or voice and sends them in WeCom",
	Configure: func(name string, node *yaml.Node) (connectors.Instance, error) {
		var c Config
		if err := connectors.DecodeSection(node, &c); err != nil {
			return connectors.Instance{}, err
		}
		c = c.WithDefaults(name)
		if err := c.Validate(); err != nil {
			return connectors.Instance{}, err
		}
		rules, fallback := c.Rules(name)
		return connectors.Instance{
			Rules: rules, Fallback: fallback, Options: c.Options(),
			New: func(ctx context.Context, deps connectors.Deps) (connectors.Handler, error) {
				d := Deps{Bus: deps.Bus, Logger: deps.Logger}
				if len(deps.Hub.Corps) > 0 {
					d.Corp = deps.Hub.Corps[0]
				}
				for i, s := range c.Sources {
					if s.Corp != "" && len(deps.Hub.Corps) > 0 && !slices.Contains(deps.Hub.Corps, s.Corp) {
						return nil, fmt.Errorf("connectors.%s.sources[%d].corp: %q is not a corp of wecom.corps", name, i, s.Corp)
					}
				}
				if len(c.Directory) == 0 {
					// No stand-in in the config: the hub's company directory.
					kv, err := deps.Bus.KV(ctx, bus.BucketDirectory)
					if err != nil {
						return nil, err
					}
					st := directory.NewStore(kv, deps.Logger.Named("directory"), directory.WithCorps(deps.Hub.Corps...))
					if err := st.Start(ctx); err != nil {
						return nil, err
					}
					d.Directory = hubDirectory{st}
				}
				return New(ctx, name, c, d)
			},
		}, nil
	},
}
