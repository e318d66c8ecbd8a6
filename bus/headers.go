package bus

// Header names used on the bus. Every component reads and writes headers through
// these constants so that a rename happens in one place.
const (
	// HeaderMsgID is JetStream's de-duplication id: a second publish with the same
	// id inside the stream's duplicate window is acknowledged but not stored.
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderExpectedStream makes the server reject a publish that would land in
	// another stream (a guard against overlapping subjects).
	HeaderExpectedStream = "Nats-Expected-Stream"
	// HeaderTraceParent carries the W3C trace context (version-traceid-spanid-flags).
	HeaderTraceParent = "traceparent"
	// HeaderTraceState carries vendor trace state; passed through untouched.
	HeaderTraceState = "tracestate"
	// HeaderSchema names the body's JSON Schema as "<id>/<version>", e.g. wxhub.event/v1.
	HeaderSchema = "Wxhub-Schema"
	// HeaderReplayOf is set on a message republished from the DLQ: the DLQ
	// sequence it was replayed from.
	HeaderReplayOf = "Wxhub-Replay-Of"
	// HeaderConnector names the connector a routed event is meant for.
	HeaderConnector = "Wxhub-Connector"
	// HeaderPartition is the partition (hash of the user) of a routed event.
	HeaderPartition = "Wxhub-Partition"
)
