//go:build !linux

package disktest

func mount(string, int64) error { return errUnsupported }

func unmount(string) error { return nil }
