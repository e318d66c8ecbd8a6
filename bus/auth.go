package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"
)

// UserConfig is one user of the embedded server (nats.users). When any user is
// configured the server requires a login from every client, so each connector
// process can have its own user that reaches only its own subjects.
//
//	nats:
//	  users:
//	    - {name: erp, password: "...", connector: erp}   # ConnectorPermissions("erp")
//	    - {name: ops, password: "..."}                    # no lists: full access
type UserConfig struct {
	// Name is the login. Required, unique.
	Name string `yaml:"name"`
	// Password of the login. Required; never logged.
	Password string `yaml:"password"`
	// Connector, when set, grants exactly what that connector needs
	// (ConnectorPermissions) and nothing else.
	Connector string `yaml:"connector"`
	// Publish and Subscribe are extra allowed subjects (wildcards allowed).
	// A user with neither these nor Connector has full access.
	Publish   []string `yaml:"publish"`
	Subscribe []string `yaml:"subscribe"`
}

// Permissions are the subjects a NATS user may publish and subscribe to.
type Permissions struct {
	Publish   []string
	Subscribe []string
}

var validUser = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// InboxPrefix is the reply-inbox prefix of a connector's connection:
// _INBOX_<connector>. A connector's user may subscribe to its own inboxes only,
// so it cannot read the pulled events or acks of another connector, which all
// travel on inboxes. Clients set it with nats.CustomInboxPrefix (Go) or the
// inboxPrefix connection option (nats.js).
func InboxPrefix(connector string) string { return "_INBOX_" + Token(connector) }

// ConnectorPermissions are the subjects a connector needs with the default
// consumers (one durable pull consumer per partition, see connectors.ConsumerName):
//
//   - create or update its own consumers, and only with their own filter: the
//     server checks that the filter in the create subject equals the config's;
//   - read their info and pull from them ($JS.API.CONSUMER.INFO / MSG.NEXT);
//   - ack, nak, term and in-progress their messages ($JS.ACK.WXHUB_ROUTE.<consumer>.>,
//     and the domain/account-hash form the server may use);
//   - publish replies to wxhub.out.> and dead letters to wxhub.dlq.connector:<name>;
//   - read PIN statuses in wxhub_pin (not the hashes beside them);
//   - receive on its own inboxes (InboxPrefix) the pulled events and API replies.
//
// It cannot subscribe to wxhub.> subjects, get stream messages directly, or
// touch another connector's consumers. Consumer names are enumerated per
// partition because NATS wildcards match whole tokens only.
func ConnectorPermissions(connector string, partitions int) Permissions {
	if partitions < 1 {
		partitions = 1
	}
	p := Permissions{
		Publish: []string{SubjectOutAll, DLQSubject("connector:" + connector),
			// read PIN statuses (connectors.PINVerifiedWithin), never the hashes
			"$JS.API.STREAM.INFO.KV_" + BucketPIN, "$JS.API.DIRECT.GET.KV_" + BucketPIN + ".$KV." + BucketPIN + ".status.>"},
		Subscribe: []string{InboxPrefix(connector) + ".>"},
	}
	for i := range partitions {
		c := "wxhub_" + Token(connector) + "_" + strconv.Itoa(i)
		p.Publish = append(p.Publish,
			"$JS.API.CONSUMER.CREATE."+StreamRoute+"."+c+"."+RouteSubject(connector, i),
			"$JS.API.CONSUMER.INFO."+StreamRoute+"."+c,
			"$JS.API.CONSUMER.MSG.NEXT."+StreamRoute+"."+c,
			"$JS.ACK."+StreamRoute+"."+c+".>",
			"$JS.ACK.*.*."+StreamRoute+"."+c+".>",
		)
	}
	return p
}

// validateUsers checks nats.users; partitions is the effective partition count.
func validateUsers(users []UserConfig) error {
	seen := map[string]bool{}
	for i, u := range users {
		key := fmt.Sprintf("nats.users[%d]", i)
		switch {
		case !validUser.MatchString(u.Name):
			return fmt.Errorf("%w: %s.name: %q, want 1-64 of [A-Za-z0-9_-]", ErrConfig, key, u.Name)
		case seen[u.Name]:
			return fmt.Errorf("%w: %s.name: %q is listed twice", ErrConfig, key, u.Name)
		case u.Password == "":
			return fmt.Errorf("%w: %s.password: required", ErrConfig, key)
		case slices.Contains(componentLogins, u.Name) || strings.HasPrefix(u.Name, "connector-"):
			return fmt.Errorf("%w: %s.name: %q is reserved for the generated logins (%s)", ErrConfig, key, u.Name, CredentialsFile)
		case u.Connector != "" && !validUser.MatchString(u.Connector):
			return fmt.Errorf("%w: %s.connector: %q, want 1-64 of [A-Za-z0-9_-]", ErrConfig, key, u.Connector)
		}
		seen[u.Name] = true
	}
	return nil
}

// serverUsers are the embedded server's users: the generated logins of this
// install (CredentialsFile in dir, made or completed here), then nats.users.
// This process logs in as cfg.User/Password when given (a full-access user),
// else as its generated Login.
func (b *Bus) serverUsers(dir string) ([]*server.User, error) {
	creds, err := ensureCredentials(dir, b.cfg.Connectors)
	if err != nil {
		return nil, err
	}
	users := generatedUsers(creds, b.cfg.Partitions)
	if b.cfg.User != "" && creds.Users[b.cfg.User] == "" {
		users = append(users, &server.User{Username: b.cfg.User, Password: b.cfg.Password})
	} else if b.cfg.User == "" {
		login := b.cfg.login()
		if creds.Users[login] == "" {
			return nil, fmt.Errorf("%w: nats.login: %q is not a generated login", ErrConfig, login)
		}
		b.cfg.User, b.cfg.Password, b.login = login, creds.Users[login], login
	}
	for _, u := range b.cfg.Users {
		su := &server.User{Username: u.Name, Password: u.Password}
		if u.Connector != "" || len(u.Publish) > 0 || len(u.Subscribe) > 0 {
			var p Permissions
			if u.Connector != "" {
				p = ConnectorPermissions(u.Connector, b.cfg.Partitions)
			}
			p.Publish = append(p.Publish, u.Publish...)
			p.Subscribe = append(p.Subscribe, u.Subscribe...)
			su.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: p.Publish},
				Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
			}
		}
		users = append(users, su)
	}
	b.log.Info("embedded server requires login", zap.Int("generated", len(creds.Users)), zap.Int("configured", len(b.cfg.Users)),
		zap.String("credentials", filepath.Join(dir, CredentialsFile)))
	return users, nil
}

// Dial connects to a running NATS (cfg.URL) without starting a server or
// declaring anything: for a connector process whose user may not create
// streams (see ConnectorPermissions). Set cfg.User/Password (or CredsFile) and
// cfg.InboxPrefix = InboxPrefix(name). Close it like an opened Bus.
func Dial(ctx context.Context, cfg Config, log *zap.Logger) (*Bus, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: nats.url: required to dial", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if name, ok := strings.CutPrefix(cfg.Login, "connector-"); ok && cfg.User == "" && cfg.InboxPrefix == "" {
		cfg.InboxPrefix = "_INBOX_" + name // the generated connector login reads only its own inboxes
	}
	b := &Bus{cfg: cfg, log: log.Named("bus"), closed: make(chan struct{}), done: make(chan struct{})}
	if err := b.connect(ctx, cfg.URL); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

func randToken(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p) // never fails (Go 1.24+)
	return hex.EncodeToString(p)
}
