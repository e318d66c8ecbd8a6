package fileshare

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/bus/bustest"
	"github.com/wxhub/wxhub/directory"
	"github.com/wxhub/wxhub/schemas"
)

// The hub's directory answers a user's departments and tags from the user's
// own corp: the same user id in two corps is two people.
func TestHubDirectoryPerCorp(t *testing.T) {
	const first, dealer = "wwfirst0000000001", "wwdealer00000001"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b := bustest.Open(t, bus.Config{})
	kv, err := b.KV(ctx, bus.BucketDirectory)
	if err != nil {
		t.Fatal(err)
	}
	put := func(prefix string, u schemas.DirUser) {
		data, _ := json.Marshal(u)
		if _, err := kv.Put(ctx, bus.DirUserKey(prefix, u.UserID), data); err != nil {
			t.Fatal(err)
		}
	}
	put(bus.DirPrefix(""), schemas.DirUser{UserID: "lisi", Departments: []int64{1, 3}, Tags: []int64{1}})
	put(bus.DirPrefix(dealer), schemas.DirUser{UserID: "lisi", Departments: []int64{2}})
	st := directory.NewStore(kv, nil, directory.WithCorps(first, dealer))
	if err := st.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d := hubDirectory{st}
	for _, c := range []struct {
		corp        string
		depts, tags []int
	}{
		{"", []int{1, 3}, []int{1}},
		{first, []int{1, 3}, []int{1}},
		{dealer, []int{2}, []int{}},
		{"wwunknown", []int{}, []int{}}, // a corp the hub does not serve: in nothing
	} {
		var depts, tags []int
		deadline := time.Now().Add(10 * time.Second)
		for {
			if depts, err = d.Departments(ctx, c.corp, "lisi"); err != nil {
				t.Fatal(err)
			}
			if slices.Equal(depts, c.depts) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond) // the store follows the bucket by a watch
		}
		if tags, err = d.Tags(ctx, c.corp, "lisi"); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(depts, c.depts) || !slices.Equal(tags, c.tags) {
			t.Errorf("lisi of corp %q: departments %v, tags %v; want %v, %v", c.corp, depts, tags, c.depts, c.tags)
		}
	}
	if depts, _ := d.Departments(ctx, first, "nobody"); len(depts) != 0 {
		t.Errorf("an unknown user is in %v", depts)
	}
}
