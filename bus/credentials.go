package bus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
)

// CredentialsFile is the file in the embedded server's data dir (nats.data_dir)
// that holds the logins generated for this install: one password per
// component, readable by the owner only (0600). The embedded server requires
// these logins; processes and `wxhub` commands of the same install read the
// file to connect (see Config.Login). Delete it and restart to rotate them.
const CredentialsFile = "credentials.json"

// The generated logins. LoginHub has full access (the process that runs the
// embedded server, and `run` of several components). The others are what one
// component needs when it runs as its own process (run --only ...).
const (
	LoginHub       = "hub"
	LoginGateway   = "gateway"
	LoginRouter    = "router"
	LoginSender    = "sender"
	LoginDashboard = "dashboard"
	LoginCLI       = "cli" // wxhub dlq and other operator commands
)

// ConnectorLogin is the generated login of a built-in or configured connector:
// it gets ConnectorPermissions and nothing else.
func ConnectorLogin(connector string) string { return "connector-" + Token(connector) }

// componentLogins are the generated logins besides the connectors'.
var componentLogins = []string{LoginHub, LoginGateway, LoginRouter, LoginSender, LoginDashboard, LoginCLI}

// ReadsTokens reports whether login may read the WeCom access tokens
// (wxhub_tokens): the sender refreshes them, the gateway uses them for OAuth
// login, the hub login runs both. Nobody else can, so a connector, the router,
// the dashboard or an operator command cannot send as the app.
func ReadsTokens(login string) bool {
	return login == LoginHub || login == LoginSender || login == LoginGateway
}

// LoginFor is the generated login of a process running these components
// (names as `run --only` takes them: gateway, router, sender, connector:<name>):
// the component's own login when it runs alone, else LoginHub.
func LoginFor(components []string) string {
	if len(components) != 1 {
		return LoginHub
	}
	c := components[0]
	if name, ok := strings.CutPrefix(c, "connector:"); ok {
		return ConnectorLogin(name)
	}
	if slices.Contains(componentLogins, c) {
		return c
	}
	return LoginHub
}

// Credentials are the generated logins: login -> password.
type Credentials struct {
	Users map[string]string `json:"users"`
}

// LoadCredentials reads the generated logins of the embedded server whose
// data dir is dataDir. An error wrapping fs.ErrNotExist means there are none.
func LoadCredentials(dataDir string) (Credentials, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, CredentialsFile))
	if err != nil {
		return Credentials{}, fmt.Errorf("bus: credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(raw, &c); err != nil {
		return Credentials{}, fmt.Errorf("bus: credentials %s: %w", filepath.Join(dataDir, CredentialsFile), err)
	}
	return c, nil
}

// ensureCredentials loads the install's logins, adding a random password for
// every missing component and connector login, and writes them back with 0600.
func ensureCredentials(dataDir string, connectors []string) (Credentials, error) {
	c, err := LoadCredentials(dataDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, err
	}
	if c.Users == nil {
		c.Users = map[string]string{}
	}
	changed := false
	want := slices.Clone(componentLogins)
	for _, n := range connectors {
		want = append(want, ConnectorLogin(n))
	}
	for _, login := range want {
		if c.Users[login] == "" {
			c.Users[login] = randToken(24)
			changed = true
		}
	}
	path := filepath.Join(dataDir, CredentialsFile)
	if !changed {
		// Tighten a file whose mode was loosened by hand.
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			_ = os.Chmod(path, 0o600)
		}
		return c, nil
	}
	raw, _ := json.MarshalIndent(c, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return Credentials{}, fmt.Errorf("bus: credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return Credentials{}, fmt.Errorf("bus: credentials: %w", err)
	}
	return c, nil
}

// tokenBucketSubjects are every subject that reads or writes wxhub_tokens:
// the KV subjects and the JetStream API on its stream (info, get, direct get,
// consumers for watches, purge, delete).
func tokenBucketSubjects() []string {
	s := "KV_" + BucketTokens
	return []string{
		"$KV." + BucketTokens + ".>",
		"$JS.API.*.*." + s, "$JS.API.*.*." + s + ".>",
		"$JS.API.*.*.*." + s, "$JS.API.*.*.*." + s + ".>",
	}
}

// generatedUsers are the embedded server's users for the generated logins.
func generatedUsers(c Credentials, partitions int) []*server.User {
	users := make([]*server.User, 0, len(c.Users))
	logins := make([]string, 0, len(c.Users))
	for login := range c.Users {
		logins = append(logins, login)
	}
	slices.Sort(logins)
	for _, login := range logins {
		u := &server.User{Username: login, Password: c.Users[login]}
		switch {
		case strings.HasPrefix(login, "connector-"):
			p := ConnectorPermissions(strings.TrimPrefix(login, "connector-"), partitions)
			u.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: p.Publish},
				Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
			}
		case !ReadsTokens(login):
			deny := tokenBucketSubjects()
			u.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Deny: deny},
				Subscribe: &server.SubjectPermission{Deny: deny},
			}
		}
		users = append(users, u)
	}
	return users
}
