package echo

import "testing"

func TestStripCommand(t *testing.T) {
	tests := []struct{ given, want string }{
		{"echo 你好", "你好"},
		{"ECHO  订单 1001", "订单 1001"},
		{"　echo hi", "hi"},
		{"echo", "echo"},
		{"echoes", "echoes"},
		{"你好", "你好"},
	}
	for _, tt := range tests {
		if got := stripCommand(tt.given); got != tt.want {
			t.Errorf("stripCommand(%q) = %q, want %q", tt.given, got, tt.want)
		}
	}
}
