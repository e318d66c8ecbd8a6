//go:build race

package sender_test

// The race detector slows JSON decoding and NATS several-fold; latency bounds
// are scaled by this in race builds and hold as stated in normal builds.
const raceSlowdown = 4
