package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"

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
		Publish:   []string{SubjectOutAll, DLQSubject("connector:" + connector)},
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
		case u.Connector != "" && !validUser.MatchString(u.Connector):
			return fmt.Errorf("%w: %s.connector: %q, want 1-64 of [A-Za-z0-9_-]", ErrConfig, key, u.Connector)
		}
		seen[u.Name] = true
	}
	return nil
}

// serverUsers turns nats.users into the embedded server's users, adding the
// hub's own full-access login (cfg.User/Password, or a random one made here
// and used only by this process's connection).
func (b *Bus) serverUsers() []*server.User {
	if len(b.cfg.Users) == 0 {
		return nil
	}
	if b.cfg.User == "" {
		b.cfg.User, b.cfg.Password = "wxhub-hub-"+randToken(4), randToken(24)
	}
	users := []*server.User{{Username: b.cfg.User, Password: b.cfg.Password}}
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
	b.log.Info("embedded server requires login", zap.Int("users", len(b.cfg.Users)))
	return users
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
