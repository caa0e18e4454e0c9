// Package fanout is the broker-independent part of the layers that carry
// changes between processes (layer/redis, layer/nats): the wire format,
// topic naming, counted joins over one broker connection, and the
// reassembly that delivers each change once and in order although it
// arrives once per topic.
//
// # Why reassembly
//
// A Publish batch goes out as one message per topic, each holding the
// batch's changes of that topic. A process that joined topics A and B of a
// batch where A holds changes 3 and 5 and B holds 4 and 5 receives both
// messages, in either order; delivering them as they come would hand over
// 5 before 4 (B's order broken) or 4 before 3 (A's). So a change waits
// until the messages of all its topics that this process subscribes to
// have arrived, and a batch's changes are delivered in index order. The
// broker keeps one publisher's messages in order on one subscriber
// connection, so a newer batch from the same publisher ends the wait for
// an older one; the subscription confirmations each broker reports in the
// same stream say which topics' messages are due at all.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/restlive/restlive/layer"
	"github.com/restlive/restlive/live"
)

// ErrDown is returned by a Broker whose connection is down. Joins during an
// outage succeed: the broker restores the subscription when it reconnects,
// and the layer then reports the topic as Missed.
var ErrDown = errors.New("broker connection down")

// ErrClosed is returned by the methods of a closed layer or receiver.
var ErrClosed = errors.New("closed")

// A Broker is the connection a Fanout subscribes through.
type Broker interface {
	// Subscribe sends the subscriptions of channels. It is called in the
	// order joins and leaves happen, one call at a time, and should not
	// wait for the broker's answer.
	Subscribe(ctx context.Context, channels []string) error
	// Unsubscribe sends the end of the subscriptions of channels, like
	// Subscribe.
	Unsubscribe(ctx context.Context, channels []string) error
	// Sync returns when the subscriptions sent so far are in effect at the
	// broker, and arranges for Confirm(channels...) to be called in stream
	// order. It returns ErrDown when the connection is down.
	Sync(ctx context.Context, channels []string) error
}

// Config configures a Fanout.
type Config struct {
	// Name starts errors and log messages ("layer/redis").
	Name   string
	Naming Naming
	Logger *slog.Logger
	Broker Broker
}

// How long a change waits for the messages of its other topics before it
// is delivered anyway. Waits end sooner in all but rare races (a message
// lost at the broker), so this only bounds the delay those cause.
const staleAfter = 200 * time.Millisecond

// How long the dedupe state of a publisher that has gone quiet is kept.
const forgetAfter = 10 * time.Minute

// How many deliveries may wait for the receivers before the broker's
// reader is held back; the broker then buffers, and drops the connection
// or messages when its own limits are reached (reported as Missed).
const maxQueued = 1024

// A Fanout holds the state of one Layer value: its receivers, the topics
// they joined, what is known of each publisher's current batch, and the
// queue of deliveries with the goroutine that makes them. Its methods may
// be called concurrently, except that the inbound events (Message,
// Confirm, Unconfirm, Lost, Restored, Dropped, Expire) must come from one
// goroutine in the order the broker connection reports them.
type Fanout struct {
	name   string
	naming Naming
	log    *slog.Logger
	broker Broker

	// subMu orders the broker commands as the joins and leaves that cause
	// them, without holding mu during I/O.
	subMu sync.Mutex

	mu        sync.Mutex
	closed    bool
	topics    map[live.Topic]*topicSub
	channels  map[string]*channelSub
	receivers map[*receiver]struct{}
	pubs      map[uint64]*pubState
	queue     []delivery

	wake    chan struct{} // a delivery was queued
	drained chan struct{} // the queue was taken
	done    chan struct{}
	wg      sync.WaitGroup

	pubMu sync.Mutex // serialises Publish: one order, batch ids in order
	id    uint64
	batch uint64
	enc   encoder

	// The counters of Stats.
	down                           atomic.Bool
	reconnects, sent, got, dropped atomic.Uint64
}

