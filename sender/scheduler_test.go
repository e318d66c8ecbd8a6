package sender

import (
	"testing"
	"time"
)

func mkTask(lane string, cls int) *task { return &task{lane: lane, cls: cls} }

func TestSchedulerPriorityAndFairness(t *testing.T) {
	s := newScheduler()
	now := t0
	// Bulk to a (3 messages) then b (1); normal to c; urgent to d arrives last.
	for _, x := range []struct {
		lane string
		cls  int
	}{{"a", classBulk}, {"a", classBulk}, {"a", classBulk}, {"b", classBulk}, {"c", classNormal}, {"d", classUrgent}} {
		s.push(mkTask(x.lane, x.cls), now)
	}
	var got []string
	for {
		tk, _ := s.pick(now)
		if tk == nil {
			break
		}
		got = append(got, tk.lane)
		s.done(tk, now)
	}
	want := []string{"d", "c", "a", "b", "a", "a"} // urgent, normal, then bulk round-robin
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if s.len() != 0 {
		t.Fatalf("len = %d after all done", s.len())
	}
}

func TestSchedulerSleepingLaneDoesNotBlock(t *testing.T) {
	s := newScheduler()
	now := t0
	a1, b1 := mkTask("a", classNormal), mkTask("b", classNormal)
	s.push(a1, now)
	s.push(b1, now)
	tk, _ := s.pick(now)
	if tk != a1 {
		t.Fatal("want a first")
	}
	s.defer_(a1, now.Add(time.Minute), now) // a's member window is full
	tk, _ = s.pick(now)
	if tk != b1 {
		t.Fatal("b must not wait behind a")
	}
	s.done(b1, now)
	tk, wake := s.pick(now)
	if tk != nil || !wake.Equal(now.Add(time.Minute)) {
		t.Fatalf("pick = %v, wake %s; want nothing until +1m", tk, wake)
	}
	tk, _ = s.pick(now.Add(time.Minute))
	if tk != a1 {
		t.Fatal("a not ready after its wake time")
	}
}

func TestSchedulerBusyLaneKeepsOrder(t *testing.T) {
	s := newScheduler()
	a1, a2 := mkTask("a", classNormal), mkTask("a", classNormal)
	s.push(a1, t0)
	s.push(a2, t0)
	if tk, _ := s.pick(t0); tk != a1 {
		t.Fatal("want a1")
	}
	if tk, _ := s.pick(t0); tk != nil {
		t.Fatal("a2 picked while a1 in flight")
	}
	s.done(a1, t0)
	if tk, _ := s.pick(t0); tk != a2 {
		t.Fatal("want a2")
	}
}

func TestSchedulerPause(t *testing.T) {
	s := newScheduler()
	s.push(mkTask("a", classUrgent), t0)
	s.pause(t0.Add(time.Second))
	if tk, wake := s.pick(t0); tk != nil || !wake.Equal(t0.Add(time.Second)) {
		t.Fatal("picked during pause")
	}
	if tk, _ := s.pick(t0.Add(time.Second)); tk == nil {
		t.Fatal("nothing picked after pause")
	}
}

func BenchmarkSchedulerPick(b *testing.B) {
	s := newScheduler()
	for i := range 10000 {
		s.push(mkTask(string(rune('a'+i%26))+string(rune(i)), classBulk), t0)
	}
	b.ResetTimer()
	for range b.N {
		tk, _ := s.pick(t0)
		s.done(tk, t0)
		s.push(mkTask(tk.lane, classBulk), t0)
	}
}

// drain returns every task not in flight and leaves the scheduler
// consistent: the in-flight one settles as usual, nothing else is picked.
func TestSchedulerDrainKeepsInFlight(t *testing.T) {
	s := newScheduler()
	now := t0
	for _, l := range []string{"a", "a", "b", "c"} {
		s.push(mkTask(l, classNormal), now)
	}
	inFlight, _ := s.pick(now) // a's head
	b, _ := s.pick(now)
	s.defer_(b, now.Add(time.Minute), now) // b sleeps
	out := s.drain()
	if len(out) != 3 || s.len() != 1 {
		t.Fatalf("drained %d, %d left; want 3 and the one in flight", len(out), s.len())
	}
	for _, x := range out {
		if x == inFlight {
			t.Fatal("the task in flight was drained")
		}
	}
	if x, wake := s.pick(now.Add(time.Hour)); x != nil || !wake.IsZero() {
		t.Fatalf("picked %v (wake %v) after the drain", x, wake)
	}
	s.done(inFlight, now)
	if s.len() != 0 || len(s.lanes) != 0 {
		t.Fatalf("%d tasks, %d lanes left", s.len(), len(s.lanes))
	}
}
