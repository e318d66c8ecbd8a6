package bus

import (
	"context"
	"errors"
	"iter"

	"github.com/nats-io/nats.go/jetstream"
)

// ReadStream yields the messages of stream whose subject matches subject (a
// filter; wildcards allowed), in order from sequence from (0 = the first), by
// direct gets: a reader that creates no consumer and changes nothing. It ends
// at the last message; an error is yielded once and ends it too.
func (b *Bus) ReadStream(ctx context.Context, stream, subject string, from uint64) iter.Seq2[*jetstream.RawStreamMsg, error] {
	return func(yield func(*jetstream.RawStreamMsg, error) bool) {
		st, err := b.js.Stream(ctx, stream)
		if err != nil {
			yield(nil, err)
			return
		}
		for seq := max(from, 1); ; {
			raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(raw, nil) {
				return
			}
			seq = raw.Sequence + 1
		}
	}
}
