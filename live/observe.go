package live

import "time"

// An Observer is told what a router does, for metrics: connections and
// why they end, frames, broadcasts, the hub's reads and resyncs. Package
// metrics turns it into Prometheus metrics; Router.Stats gives what the
// router holds at a moment.
//
// Observe is called from many goroutines, some on the path of every
// broadcast: it must be safe for concurrent use, fast, and never block.
type Observer interface {
	Observe(Event)
}

// An EventKind says what an Event tells.
type EventKind uint8

// The kinds of Event, and the fields each sets.
const (
	// EventConnected: a connection was accepted.
	EventConnected EventKind = iota + 1
	// EventDisconnected: a connection ended, for Reason.
	EventDisconnected
	// EventRefused: a connection was refused before it was served, for
	// Reason (ReasonOrigin, ReasonAuth, ReasonLimit, ReasonShutdown).
	EventRefused
	// EventFrame: a frame came from a client.
	EventFrame
	// EventFrameRefused: a frame was answered with an error Code.
	EventFrameRefused
	// EventBroadcast: a broadcast of Model with Action ("CREATED",
	// "UPDATED", "DELETED") was queued to N subscriptions.
	EventBroadcast
	// EventWrite: N bytes, Frames frames, left for a connection in one
	// write system call.
	EventWrite
	// EventDelivery: the layer delivered N changes to the hub.
	EventDelivery
	// EventRead: the hub read a scope of Model (Read says which read),
	// which took Duration, and Failed or not.
	EventRead
	// EventResync: N subscriptions were told to resynchronise, for Cause.
	EventResync
)

// An Event is one thing a router did (see EventKind for the fields each
// kind sets).
type Event struct {
	Kind     EventKind
	Model    string
	Action   string
	Reason   CloseReason
	Code     int
	N        int
	Frames   int
	Read     ReadKind
	Duration time.Duration
	Failed   bool
	Cause    ResyncCause
}

// A CloseReason says why a connection ended or was refused: a small set,
// fit for a metric's label.
type CloseReason string

// The reasons.
const (
	ReasonClient       CloseReason = "client"        // the client closed it, or went away
	ReasonSlowConsumer CloseReason = "slow_consumer" // too slow to keep up (1013)
	ReasonPingTimeout  CloseReason = "ping_timeout"  // no pong in time
	ReasonOrigin       CloseReason = "origin"        // a cross-origin page not allowed (1008)
	ReasonAuth         CloseReason = "auth"          // authentication refused or ended (4003)
	ReasonSession      CloseReason = "session_ended" // Router.Disconnect (4001)
	ReasonLimit        CloseReason = "limit"         // too many connections (1013)
	ReasonProtocol     CloseReason = "protocol"      // a binary or oversized frame (1003, 1009)
	ReasonShutdown     CloseReason = "shutdown"      // the router shut down (1001)
	ReasonError        CloseReason = "error"         // a write failed, or the server erred
)

// A ReadKind says which read of a scope an EventRead is.
type ReadKind string

// The reads.
const (
	ReadMembers ReadKind = "members" // a scope loaded or read again whole
	ReadFetch   ReadKind = "fetch"   // the rows a batch of changes names
	ReadRows    ReadKind = "rows"    // the same, shared by a family of scopes
	ReadHistory ReadKind = "history" // what changed since a client's offset
)

// A ResyncCause says why subscriptions were told to resynchronise.
type ResyncCause string

// The causes.
const (
	CauseBroker ResyncCause = "broker" // the layer may have lost messages
	CauseRead   ResyncCause = "read"   // a read of the scope failed or timed out
)

// observe tells the router's Observer, if any.
func (rt *Router) observe(e Event) {
	if rt.cfg.Observer != nil {
		rt.cfg.Observer.Observe(e)
	}
}
