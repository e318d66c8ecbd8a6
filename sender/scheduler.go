package sender

import (
	"container/heap"
	"time"
)

// Priority classes, most urgent first.
const (
	classUrgent = iota
	classNormal
	classBulk
	numClasses
)

// task is one outbound message held by the scheduler.
type task struct {
	lane string // fairness lane: class + app + recipients
	cls  int
	seq  uint64 // WXHUB_OUT stream sequence: the order within a lane
	// payload, opaque to the scheduler
	job *job
}

// lane is the FIFO of one recipient set within one class. At most one of its
// tasks is in flight, which keeps a member's messages in order and makes
// per-member limits race-free inside a replica.
type lane struct {
	key       string
	cls       int
	q         []*task
	notBefore time.Time
	state     int // laneReady, laneSleeping, laneBusy
	heapIdx   int
}

const (
	laneReady = iota
	laneSleeping
	laneBusy
)

// scheduler picks the next message to try: the most urgent class with a ready
// lane, round-robin between the lanes (recipients) of that class. A lane that
// must wait (send limit, backoff, quiet hours) sleeps in a heap ordered by its
// wake time, so a held-back member never blocks the others and picking costs
// O(log lanes) however large the backlog. Not safe for concurrent use.
type scheduler struct {
	lanes   map[string]*lane
	ready   [numClasses][]*lane
	sleep   [numClasses]laneHeap
	paused  time.Time // no pick before this (corp-wide limit or 45009)
	pending int
}

func newScheduler() *scheduler { return &scheduler{lanes: map[string]*lane{}} }

// len is the number of tasks held (in flight included).
func (s *scheduler) len() int { return s.pending }

// push adds t to its lane in stream order: a message redelivered after a
// crash (or handed back by a sender that stopped) goes before the later ones
// already queued, but never before a head that is in flight.
func (s *scheduler) push(t *task, now time.Time) {
	s.pending++
	l := s.lanes[t.lane]
	if l == nil {
		l = &lane{key: t.lane, cls: t.cls, state: laneReady}
		s.lanes[t.lane] = l
		l.q = append(l.q, t)
		s.ready[l.cls] = append(s.ready[l.cls], l)
		return
	}
	i := len(l.q)
	low := 0
	if l.state == laneBusy {
		low = 1
	}
	for i > low && t.seq != 0 && l.q[i-1].seq > t.seq {
		i--
	}
	l.q = append(l.q, nil)
	copy(l.q[i+1:], l.q[i:])
	l.q[i] = t
}

// pick returns the next task to try and marks its lane busy; nil when nothing is
// ready, with the earliest wake time (zero: nothing waits).
func (s *scheduler) pick(now time.Time) (*task, time.Time) {
	if now.Before(s.paused) {
		return nil, s.paused
	}
	var wake time.Time
	for c := range numClasses {
		h := &s.sleep[c]
		for h.Len() > 0 && !(*h)[0].notBefore.After(now) {
			l := heap.Pop(h).(*lane)
			l.state = laneReady
			s.ready[c] = append(s.ready[c], l)
		}
		if len(s.ready[c]) > 0 {
			l := s.ready[c][0]
			s.ready[c][0] = nil
			s.ready[c] = s.ready[c][1:]
			l.state = laneBusy
			return l.q[0], time.Time{}
		}
		if h.Len() > 0 && (wake.IsZero() || (*h)[0].notBefore.Before(wake)) {
			wake = (*h)[0].notBefore
		}
	}
	return nil, wake
}

// done removes the lane's head (sent, failed for good, or handed back to
// JetStream) and lets the lane take its turn again at the back of its class.
func (s *scheduler) done(t *task, now time.Time) {
	l := s.lanes[t.lane]
	if l == nil || len(l.q) == 0 || l.q[0] != t {
		return
	}
	s.pending--
	l.q[0] = nil
	l.q = l.q[1:]
	if len(l.q) == 0 {
		delete(s.lanes, l.key)
		return
	}
	s.requeue(l, now, now)
}

// defer_ keeps t at the head of its lane and puts the lane to sleep until at
// (limit reached, backoff, quiet hours).
func (s *scheduler) defer_(t *task, at, now time.Time) {
	l := s.lanes[t.lane]
	if l == nil || len(l.q) == 0 || l.q[0] != t {
		return
	}
	s.requeue(l, at, now)
}

// drain removes every task that is not in flight and returns them; a lane
// with a task in flight keeps that one (done or defer_ settle it).
func (s *scheduler) drain() []*task {
	var out []*task
	for c := range numClasses {
		s.ready[c], s.sleep[c] = nil, nil
	}
	for k, l := range s.lanes {
		if l.state == laneBusy {
			out = append(out, l.q[1:]...)
			s.pending -= len(l.q) - 1
			l.q = l.q[:1]
			continue
		}
		out = append(out, l.q...)
		s.pending -= len(l.q)
		delete(s.lanes, k)
	}
	return out
}

// pause stops all picking until at (a corp-wide limit is full, or WeCom said 45009).
func (s *scheduler) pause(at time.Time) {
	if at.After(s.paused) {
		s.paused = at
	}
}

func (s *scheduler) requeue(l *lane, at, now time.Time) {
	l.notBefore = at
	if at.After(now) {
		l.state = laneSleeping
		heap.Push(&s.sleep[l.cls], l)
		return
	}
	l.state = laneReady
	s.ready[l.cls] = append(s.ready[l.cls], l)
}

// laneHeap orders sleeping lanes by wake time.
type laneHeap []*lane

func (h laneHeap) Len() int           { return len(h) }
func (h laneHeap) Less(i, j int) bool { return h[i].notBefore.Before(h[j].notBefore) }
func (h laneHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *laneHeap) Push(x any) {
	l := x.(*lane)
	l.heapIdx = len(*h)
	*h = append(*h, l)
}
func (h *laneHeap) Pop() any {
	old := *h
	n := len(old)
	l := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	l.heapIdx = -1
	return l
}
