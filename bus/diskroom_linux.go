package bus

import "golang.org/x/sys/unix"

// minFreeBytes is the room a store needs before JetStream is restarted on it
// after a full disk (restarting sooner only fails again).
const minFreeBytes = 8 << 20

// diskHasRoom reports whether dir's file system has minFreeBytes free for
// this process (true when it cannot tell).
func diskHasRoom(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return true
	}
	return st.Bavail*uint64(st.Bsize) >= minFreeBytes
}
