package fileshare

import (
	"context"
	"errors"

	"github.com/wxhub/wxhub/directory"
	"github.com/wxhub/wxhub/schemas"
)

// Directory resolves a WeCom user's departments and tags in corp ("": the
// hub's first corp), for the sources shared by department or tag. The hub's
// directory (the company's WeCom contacts) implements it; StaticDirectory is
// the config's stand-in. Safe for concurrent use; an error is retried (the
// event is redelivered).
type Directory interface {
	Departments(ctx context.Context, corp, user string) ([]int, error)
	Tags(ctx context.Context, corp, user string) ([]int, error)
}

// StaticDirectory is a Directory written in the config (tests, the demo):
//
//	directory:
//	  zhangsan: {departments: [2], tags: [1]}
type StaticDirectory map[string]Membership

// Membership is one user's departments and tags.
type Membership struct {
	Departments []int `yaml:"departments"`
	Tags        []int `yaml:"tags"`
}

// Departments implements Directory; an unknown user is in none. The stand-in
// knows one corp: a source's corp rule still applies before it is asked.
func (d StaticDirectory) Departments(_ context.Context, _, user string) ([]int, error) {
	return d[user].Departments, nil
}

// Tags implements Directory.
func (d StaticDirectory) Tags(_ context.Context, _, user string) ([]int, error) {
	return d[user].Tags, nil
}

// hubDirectory is the company directory the hub keeps (package directory),
// one per corp: a user's direct departments and tags. An unknown user is in none.
type hubDirectory struct{ s *directory.Store }

func (d hubDirectory) user(ctx context.Context, corp, id string) (schemas.DirUser, error) {
	u, err := d.s.User(ctx, corp, id)
	if errors.Is(err, directory.ErrNotFound) || errors.Is(err, directory.ErrUnknownCorp) {
		return schemas.DirUser{}, nil
	}
	return u, err
}

// Departments implements Directory.
func (d hubDirectory) Departments(ctx context.Context, corp, user string) ([]int, error) {
	u, err := d.user(ctx, corp, user)
	return ints(u.Departments), err
}

// Tags implements Directory.
func (d hubDirectory) Tags(ctx context.Context, corp, user string) ([]int, error) {
	u, err := d.user(ctx, corp, user)
	return ints(u.Tags), err
}

func ints(in []int64) []int {
	out := make([]int, len(in))
	for i, v := range in {
		out[i] = int(v)
	}
	return out
}
