package schemas

import (
	"encoding/json"
	"time"
)

// AuthMethodPIN is the "amr" value for a step-up PIN entered on the hub's PIN page.
const AuthMethodPIN = "pin"

// OIDC "acr" values: how strongly the user authenticated.
const (
	// ACRWeCom: WeCom identity only (scan or OAuth).
	ACRWeCom = "urn:wxhub:acr:wecom"
	// ACRPIN: WeCom identity plus the step-up PIN.
	ACRPIN = "urn:wxhub:acr:pin"
)

// PINRecord is one employee's step-up PIN in the wxhub_pin bucket, under
// bus.PINKey(User): only the hub's identity code reads it. Hash is argon2id(PIN, Salt) with the parameters stored
// beside it, so they can be raised later without invalidating old PINs. The
// identity/pin package writes it; connectors read VerifiedAt
// (connectors.PINVerifiedWithin). Writers update it with the KV revision they read.
type PINRecord struct {
	User string `json:"user"`
	// Hash and Salt are raw bytes (base64 in JSON); the PIN itself is never stored.
	Hash   []byte    `json:"hash,omitempty"`
	Salt   []byte    `json:"salt,omitempty"`
	Params PINParams `json:"params"`
	SetAt  time.Time `json:"set_at,omitzero"`
	// VerifiedAt is the last successful verification.
	VerifiedAt time.Time `json:"verified_at,omitzero"`
	// Failures counts wrong PINs since the last success or lock.
	Failures int `json:"failures,omitempty"`
	// LockedUntil: no verification is attempted before it.
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// PINStatus is what others may read of a PIN, under bus.PINStatusKey(User):
// whether one is set, when it was last verified, whether it is locked. The
// identity/pin package writes it after each change; connectors read it
// (connectors.PINVerifiedWithin) with no access to the hash.
type PINStatus struct {
	User        string    `json:"user"`
	Set         bool      `json:"set"`
	VerifiedAt  time.Time `json:"verified_at,omitzero"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
}

// VerifiedWithin reports whether the PIN was verified in the d before now.
func (s PINStatus) VerifiedWithin(now time.Time, d time.Duration) bool {
	return s.Set && !s.VerifiedAt.IsZero() && !s.VerifiedAt.After(now) && now.Sub(s.VerifiedAt) <= d
}

// PINParams are the argon2id parameters a hash was made with.
type PINParams struct {
	Time    uint32 `json:"t"`
	Memory  uint32 `json:"m"` // KiB
	Threads uint8  `json:"p"`
	KeyLen  uint32 `json:"len"`
}

// HasPIN reports whether a PIN is set.
func (r PINRecord) HasPIN() bool { return len(r.Hash) > 0 }

// VerifiedWithin reports whether the PIN was verified in the d before now.
func (r PINRecord) VerifiedWithin(now time.Time, d time.Duration) bool {
	return r.HasPIN() && !r.VerifiedAt.IsZero() && !r.VerifiedAt.After(now) && now.Sub(r.VerifiedAt) <= d
}

// OIDCKey is one signing key of the OIDC provider in wxhub_oidc_keys, under
// "key.<KID>". Every gateway replica publishes every key from its creation and
// signs with the newest key whose ActivateAt has passed (so each replica's
// JWKS shows a key before anyone signs with it). A key leaves the JWKS when
// the next key has been active for longer than the longest token lifetime.
type OIDCKey struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// JWK is the private key as a JSON Web Key.
	JWK        json.RawMessage `json:"jwk"`
	CreatedAt  time.Time       `json:"created_at"`
	ActivateAt time.Time       `json:"activate_at"`
}

// DirUser is one member in the wxhub_directory bucket, under
// bus.DirUserKey (the corp's prefix, "user." + bus.UserKey(UserID)): WeCom's
// user/get fields the hub uses.
type DirUser struct {
	UserID         string  `json:"userid"`
	Name           string  `json:"name"`
	Departments    []int64 `json:"department"`
	MainDepartment int64   `json:"main_department,omitempty"`
	Position       string  `json:"position,omitempty"`
	// IsLeaderInDept is parallel to Departments: 1 where the member leads it.
	IsLeaderInDept []int    `json:"is_leader_in_dept,omitempty"`
	DirectLeader   []string `json:"direct_leader,omitempty"`
	// EmployeeNo is the extattr named by directory.employee_no_attr (WeCom has no
	// standard field for it).
	EmployeeNo string    `json:"employee_no,omitempty"`
	Email      string    `json:"email,omitempty"`
	Status     int       `json:"status,omitempty"` // 1 active, 2 disabled, 4 not activated, 5 left
	Tags       []int64   `json:"tags,omitempty"`
	SyncedAt   time.Time `json:"synced_at"`
}

// DirDepartment is one department, under bus.DirDeptKey ("dept.<id>" after the corp's prefix).
type DirDepartment struct {
	ID       int64     `json:"id"`
	Name     string    `json:"name"`
	ParentID int64     `json:"parentid"`
	Order    int64     `json:"order,omitempty"`
	Leaders  []string  `json:"department_leader,omitempty"`
	SyncedAt time.Time `json:"synced_at"`
}

// DirTag is one tag and its direct members, under bus.DirTagKey ("tag.<id>" after the corp's prefix).
type DirTag struct {
	ID       int64     `json:"tagid"`
	Name     string    `json:"tagname"`
	Users    []string  `json:"users,omitempty"`
	Parties  []int64   `json:"parties,omitempty"`
	SyncedAt time.Time `json:"synced_at"`
}

// DirRefresh is a request, under bus.DirRefreshKey
// ("refresh.<corp>.<kind>.<id>"), that the directory syncer of Corp re-read
// one user ("user", id = bus.UserKey), department ("dept") or tag ("tag")
// from WeCom, or everything ("all"). The directorysync connector writes it on
// change_contact; the syncer deletes it when done.
type DirRefresh struct {
	Corp       string    `json:"corp,omitempty"` // the event's data.corp; "": the first corp
	Kind       string    `json:"kind"`
	ID         string    `json:"id"` // userid, department id or tag id as WeCom sent it
	ChangeType string    `json:"change_type,omitempty"`
	EventID    string    `json:"event_id,omitempty"`
	At         time.Time `json:"at"`
}