// Stats returns the counters of the layer over this Fanout.
func (f *Fanout) Stats() layer.Stats {
	return layer.Stats{
		Connected: !f.down.Load(), Reconnects: f.reconnects.Load(),
		MessagesOut: f.sent.Load(), MessagesIn: f.got.Load(), Dropped: f.dropped.Load(),
	}
}

type topicSub struct {
	channel string
	count   int // joins over all receivers
}

type channelSub struct {
	count     int  // topics joined that map to this channel
	confirmed bool // the broker reported the subscription in effect
}

type delivery struct {
	r *receiver
	d live.Delivery
}

// New returns a Fanout and starts its delivery goroutine, which Close
// stops. id identifies this publisher on the wire.
func New(cfg Config, id uint64) *Fanout {
	f := &Fanout{
		name:      cfg.Name,
		naming:    cfg.Naming,
		log:       cfg.Logger,
		broker:    cfg.Broker,
		topics:    make(map[live.Topic]*topicSub),
		channels:  make(map[string]*channelSub),
		receivers: make(map[*receiver]struct{}),
		pubs:      make(map[uint64]*pubState),
		wake:      make(chan struct{}, 1),
		drained:   make(chan struct{}, 1),
		done:      make(chan struct{}),
		id:        id,
	}
	f.wg.Add(1)
	go f.deliverLoop()
	return f
}

// Close stops deliveries. Deliveries still queued are dropped.
func (f *Fanout) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	for r := range f.receivers {
		r.closed.Store(true)
	}
	f.mu.Unlock()
	close(f.done)
	f.wg.Wait()
}

func (f *Fanout) deliverLoop() {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		queue := f.queue
		f.queue = nil
		f.mu.Unlock()
		if len(queue) == 0 {
			select {
			case <-f.wake:
				continue
			case <-f.done:
				return
			}
		}
		select {
		case f.drained <- struct{}{}:
		default:
		}
		for _, d := range queue {
			if f.isDone() {
				return
			}
			if !d.r.closed.Load() {
				d.r.deliver(d.d)
			}
		}
	}
}

func (f *Fanout) isDone() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// push queues ds. Called with mu held, so deliveries keep the order in
// which they were decided.
func (f *Fanout) push(ds []delivery) {
	if len(ds) == 0 {
		return
	}
	f.queue = append(f.queue, ds...)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// backpressure holds the broker's reader back while the receivers are far
// behind. Called without mu.
func (f *Fanout) backpressure() {
	for {
		f.mu.Lock()
		n := len(f.queue)
		f.mu.Unlock()
		if n <= maxQueued {
			return
		}
		select {
		case <-f.drained:
		case <-f.done:
			return
		}
	}
}

// Receive adds a receiver that hands its deliveries to deliver.
func (f *Fanout) Receive(deliver func(live.Delivery)) (live.Receiver, error) {
	if deliver == nil {
		return nil, fmt.Errorf("%s: receive: nil deliver func", f.name)
	}
	r := &receiver{f: f, deliver: deliver, joined: make(map[live.Topic]int)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, fmt.Errorf("%s: receive: %w", f.name, ErrClosed)
	}
	f.receivers[r] = struct{}{}
	return r, nil
}

type receiver struct {
	f       *Fanout
	deliver func(live.Delivery)
	closed  atomic.Bool
	joined  map[live.Topic]int // guarded by f.mu
}

func (r *receiver) Join(ctx context.Context, topics ...live.Topic) error {
	if len(topics) == 0 {
		return nil
	}
	f := r.f
	f.subMu.Lock()
	f.mu.Lock()
	if f.closed || r.closed.Load() {
		f.mu.Unlock()
		f.subMu.Unlock()
		return fmt.Errorf("%s: join: %w", f.name, ErrClosed)
	}
	var fresh, unconfirmed []string
	for _, t := range topics {
		r.joined[t]++
		ts := f.topics[t]
		if ts == nil {
			ts = &topicSub{channel: f.naming.Channel(t)}
			f.topics[t] = ts
		}
		ts.count++
		cs := f.channels[ts.channel]
		if cs == nil {
			cs = &channelSub{}
			f.channels[ts.channel] = cs
			fresh = append(fresh, ts.channel)
		}
		if ts.count == 1 {
			cs.count++
		}
		if !cs.confirmed && !slices.Contains(unconfirmed, ts.channel) {
			unconfirmed = append(unconfirmed, ts.channel)
		}
	}
	f.mu.Unlock()
	var err error
	if len(fresh) > 0 {
		err = f.broker.Subscribe(ctx, fresh)
	}
	f.subMu.Unlock()
	// A channel another join subscribed to may not be in effect yet
	// either: wait for it too, so that Join keeps its promise.
	if err == nil && len(unconfirmed) > 0 {
		err = f.broker.Sync(ctx, unconfirmed)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrDown):
		f.log.Debug(f.name+": joined while the broker is down; it will be reported missed", "topics", len(topics))
		return nil
	}
	if lerr := r.Leave(context.WithoutCancel(ctx), topics...); lerr != nil {
		f.log.Warn(f.name+": undo failed join", "err", lerr)
	}
	return fmt.Errorf("%s: join %s: %w", f.name, topics[0], err)
}

