package sim

import (
	"strings"
	"testing"
)

func TestRandomStringUsesEveryBase62Character(t *testing.T) {
	seen := map[rune]int{}
	distinct := map[string]bool{}
	for range 2000 {
		s := randomString(43)
		if len(s) != 43 {
			t.Fatalf("len %d, want 43", len(s))
		}
		distinct[s] = true
		for _, r := range s {
			if !strings.ContainsRune(base62, r) {
				t.Fatalf("%q: %q is not base62", s, r)
			}
			seen[r]++
		}
	}
	if len(distinct) != 2000 {
		t.Fatalf("%d distinct strings of 2000", len(distinct))
	}
	// 86,000 draws, ~1,387 per character (σ ≈ 37). Without the redraw the
	// first 8 characters would come ~1,680 times (5/256 instead of 4/256).
	for _, r := range base62 {
		if n := seen[r]; n < 1200 || n > 1580 {
			t.Errorf("character %q drawn %d times of 86,000; want ~1,387", r, n)
		}
	}
}
