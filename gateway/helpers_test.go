package gateway_test

import (
	"crypto/sha1"
	"sort"
	"strings"
)

func sha1Sorted(parts ...string) [20]byte {
	p := append([]string(nil), parts...)
	sort.Strings(p)
	return sha1.Sum([]byte(strings.Join(p, "")))
}