func (r *receiver) Leave(ctx context.Context, topics ...live.Topic) error {
	f := r.f
	f.subMu.Lock()
	defer f.subMu.Unlock()
	f.mu.Lock()
	gone := f.leave(r, topics)
	f.mu.Unlock()
	if len(gone) == 0 {
		return nil
	}
	if err := f.broker.Unsubscribe(ctx, gone); err != nil && !errors.Is(err, ErrDown) {
		return fmt.Errorf("%s: leave: %w", f.name, err)
	}
	return nil
}

// leave undoes one join of each of topics by r and returns the channels no
// longer needed. Called with subMu and mu held.
func (f *Fanout) leave(r *receiver, topics []live.Topic) []string {
	var gone []string
	for _, t := range topics {
		n := r.joined[t]
		if n == 0 {
			continue
		}
		if n == 1 {
			delete(r.joined, t)
		} else {
			r.joined[t] = n - 1
		}
		ts := f.topics[t]
		if ts.count--; ts.count > 0 {
			continue
		}
		delete(f.topics, t)
		cs := f.channels[ts.channel]
		if cs.count--; cs.count > 0 {
			continue
		}
		delete(f.channels, ts.channel)
		gone = append(gone, ts.channel)
	}
	// Messages on gone channels stop coming: changes must not wait for them.
	var ready []*entry
	for _, ch := range gone {
		for _, ps := range f.pubs {
			ps.satisfy(ch)
			ready = ps.ready(ready, time.Time{})
		}
	}
	f.push(f.route(ready))
	return gone
}

func (r *receiver) Close() error {
	f := r.f
	if r.closed.Swap(true) {
		return nil
	}
	f.subMu.Lock()
	defer f.subMu.Unlock()
	f.mu.Lock()
	var all []live.Topic
	for t, n := range r.joined {
		for range n {
			all = append(all, t)
		}
	}
	gone := f.leave(r, all)
	delete(f.receivers, r)
	closed := f.closed
	f.mu.Unlock()
	if len(gone) == 0 || closed {
		return nil
	}
	if err := f.broker.Unsubscribe(context.Background(), gone); err != nil && !errors.Is(err, ErrDown) {
		return fmt.Errorf("%s: close receiver: %w", f.name, err)
	}
	return nil
}

// Joined returns the channels of every joined topic, for a broker to
// subscribe again from scratch.
func (f *Fanout) Joined() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	channels := make([]string, 0, len(f.channels))
	for ch := range f.channels {
		channels = append(channels, ch)
	}
	return channels
}

// Confirm records that the subscriptions of channels are in effect, at
// this point of the broker's stream.
func (f *Fanout) Confirm(channels ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range channels {
		if cs := f.channels[ch]; cs != nil {
			cs.confirmed = true
		}
	}
}

