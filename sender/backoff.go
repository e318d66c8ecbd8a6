package sender

import (
	"math/rand/v2"
	"time"
)

// backoff returns the delay before attempt+1 (attempt counts from 1): full
// jitter over an exponential ceiling, base·2^(attempt-1) capped at max, so that
// replicas failing together do not retry together. Never below base/2, so a
// burst of -1 answers cannot turn into a hot loop.
func backoff(attempt int, base, max time.Duration, rnd func() float64) time.Duration {
	if base <= 0 {
		return 0
	}
	ceil := base
	for i := 1; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max {
		ceil = max
	}
	if rnd == nil {
		rnd = rand.Float64
	}
	floor := base / 2
	return floor + time.Duration(rnd()*float64(ceil-floor))
}
