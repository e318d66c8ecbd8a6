package fileshare

import "context"

// Directory resolves a WeCom user's departments and tags, for the sources
// shared by department or tag. The hub's directory (the company's WeCom
// contacts) implements it; StaticDirectory is the config's stand-in. Safe for
// concurrent use; an error is retried (the event is redelivered).
type Directory interface {
	Departments(ctx context.Context, user string) ([]int, error)
	Tags(ctx context.Context, user string) ([]int, error)
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

// Departments implements Directory; an unknown user is in none.
func (d StaticDirectory) Departments(_ context.Context, user string) ([]int, error) {
	return d[user].Departments, nil
}

// Tags implements Directory.
func (d StaticDirectory) Tags(_ context.Context, user string) ([]int, error) {
	return d[user].Tags, nil
}
