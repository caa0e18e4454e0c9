package live

import "context"

// A Layer carries changes from the capture that publishes them to the hub of
// every process that serves subscriptions to them. MemoryLayer is the
// one-process layer; packages under layer/ hold the ones for many processes.
//
// Implementations must be safe for concurrent use.
type Layer interface {
	Publisher
	// Receive starts delivering to deliver, one call at a time, the changes
	// of the topics the returned Receiver joins: in publish order per topic
	// (two changes that share no joined topic may swap; the hub reads the
	// current state of a row, so it does not depend on their order).
	Receive(ctx context.Context, deliver func(Delivery)) (Receiver, error)
}

// A Receiver is one process's (one hub's) membership of a Layer.
type Receiver interface {
	// Join starts the delivery of the changes published to topics. When
	// Join returns, every change published afterwards is delivered. Joins
	// are counted: a topic joined twice stays joined until left twice.
	Join(ctx context.Context, topics ...Topic) error
	// Leave stops the delivery of topics.
	Leave(ctx context.Context, topics ...Topic) error
	// Close leaves every topic and stops delivery.
	Close() error
}

// A Delivery is what a Layer hands to a Receiver.
type Delivery struct {
	// Changes are delivered once each, in publish order per topic, and
	// only if one of their topics was joined.
	Changes []Change
	// Missed lists topics whose changes may have been lost (a broker
	// connection dropped and came back). Their subscribers are told to
	// resynchronise.
	Missed []Topic
}