// Unconfirm records that the subscription of channel ended.
func (f *Fanout) Unconfirm(channel string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cs := f.channels[channel]
	if cs == nil || !cs.confirmed {
		return
	}
	cs.confirmed = false
	var ready []*entry
	for _, ps := range f.pubs {
		ps.satisfy(channel)
		ready = ps.ready(ready, time.Time{})
	}
	f.push(f.route(ready))
}

// Message handles a payload received on channel.
func (f *Fanout) Message(channel, payload string) {
	f.got.Add(1)
	m, err := decode(payload)
	if err != nil {
		f.log.Warn(f.name+": drop a message", "channel", channel, "err", err)
		return
	}
	now := time.Now()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	ps := f.pubs[m.publisher]
	if ps == nil {
		ps = &pubState{arrived: make(map[string]struct{})}
		f.pubs[m.publisher] = ps
	}
	ps.last = now
	var ready []*entry
	if m.batch < ps.batch {
		// One publisher's messages arrive in order: an older batch was
		// given up on and its changes delivered.
		f.mu.Unlock()
		return
	}
	if m.batch > ps.batch {
		ready = ps.flush(ready)
		ps.reset(m.batch, m.size)
	}
	ps.arrived[channel] = struct{}{}
	ps.satisfy(channel)
	for i := range m.changes {
		x := &m.changes[i]
		if ps.see(x.index) {
			continue
		}
		e := &entry{index: x.index, change: x.change, topics: x.change.Topics()}
		for _, t := range e.topics {
			ts := f.topics[t]
			if ts == nil || !f.channels[ts.channel].confirmed {
				continue
			}
			if _, ok := ps.arrived[ts.channel]; !ok && !slices.Contains(e.expect, ts.channel) {
				e.expect = append(e.expect, ts.channel)
			}
		}
		ps.insert(e)
	}
	ready = ps.ready(ready, now)
	f.push(f.route(ready))
	f.mu.Unlock()
	f.backpressure()
}

// Lost records that the connection dropped: messages of the batches being
// assembled will not come, and subscriptions must be confirmed again.
func (f *Fanout) Lost() {
	f.down.Store(true)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cs := range f.channels {
		cs.confirmed = false
	}
	var ready []*entry
	for _, ps := range f.pubs {
		ready = ps.flush(ready)
	}
	f.push(f.route(ready))
}

