package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/wxhub/wxhub/bus"
	"github.com/wxhub/wxhub/wecom/sim/load"
)

// legs splits each reply's end-to-end latency at the two streams a message
// crosses, by the time JetStream stored it (the server's clock, on this
// machine like the generator's):
//   - ingest: due → stored in WXHUB_IN (generator, HTTP, gateway);
//   - middle: WXHUB_IN → the reply stored in WXHUB_OUT (router, WXHUB_ROUTE,
//     echo connector);
//   - outbound: WXHUB_OUT → accepted by the simulator (sender, WeCom call).
//
// A tail shared by every leg is queueing on busy cores; a tail in one leg
// names the stage to look at.
type legs struct {
	ingest, middle, outbound *load.Latencies
}

// streamMarks is where WXHUB_IN and WXHUB_OUT end before a step: its messages
// come after.
type streamMarks struct{ in, out uint64 }

func markStreams(ctx context.Context, b *bus.Bus) (streamMarks, error) {
	in, err := streamState(ctx, b, bus.StreamIn)
	if err != nil {
		return streamMarks{}, err
	}
	out, err := streamState(ctx, b, bus.StreamOut)
	return streamMarks{in.LastSeq, out.LastSeq}, err
}

// storedAt maps each request's sequence number (its text's marker) to when
// stream stored the message carrying it, from sequence from on.
func storedAt(ctx context.Context, b *bus.Bus, stream, subject string, from uint64) (map[int64]time.Time, error) {
	at := map[int64]time.Time{}
	for raw, err := range b.ReadStream(ctx, stream, subject, from) {
		if err != nil {
			return nil, fmt.Errorf("bench: read %s: %w", stream, err)
		}
		if seq, ok := load.ParseMarker(string(raw.Data), load.DefaultMarker); ok {
			if _, dup := at[seq]; !dup {
				at[seq] = raw.Time
			}
		}
	}
	return at, nil
}

// storedTimes holds when WXHUB_IN stored each step request's event and
// WXHUB_OUT its reply, by the request's sequence number.
type storedTimes struct{ in, out map[int64]time.Time }

// readStoredTimes reads both streams from the step's marks on.
func readStoredTimes(ctx context.Context, b *bus.Bus, since streamMarks) (storedTimes, error) {
	in, err := storedAt(ctx, b, bus.StreamIn, bus.SubjectInAll, since.in+1)
	if err != nil {
		return storedTimes{}, err
	}
	out, err := storedAt(ctx, b, bus.StreamOut, bus.SubjectOutAll, since.out+1)
	return storedTimes{in, out}, err
}

// split cuts one reply's latency into its legs; ok is false when either of its
// messages was not found.
func (s storedTimes) split(seq int64, due time.Time, latency time.Duration) (ingest, middle, outbound time.Duration, ok bool) {
	tin, ok1 := s.in[seq]
	tout, ok2 := s.out[seq]
	if !ok1 || !ok2 {
		return 0, 0, 0, false
	}
	return tin.Sub(due), tout.Sub(tin), due.Add(latency).Sub(tout), true
}

// measureLegs splits the step's replies (see legs) in one pass: with times
// nil it measures no legs (nil); a reply whose messages are not both found is
// left out of them. When timeline is set it gets a line per reply: rate r, due
// time, latency and the three legs in µs ("-" each when not split).
func measureLegs(times *storedTimes, reqs []load.Request, res *load.Result, rec *load.Recorder, r float64, timeline io.Writer) *legs {
	var l *legs
	if times != nil {
		l = &legs{load.NewLatencies(res.OK), load.NewLatencies(res.OK), load.NewLatencies(res.OK)}
	}
	if l == nil && timeline == nil {
		return nil
	}
	rec.EachReply(reqs, res, func(seq int64, due time.Time, latency time.Duration) {
		var in, mid, out time.Duration
		ok := false
		if times != nil {
			in, mid, out, ok = times.split(seq, due, latency)
		}
		if ok {
			l.ingest.Add(in)
			l.middle.Add(mid)
			l.outbound.Add(out)
		}
		if timeline == nil {
			return
		}
		if ok {
			fmt.Fprintf(timeline, "%g %d %d %d %d %d\n", r, due.UnixMicro(), latency.Microseconds(), in.Microseconds(), mid.Microseconds(), out.Microseconds())
		} else {
			fmt.Fprintf(timeline, "%g %d %d - - -\n", r, due.UnixMicro(), latency.Microseconds())
		}
	})
	return l
}
