package live

import (
	"context"
	"errors"
	"sync"
)

// MemoryLayer is the Layer for one process: Publish hands changes straight
// to the receivers that joined their topics. The zero value is ready to
// use; all methods may be called concurrently.
type MemoryLayer struct {
	mu        sync.RWMutex
	receivers map[*memoryReceiver]struct{}
	// publish serialises Publish calls so every receiver sees one order.
	publish sync.Mutex
}

var _ Layer = (*MemoryLayer)(nil)

// NewMemoryLayer returns an empty MemoryLayer.
func NewMemoryLayer() *MemoryLayer { return &MemoryLayer{} }

// Publish delivers changes to every receiver that joined one of their
// topics, each change once, and returns when all of them have taken it.
// It fails only when ctx has ended before it began, so a publisher that
// retries on error never delivers twice.
func (l *MemoryLayer) Publish(ctx context.Context, changes []Change) error {
	if len(changes) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	l.publish.Lock()
	defer l.publish.Unlock()
	l.mu.RLock()
	receivers := make([]*memoryReceiver, 0, len(l.receivers))
	for r := range l.receivers {
		receivers = append(receivers, r)
	}
	l.mu.RUnlock()
	for _, r := range receivers {
		if picked := r.pick(changes); len(picked) > 0 {
			r.deliver(Delivery{Changes: picked})
		}
	}
	return nil
}

// Receive registers deliver for the topics the returned Receiver joins.
func (l *MemoryLayer) Receive(_ context.Context, deliver func(Delivery)) (Receiver, error) {
	if deliver == nil {
		return nil, errors.New("live: MemoryLayer.Receive: nil deliver func")
	}
	r := &memoryReceiver{layer: l, deliver: deliver, topics: make(map[Topic]int)}
	l.mu.Lock()
	if l.receivers == nil {
		l.receivers = make(map[*memoryReceiver]struct{})
	}
	l.receivers[r] = struct{}{}
	l.mu.Unlock()
	return r, nil
}

type memoryReceiver struct {
	layer   *MemoryLayer
	deliver func(Delivery)

	mu     sync.RWMutex
	topics map[Topic]int // joins not yet matched by a Leave
}

func (r *memoryReceiver) pick(changes []Change) []Change {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var picked []Change
	for _, c := range changes {
		for _, t := range c.Topics() {
			if r.topics[t] > 0 {
				picked = append(picked, c)
				break
			}
		}
	}
	return picked
}

func (r *memoryReceiver) Join(_ context.Context, topics ...Topic) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range topics {
		r.topics[t]++
	}
	return nil
}

func (r *memoryReceiver) Leave(_ context.Context, topics ...Topic) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range topics {
		if r.topics[t]--; r.topics[t] <= 0 {
			delete(r.topics, t)
		}
	}
	return nil
}

func (r *memoryReceiver) Close() error {
	r.layer.mu.Lock()
	delete(r.layer.receivers, r)
	r.layer.mu.Unlock()
	return nil
}