// Restored tells every receiver that the changes of every topic it joined
// may have been missed while the connection was down.
func (f *Fanout) Restored() {
	if f.down.Swap(false) {
		f.reconnects.Add(1)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var ds []delivery
	for r := range f.receivers {
		if len(r.joined) == 0 {
			continue
		}
		missed := make([]live.Topic, 0, len(r.joined))
		for t := range r.joined {
			missed = append(missed, t)
		}
		sortTopics(missed)
		ds = append(ds, delivery{r: r, d: live.Delivery{Missed: missed}})
	}
	f.push(ds)
}

// Dropped tells the receivers of channel's topics that its messages may
// have been lost (the connection dropped some while the reader was slow).
func (f *Fanout) Dropped(channel string) {
	f.dropped.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	var ready []*entry
	for _, ps := range f.pubs {
		ready = ps.flush(ready)
	}
	ds := f.route(ready)
	for r := range f.receivers {
		var missed []live.Topic
		for t := range r.joined {
			if f.topics[t].channel == channel {
				missed = append(missed, t)
			}
		}
		if len(missed) > 0 {
			sortTopics(missed)
			ds = append(ds, delivery{r: r, d: live.Delivery{Missed: missed}})
		}
	}
	f.push(ds)
}

// Expire delivers the changes that waited too long for messages of their
// other topics and forgets publishers gone quiet. It returns when it wants
// to be called again.
func (f *Fanout) Expire(now time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	next := time.Minute
	var ready []*entry
	for id, ps := range f.pubs {
		if len(ps.pending) == 0 {
			if now.Sub(ps.last) > forgetAfter {
				delete(f.pubs, id)
			}
			continue
		}
		if wait := ps.since.Add(staleAfter).Sub(now); wait > 0 {
			next = min(next, wait)
			continue
		}
		f.log.Debug(f.name+": deliver changes without waiting for all their topics", "changes", len(ps.pending))
		ready = ps.flush(ready)
	}
	f.push(f.route(ready))
	return next
}

// route picks, for each receiver, the ready changes of the topics it joined.
// Called with mu held.
func (f *Fanout) route(ready []*entry) []delivery {
	if len(ready) == 0 {
		return nil
	}
	var ds []delivery
	for r := range f.receivers {
		var picked []live.Change
		for _, e := range ready {
			for _, t := range e.topics {
				if r.joined[t] > 0 {
					picked = append(picked, e.change)
					break
				}
			}
		}
		if len(picked) > 0 {
			ds = append(ds, delivery{r: r, d: live.Delivery{Changes: picked}})
		}
	}
	return ds
}

func sortTopics(ts []live.Topic) {
	sort.Slice(ts, func(i, j int) bool {
		a, b := ts[i], ts[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Value < b.Value
	})
}

// pubState is what is known of one publisher's latest batch.
type pubState struct {
	batch   uint64
	seen    []uint64            // bit i: change i of the batch was received
	arrived map[string]struct{} // channels whose message of the batch came
	pending []*entry            // received, not delivered, by index
	since   time.Time           // when pending last became non-empty
	last    time.Time           // when the last message came
}

type entry struct {
	index  int
	change live.Change
	topics []live.Topic
	expect []string // channels whose message this change still waits for
}

func (ps *pubState) reset(batch uint64, size int) {
	ps.batch = batch
	words := (size + 63) / 64
	if cap(ps.seen) >= words {
		ps.seen = ps.seen[:words]
		clear(ps.seen)
	} else {
		ps.seen = make([]uint64, words)
	}
	clear(ps.arrived)
}

// see marks change i as received and reports whether it already was.
func (ps *pubState) see(i int) bool {
	w, bit := i/64, uint64(1)<<(i%64)
	if w >= len(ps.seen) {
		// Messages of one batch disagree on its size: a corrupt sender.
		// Grow rather than fail; the changes are still well formed.
		ps.seen = append(ps.seen, make([]uint64, w+1-len(ps.seen))...)
	}
	if ps.seen[w]&bit != 0 {
		return true
	}
	ps.seen[w] |= bit
	return false
}

func (ps *pubState) insert(e *entry) {
	i := sort.Search(len(ps.pending), func(i int) bool { return ps.pending[i].index > e.index })
	ps.pending = slices.Insert(ps.pending, i, e)
}

// satisfy records that no more is to be waited for from channel.
func (ps *pubState) satisfy(channel string) {
	for _, e := range ps.pending {
		if i := slices.Index(e.expect, channel); i >= 0 {
			e.expect = slices.Delete(e.expect, i, i+1)
		}
	}
}

// ready appends the changes that can be delivered, in index order, to out:
// those before the first that still waits for a message. now, when not
// zero, starts the staleness clock of what is left.
func (ps *pubState) ready(out []*entry, now time.Time) []*entry {
	n := 0
	for n < len(ps.pending) && len(ps.pending[n].expect) == 0 {
		n++
	}
	out = append(out, ps.pending[:n]...)
	ps.pending = slices.Delete(ps.pending, 0, n)
	switch {
	case len(ps.pending) == 0:
		ps.since = time.Time{}
	case n > 0 || ps.since.IsZero():
		if now.IsZero() {
			now = time.Now()
		}
		ps.since = now
	}
	return out
}

// flush appends every pending change to out, in index order.
func (ps *pubState) flush(out []*entry) []*entry {
	out = append(out, ps.pending...)
	clear(ps.pending)
	ps.pending = ps.pending[:0]
	ps.since = time.Time{}
	return out
}
