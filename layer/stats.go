// Package layer holds what the layers between server processes
// (layer/redis, layer/nats) share with their users: the counters they
// keep, for metrics.
package layer

// Stats are a layer's counters since it was opened.
type Stats struct {
	// Connected says whether the broker connection is up now.
	Connected bool
	// Reconnects counts the connections restored after a loss.
	Reconnects uint64
	// MessagesOut and MessagesIn count the broker messages published and
	// received (a batch of changes goes out as one message per topic).
	MessagesOut, MessagesIn uint64
	// Dropped counts the times the broker connection dropped messages
	// (a NATS slow consumer), each reported to the receivers as missed.
	Dropped uint64
}
