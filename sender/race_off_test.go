//go:build !race

package sender_test

const raceSlowdown = 1
