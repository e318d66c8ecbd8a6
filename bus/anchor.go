package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// SubjectRouteAnchor holds WXHUB_ROUTE's anchor message (see KeepRouteAnchor).
// No connector's filter (wxhub.route.<connector>.>) matches it: a filter
// needs a token after the connector's name, and the anchor has none.
const SubjectRouteAnchor = SubjectRoutePrefix + "._anchor"

// RouteAnchorEvery is how often KeepRouteAnchor writes a new anchor: until the
// next anchor lands in a newly started block, that block is created again at
// every drain, so the period bounds that churn. While nothing is routed the
// period is five times longer.
const RouteAnchorEvery = 200 * time.Millisecond

// KeepRouteAnchor keeps one message that no connector consumes in WXHUB_ROUTE's
// current write block, until ctx ends.
//
// Why: the file store deletes a block once its last message is removed, and
// when that block is the one being written it creates a new file, writes a
// tombstone into it and unlinks the old one. WXHUB_ROUTE is a work queue that
// connectors keep empty, so under load it would create and delete a file after
// nearly every event, under the stream's lock. A message nobody acks keeps the
// block in use. The store starts a new block when one is full (every 4 MB),
// so a new anchor is written every `every` and the previous one deleted: the
// block being written holds an anchor again within `every` of being started.
//
// It starts with AnchorRoute, which purges the anchors a stopped process
// left; after that each new anchor replaces the previous one by sequence, which
// costs the same however long the stream is (a purge by subject walks the
// blocks between the anchors, and a connector that is down can leave many).
//
// Errors are logged (a warning on the first, info when it works again) and the
// loop goes on: an anchor missing only costs speed.
func (b *Bus) KeepRouteAnchor(ctx context.Context, every time.Duration) {
	t := time.NewTimer(every)
	defer t.Stop()
	failing := false
	var prev uint64 // the anchor this loop wrote last; 0: start over with a purge
	var route jetstream.Stream
	for {
		var err error
		wait := every
		if prev == 0 {
			prev, err = b.anchorRoute(ctx, true)
			route = nil // the stream may have been declared again
		} else {
			var seq uint64
			seq, route, err = b.renewRouteAnchor(ctx, prev, route)
			if err == nil && seq == prev+1 {
				// Nothing was routed since the last anchor: no block can have
				// filled, so an idle hub renews five times less often.
				wait = idleAnchorFactor * every
			}
			prev = seq
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			b.log.Warn("WXHUB_ROUTE anchor not written; retrying", zap.Error(err))
		case err == nil && failing:
			b.log.Info("WXHUB_ROUTE anchor written again")
		}
		failing = err != nil
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// idleAnchorFactor stretches the anchor's period while nothing is routed.
const idleAnchorFactor = 5

// AnchorRoute writes a new anchor and purges the older ones, left by this
// process or by one that stopped (several processes may keep anchors at once).
func (b *Bus) AnchorRoute(ctx context.Context) error {
	_, err := b.anchorRoute(ctx, true)
	return err
}

// anchorRoute publishes an anchor (and purges the older ones when purge is
// set); it returns the new anchor's sequence.
func (b *Bus) anchorRoute(ctx context.Context, purge bool) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m := nats.NewMsg(SubjectRouteAnchor)
	m.Header.Set("Wxhub-Anchor", "keeps the stream's write block; consumed by no one")
	ack, err := b.js.PublishMsg(ctx, m)
	if err != nil {
		return 0, fmt.Errorf("bus: publish route anchor: %w", err)
	}
	if !purge {
		return ack.Sequence, nil
	}
	s, err := b.js.Stream(ctx, StreamRoute)
	if err != nil {
		return 0, fmt.Errorf("bus: route anchor: %w", err)
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(SubjectRouteAnchor), jetstream.WithPurgeKeep(1)); err != nil {
		return 0, fmt.Errorf("bus: purge old route anchors: %w", err)
	}
	return ack.Sequence, nil
}

// renewRouteAnchor writes a new anchor, then deletes the one at prev. route
// is the stream's handle from the previous round (nil: looked up, once: a
// lookup is a stream-info request, dearer than the anchor itself). On an error
// it returns 0, so that the next round starts over with a purge.
func (b *Bus) renewRouteAnchor(ctx context.Context, prev uint64, route jetstream.Stream) (uint64, jetstream.Stream, error) {
	seq, err := b.anchorRoute(ctx, false)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if route == nil {
		if route, err = b.js.Stream(ctx, StreamRoute); err != nil {
			return 0, nil, fmt.Errorf("bus: route anchor: %w", err)
		}
	}
	if err := route.DeleteMsg(ctx, prev); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil, fmt.Errorf("bus: delete the previous route anchor: %w", err)
	}
	return seq, route, nil
}

// RouteBacklog is the number of routed events not yet done by their
// connectors: WXHUB_ROUTE's messages without the anchors.
func (b *Bus) RouteBacklog(ctx context.Context) (uint64, error) {
	s, err := b.js.Stream(ctx, StreamRoute)
	if err != nil {
		return 0, fmt.Errorf("bus: route backlog: %w", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(SubjectRouteAnchor))
	if err != nil {
		return 0, fmt.Errorf("bus: route backlog: %w", err)
	}
	return RouteWork(info.State), nil
}

// RouteWork is WXHUB_ROUTE's message count without the anchors, from a state
// read with jetstream.WithSubjectFilter(SubjectRouteAnchor).
func RouteWork(st jetstream.StreamState) uint64 {
	return st.Msgs - min(st.Subjects[SubjectRouteAnchor], st.Msgs)
}
