package bus_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/wxhub/wxhub/bus"
)

// The directory's keys round-trip through ParseDirKey for the first corp
// (keys as before several corps) and for others, whatever the corp id or
// userid holds; the first corp's keys are exactly the old ones.
func TestDirKeysRoundTrip(t *testing.T) {
	if got := bus.DirUserKey(bus.DirPrefix(""), "zhangsan"); got != "user.emhhbmdzYW4" {
		t.Fatalf("first corp's user key %q, want the key from before several corps", got)
	}
	if got := bus.DirDeptKey("", 2) + " " + bus.DirTagKey("", 1) + " " + bus.DirMetaKey(""); got != "dept.2 tag.1 meta" {
		t.Fatalf("first corp's keys %q", got)
	}
	if got := bus.DirDeptKey(bus.DirPrefix("wwsupplier01"), 2); got != "corp.wwsupplier01.dept.2" {
		t.Fatalf("second corp's key %q", got)
	}
	for _, corp := range []string{"", "wwsupplier01", "ww.odd corp", "b64_x"} {
		p := bus.DirPrefix(corp)
		for _, c := range []struct{ key, kind, id string }{
			{bus.DirUserKey(p, "li.si@x"), "user", "li.si@x"},
			{bus.DirDeptKey(p, 42), "dept", "42"},
			{bus.DirTagKey(p, 7), "tag", "7"},
		} {
			gc, kind, id, ok := bus.ParseDirKey(c.key)
			if !ok || gc != corp || kind != c.kind || id != c.id {
				t.Errorf("ParseDirKey(%q) = %q %q %q %v, want %q %q %q", c.key, gc, kind, id, ok, corp, c.kind, c.id)
			}
			if strings.ContainsAny(c.key, " *>") {
				t.Errorf("key %q is not a valid KV key", c.key)
			}
		}
	}
	for _, bad := range []string{"meta", "corp.x.meta", "refresh.user.eA", "user", "dept.x", "corp..user.eA", "corp.b64_!!.dept.1", "user.a.b"} {
		if _, _, _, ok := bus.ParseDirKey(bad); ok {
			t.Errorf("ParseDirKey(%q) accepted", bad)
		}
	}
	// Refresh requests: with the corp, or without one (the first corp's).
	if k := bus.DirRefreshKey("", "user", "zhangsan"); k != "refresh.user.emhhbmdzYW4" {
		t.Fatalf("refresh key without corp %q", k)
	}
	if k := bus.DirRefreshKey("wwb", "dept", "3"); k != "refresh.wwb.dept.Mw" {
		t.Fatalf("refresh key %q", k)
	}
	if f := bus.DirRefreshFilters("wwa", true); !slices.Equal(f, []string{"refresh.*.*", "refresh.wwa.*.*"}) {
		t.Fatalf("first corp's filters %v", f)
	}
	if f := bus.DirRefreshFilters("wwb", false); !slices.Equal(f, []string{"refresh.wwb.*.*"}) {
		t.Fatalf("second corp's filters %v", f)
	}
}
