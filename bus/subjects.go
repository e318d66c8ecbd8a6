package bus

import (
	"encoding/base64"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Stream names.
const (
	StreamIn    = "WXHUB_IN"    // inbound events from WeChat: wxhub.in.<channel>.<app>.<type>
	StreamRoute = "WXHUB_ROUTE" // routed events: wxhub.route.<connector>.<partition>
	StreamOut   = "WXHUB_OUT"   // messages to send: wxhub.out.<app>
	StreamDLQ   = "WXHUB_DLQ"   // dead letters: wxhub.dlq.<stage>
)

// KV bucket names.
const (
	BucketTokens = "wxhub_tokens" // access tokens shared by sender replicas
	BucketDND    = "wxhub_dnd"    // do-not-disturb windows per user
	BucketStatus = "wxhub_status" // outbound message status (queued, deferred, sent, failed)
	BucketAuth   = "wxhub_auth"   // scan-to-login challenges
	// BucketOIDCKeys holds the OIDC provider's signing keys (schemas.OIDCKey),
	// shared by every gateway replica; no TTL: old keys are pruned by the provider.
	BucketOIDCKeys = "wxhub_oidc_keys"
	// BucketOIDC holds OIDC login transactions, authorization codes and tokens
	// (each record carries its own expiry; the bucket forgets them after OIDCTTL).
	BucketOIDC = "wxhub_oidc"
	// BucketPIN holds step-up PIN records (schemas.PINRecord), keyed by UserKey.
	BucketPIN = "wxhub_pin"
	// BucketDirectory is the cached WeCom address book (schemas.DirUser, ...).
	BucketDirectory = "wxhub_directory"
	// BucketSessions holds revoked dashboard sessions until they would have
	// expired (per-key TTL); see RevokeSession.
	BucketSessions = "wxhub_sessions"
	// BucketMetrics holds each process's snapshot of its wxhub_ counters and
	// gauges (internal/sharedmetrics), for the dashboard's rates.
	BucketMetrics = "wxhub_metrics"
)

// OIDCTTL is how long wxhub_oidc keeps a record: the longest refresh token lives 30 days.
const OIDCTTL = 30 * 24 * time.Hour

// Subject prefixes and the wildcard each stream captures.
const (
	SubjectInPrefix    = "wxhub.in"
	SubjectRoutePrefix = "wxhub.route"
	SubjectOutPrefix   = "wxhub.out"
	SubjectDLQPrefix   = "wxhub.dlq"

	SubjectInAll    = SubjectInPrefix + ".>"
	SubjectRouteAll = SubjectRoutePrefix + ".>"
	// SubjectRouteEvents matches every routed event (wxhub.route.<connector>.<partition>)
	// and not the stream's anchor.
	SubjectRouteEvents = SubjectRoutePrefix + ".*.*"
	SubjectOutAll      = SubjectOutPrefix + ".>"
	SubjectDLQAll      = SubjectDLQPrefix + ".>"
)

// Token makes s safe as one subject token: '.', '*', '>' and whitespace become
// '_' and an empty string becomes "_". Dots inside event types (event.click) are
// kept by InSubject, which splits them into tokens on purpose.
func Token(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
}

// InSubject is wxhub.in.<channel>.<app>.<type>. The type may contain dots
// (event.click), giving subscribers wxhub.in.*.*.event.> for all events.
func InSubject(channel, app, eventType string) string {
	parts := strings.Split(eventType, ".")
	for i, p := range parts {
		parts[i] = Token(p)
	}
	return SubjectInPrefix + "." + Token(channel) + "." + Token(app) + "." + strings.Join(parts, ".")
}

// RouteSubject is wxhub.route.<connector>.<partition>.
func RouteSubject(connector string, partition int) string {
	return SubjectRoutePrefix + "." + Token(connector) + "." + strconv.Itoa(partition)
}

// RouteFilter is the subject filter of one connector's consumer: wxhub.route.<connector>.>.
func RouteFilter(connector string) string {
	return SubjectRoutePrefix + "." + Token(connector) + ".>"
}

// OutSubject is wxhub.out.<app>.
func OutSubject(app string) string { return SubjectOutPrefix + "." + Token(app) }

// DLQSubject is wxhub.dlq.<stage>; "connector:erp" stays one token.
func DLQSubject(stage string) string { return SubjectDLQPrefix + "." + Token(stage) }

// Partition maps a user to [0, partitions) with FNV-1a, so all events of one user
// share a partition and therefore an ordered lane. partitions < 1 counts as 1.
func Partition(user string, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return int(h.Sum32() % uint32(partitions))
}

// PartitionOf returns the partition token of a route subject
// (wxhub.route.<connector>.<partition>) and whether the subject has one.
func PartitionOf(subject string) (int, bool) {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 || !strings.HasPrefix(subject, SubjectRoutePrefix+".") {
		return 0, false
	}
	p, err := strconv.Atoi(subject[i+1:])
	if err != nil || p < 0 {
		return 0, false
	}
	return p, true
}

// UserKey encodes a WeCom userid as a KV key: userids may hold '@', which KV
// keys may not, so the id is base64url (no padding). Used by wxhub_pin and
// wxhub_directory.
func UserKey(userid string) string { return base64.RawURLEncoding.EncodeToString([]byte(userid)) }

// Keys of the wxhub_directory bucket (schemas.DirUser, DirDepartment, DirTag,
// the sync's meta record), under one corp's prefix (DirPrefix).
func DirUserKey(prefix, userid string) string   { return prefix + "user." + UserKey(userid) }
func DirDeptKey(prefix string, id int64) string { return prefix + "dept." + strconv.FormatInt(id, 10) }
func DirTagKey(prefix string, id int64) string  { return prefix + "tag." + strconv.FormatInt(id, 10) }
func DirMetaKey(prefix string) string           { return prefix + "meta" }

// DirPrefix is the key prefix of one corp's directory in wxhub_directory:
// "" for the hub's first corp (corp "": its keys are those from before
// several corps), "corp.<corp>." for another (the id as SafeKey gives it).
func DirPrefix(corp string) string {
	if corp == "" {
		return ""
	}
	return "corp." + SafeKey(corp) + "."
}

// DirRefreshKey is a refresh request's key: "refresh.<corp>.<kind>.<id>", or
// "refresh.<kind>.<id>" without a corp (an event without data.corp: the first
// corp's). id is encoded like a userid.
func DirRefreshKey(corp, kind, id string) string {
	if corp == "" {
		return "refresh." + kind + "." + UserKey(id)
	}
	return "refresh." + SafeKey(corp) + "." + kind + "." + UserKey(id)
}

// DirRefreshFilters are the key filters of the refresh requests of corp (as
// DirRefreshKey writes them); first adds those without a corp.
func DirRefreshFilters(corp string, first bool) []string {
	var f []string
	if first {
		f = append(f, "refresh.*.*")
	}
	if corp != "" {
		f = append(f, "refresh."+SafeKey(corp)+".*.*")
	}
	return f
}

// DirKeyFilters are the key filters of every corp's users, departments and
// tags (a new slice each time: KV WatchFiltered rewrites the one it gets).
func DirKeyFilters() []string {
	return []string{"user.>", "dept.>", "tag.>", "corp.*.user.>", "corp.*.dept.>", "corp.*.tag.>"}
}

// ParseDirKey splits a wxhub_directory key of a user, department or tag
// (DirUserKey, DirDeptKey, DirTagKey) into its corp ("" for the first), kind
// ("user", "dept", "tag") and id (the userid, or the number as written).
func ParseDirKey(key string) (corp, kind, id string, ok bool) {
	rest := key
	if r, found := strings.CutPrefix(key, "corp."); found {
		c, r, found := strings.Cut(r, ".")
		if !found {
			return "", "", "", false
		}
		if corp, ok = unSafeKey(c); !ok || corp == "" {
			return "", "", "", false
		}
		rest = r
	}
	kind, id, found := strings.Cut(rest, ".")
	if !found || strings.Contains(id, ".") || id == "" {
		return "", "", "", false
	}
	switch kind {
	case "user":
		b, err := base64.RawURLEncoding.DecodeString(id)
		if err != nil {
			return "", "", "", false
		}
		id = string(b)
	case "dept", "tag":
		if _, err := strconv.ParseInt(id, 10, 64); err != nil {
			return "", "", "", false
		}
	default:
		return "", "", "", false
	}
	return corp, kind, id, true
}

// unSafeKey is the string SafeKey encoded.
func unSafeKey(k string) (string, bool) {
	if b, found := strings.CutPrefix(k, "b64_"); found {
		s, err := base64.RawURLEncoding.DecodeString(b)
		return string(s), err == nil
	}
	return k, plainKey.MatchString(k)
}

// Keys of the wxhub_pin bucket: the hash record (schemas.PINRecord), which only
// the identity code reads, and the status (schemas.PINStatus) connectors may read.
func PINKey(userid string) string       { return "hash." + UserKey(userid) }
func PINStatusKey(userid string) string { return "status." + UserKey(userid) }

// CardEventFilter is the subject filter of every WeCom app's template card
// callbacks (template_card_event), which the sender records in the card's status.
const CardEventFilter = SubjectInPrefix + ".wecom.*.event.template_card_event"
