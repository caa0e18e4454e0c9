package live

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"iter"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unique"
	"unsafe"
)

// The hub turns the changes a Layer delivers into broadcasts. Subscriptions
// that would see the same thing share a group: same model, group field and
// value, view arguments, query parameters and Scope key. A group remembers
// which instances are in its scope (members), so that a change can be told
// apart as entering (CREATED), staying (UPDATED) or leaving (DELETED) the
// scope, and costs one read and one serialization however many
// subscriptions the group has. Groups whose scopes share their query (see
// SharedScope), such as one per user watching a public list, form a family
// that runs that query once per round. A group whose scope depends on other
// models (see Dependency) is read again whole when a row of one changes.
//
// Work is queued per family and done by at most Config.Concurrency
// workers, so delivering a batch costs the layer no database read, and a
// slow scope holds up its own family only: each family's work is done in
// order, one round at a time, and a round takes everything queued for it.
//
// Offsets (PROTOCOL.md, "Snapshot and resume"): enqueued is the highest Seq
// of the deliveries whose work is all queued. When a round takes its work,
// every delivery up to enqueued had queued its work for the family, so once
// the round is done each of its groups reflects every change up to it: that
// is the group's offset. A group whose family is idle reflects everything
// enqueued.
//
// Locks, in the order they may be taken: group.mu (a group's state and
// subscriptions), conn.subsMu, then hub.mu (the indexes) or family.mu (its
// queue); hub.mu and family.mu are never held together.
type hub struct {
	rt     *Router
	ctx    context.Context // the hub's work: cancelled when it stops
	cancel context.CancelFunc

	recvMu sync.Mutex // guards recv, which is created on first use
	recv   Receiver

	mu       sync.Mutex
	groups   map[groupKey]*group
	families map[familyKey]*family
	byTopic  index[Topic]   // the topic each group joined
	byPK     index[modelPK] // the rows each group holds
	byDep    index[Topic]   // the dependency topics each group joined

	readyMu sync.Mutex
	ready   []*family // families with queued work, not being worked on
	workers int
	idle    []chan struct{} // closed when workers drops to 0

	enqueued atomic.Uint64
	epoch    atomic.Pointer[string] // the History's, as last read
}

type groupKey struct {
	model, field, value string
	args, query, scope  string
}

// tag returns a short digest of k, which ends the offsets of k's group:
// an offset resumes only the subscription it was issued to, seen with
// the same scope, so that a client that resumes under another identity
// (after a log in or out), or with another subscription, gets a snapshot
// instead of keeping what it saw before.
func (k groupKey) tag() string {
	h := sha256.New()
	for _, s := range [...]string{k.model, k.field, k.value, k.args, k.query, k.scope} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// A familyKey names the groups that share a query: their group key with
// the SharedScope's QueryKey in place of the scope's key.
type familyKey groupKey

type modelPK struct{ model, pk string }

type group struct {
	key    groupKey
	tag    string // ends its offsets: see hub.offset
	view   *registered
	topic  Topic   // the topic of its model, field and value
	topics []Topic // every topic it joined: topic, AnyGroup's, deps
	deps   []Topic // the topics of the rows of other models its scope reads
	family *family
	own    family // the family of a group whose scope shares nothing

	mu      sync.Mutex
	scope   Scope
	owner   *subscription // whose request made scope
	gen     uint64        // bumped by each load: a read begun before is stale
	loaded  bool
	dead    bool              // removed from the hub: subscribe elsewhere
	stale   bool              // a read failed: members may be wrong until read again
	members map[string]member // by pk
	size    atomic.Int64      // len(members), for the connections' limits
	subs    set[*subscription]
	// resuming counts the subscriptions whose resume is under way (their
	// pending is set), which each change must be noted for.
	resuming int
	offset   uint64
}

// A member is an instance in a group's scope, as its subscribers last saw
// it. Its bytes are interned: groups that share a query (one per user
// watching a public list, say) mostly hold equal bytes for a row, and
// keep one copy of them between them, which the unique package frees once
// no group holds it.
type member struct {
	id, data unique.Handle[string]
}

func newMember(in Instance) member {
	return member{id: intern(in.ID), data: intern(in.Data)}
}

// intern returns the handle of b's bytes. unique.Make copies a string
// that it keeps and only reads the one it is given, so a view of b, not
// a copy, is enough to look it up.
func intern(b []byte) unique.Handle[string] {
	return unique.Make(unsafe.String(unsafe.SliceData(b), len(b)))
}

type family struct {
	// key is a shared family's, which hub.families holds. A group of a
	// scope that shares nothing is a family of its own, its field own,
	// kept nowhere else: its key is nil.
	key *familyKey

	groups int // how many groups a shared family has, under hub.mu

	mu   sync.Mutex
	work map[*group]*work
	busy bool // ready, or being worked on
}

// work is what the queued batches ask of one group.
type work struct {
	changes []*Change // of the group's model, in order
	// recheck asks for the whole scope to be read again: a row of a model
	// the scope depends on changed, or too many changes piled up.
	recheck bool
	// seq is the highest Seq of the deliveries that queued this work.
	// Deliveries come in Seq order and each queues all its work before the
	// next, so once the work is done the group reflects every change up
	// to seq.
	seq uint64
}

// maxQueuedChanges is how many changes a group's queue holds before it is
// turned into a recheck: one read of the whole scope, which a scope within
// its instance limit can afford.
const maxQueuedChanges = 10_000

func newHub(rt *Router) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{
		rt: rt, ctx: ctx, cancel: cancel,
		groups:   make(map[groupKey]*group),
		families: make(map[familyKey]*family),
		byTopic:  make(index[Topic]),
		byPK:     make(index[modelPK]),
		byDep:    make(index[Topic]),
	}
}

// close stops receiving changes, then waits for the queued work to be
// done (with no subscriber left, it is little), or ctx to end.
func (h *hub) close(ctx context.Context) error {
	h.recvMu.Lock()
	var err error
	if h.recv != nil {
		err = h.recv.Close()
	}
	h.recvMu.Unlock()
	done := h.whenIdle()
	select {
	case <-done:
	case <-ctx.Done():
		h.cancel() // the reads under way fail at once
		<-done
	}
	h.cancel()
	return err
}

// whenIdle returns a channel closed once no worker runs: at once if none
// does. Not a sync.WaitGroup: a change delivered while the caller waits
// may start a worker after the wait has begun.
func (h *hub) whenIdle() <-chan struct{} {
	done := make(chan struct{})
	h.readyMu.Lock()
	if h.workers == 0 {
		close(done)
	} else {
		h.idle = append(h.idle, done)
	}
	h.readyMu.Unlock()
	return done
}

// receiver starts receiving from the layer on first use.
func (h *hub) receiver(ctx context.Context) (Receiver, error) {
	h.recvMu.Lock()
	defer h.recvMu.Unlock()
	if h.recv == nil {
		r, err := h.rt.cfg.Layer.Receive(ctx, h.deliver)
		if err != nil {
			return nil, err
		}
		h.recv = r
	}
	return h.recv, nil
}

// leave leaves topics, logging a failure: nothing is lost but traffic.
func (h *hub) leave(topics []Topic) {
	h.recvMu.Lock()
	recv := h.recv
	h.recvMu.Unlock()
	if recv == nil {
		return
	}
	if err := recv.Leave(h.ctx, topics...); err != nil && h.ctx.Err() == nil {
		h.rt.cfg.Logger.Warn("live: leave topics", "topic", topics[0].String(), "err", err)
	}
}

// readContext returns the context of one database read.
func (h *hub) readContext(parent context.Context) (context.Context, context.CancelFunc) {
	if t := h.rt.cfg.ReadTimeout; t > 0 {
		return context.WithTimeout(parent, t)
	}
	return context.WithCancel(parent)
}

// deliver is the Layer's callback: it routes one batch of changes to the
// groups they may concern and queues the work, never waiting on a read.
func (h *hub) deliver(d Delivery) {
	if len(d.Missed) > 0 {
		h.resync(d.Missed)
	}
	var seq uint64
	changes := make([]Change, 0, len(d.Changes))
	for _, c := range d.Changes {
		seq = max(seq, c.Seq)
		if c.Model == sessionModel {
			h.rt.disconnectLocal(c.PK)
			continue
		}
		changes = append(changes, c) // the layer may reuse its slice
	}
	if len(changes) > 0 {
		h.rt.observe(Event{Kind: EventDelivery, N: len(changes)})
		work := h.route(changes)
		for _, w := range work {
			w.seq = seq
		}
		h.queue(work)
	}
	if seq > h.enqueued.Load() {
		h.enqueued.Store(seq) // deliveries come one at a time
	}
}

// route finds, for each change, the groups it may concern: those that
// joined one of its topics, those that hold its row (which it may have
// left, whatever its old values were), and those that depend on it.
func (h *hub) route(changes []Change) map[*group]*work {
	all := make(map[*group]*work)
	get := func(g *group) *work {
		w := all[g]
		if w == nil {
			w = &work{}
			all[g] = w
		}
		return w
	}
	add := func(g *group, c *Change) {
		w := get(g)
		if n := len(w.changes); n == 0 || w.changes[n-1] != c {
			w.changes = append(w.changes, c)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var topics []Topic
	for i := range changes {
		c := &changes[i]
		topics = c.AppendTopics(topics[:0])
		for _, t := range topics {
			for g := range h.byTopic.all(t) {
				add(g, c)
			}
			for g := range h.byDep.all(t) {
				get(g).recheck = true
			}
		}
		for g := range h.byPK.all(modelPK{c.Model, c.PK}) {
			add(g, c)
		}
	}
	return all
}

// queue adds work to the queues of its groups' families and makes the
// families ready.
func (h *hub) queue(all map[*group]*work) {
	byFamily := make(map[*family][]*group)
	for g := range all {
		byFamily[g.family] = append(byFamily[g.family], g)
	}
	for f, groups := range byFamily {
		f.mu.Lock()
		if f.work == nil {
			f.work = make(map[*group]*work, len(groups))
		}
		for _, g := range groups {
			w := all[g]
			q := f.work[g]
			if q == nil {
				f.work[g] = w
				continue
			}
			q.recheck = q.recheck || w.recheck
			q.changes = append(q.changes, w.changes...)
			q.seq = max(q.seq, w.seq)
		}
		for _, g := range groups {
			if q := f.work[g]; len(q.changes) > maxQueuedChanges {
				q.changes, q.recheck = nil, true
			}
		}
		start := !f.busy
		f.busy = true
		f.mu.Unlock()
		if start {
			h.ready1(f)
		}
	}
}

// ready1 makes f ready for a worker, starting one if fewer than
// Concurrency run. Workers exit when nothing is ready, so an idle hub
// keeps no goroutine.
func (h *hub) ready1(f *family) {
	h.readyMu.Lock()
	h.ready = append(h.ready, f)
	start := h.workers < h.rt.cfg.Concurrency
	if start {
		h.workers++
	}
	h.readyMu.Unlock()
	if start {
		go h.work()
	}
}

func (h *hub) work() {
	for {
		h.readyMu.Lock()
		if len(h.ready) == 0 {
			h.workers--
			if h.workers == 0 {
				for _, c := range h.idle {
					close(c)
				}
				h.idle = nil
			}
			h.readyMu.Unlock()
			return
		}
		f := h.ready[0]
		h.ready[0] = nil
		h.ready = h.ready[1:]
		h.readyMu.Unlock()
		h.runFamily(f)
	}
}

// runFamily does one round of f's work: everything queued for it.
func (h *hub) runFamily(f *family) {
	f.mu.Lock()
	all := f.work
	f.work = nil
	upto := h.enqueued.Load()
	f.mu.Unlock()

	r := round{h: h, upto: upto}
	r.run(f, all)

	f.mu.Lock()
	again := len(f.work) > 0
	f.busy = again
	f.mu.Unlock()
	if again {
		h.ready1(f)
	}
}

// familyOf returns the family g belongs to, creating it if needed. Called
// with h.mu held.
func (h *hub) familyOf(g *group) *family {
	ss, ok := g.scope.(SharedScope)
	if !ok {
		return &g.own
	}
	fk := familyKey(g.key)
	fk.scope = ss.QueryKey()
	f := h.families[fk]
	if f == nil {
		f = &family{key: &fk}
		h.families[fk] = f
	}
	f.groups++
	return f
}

// group returns the group of key, creating it (not yet loaded) if needed.
func (h *hub) group(key groupKey, view *registered, topics, deps []Topic, scope Scope) *group {
	h.mu.Lock()
	defer h.mu.Unlock()
	if g, ok := h.groups[key]; ok {
		return g
	}
	g := &group{
		key: key, tag: key.tag(), view: view, topic: topics[0], topics: topics, deps: deps,
		scope: scope,
	}
	g.family = h.familyOf(g)
	h.groups[key] = g
	h.byTopic.add(g.topic, g)
	for _, t := range g.deps {
		h.byDep.add(t, g)
	}
	return g
}

// load reads g's members, and the offset they stand at. Called with g.mu
// held.
func (h *hub) load(ctx context.Context, g *group) error {
	at := h.enqueued.Load()
	if hist := h.rt.cfg.History; hist != nil {
		rctx, cancel := h.readContext(ctx)
		head, err := hist.Head(rctx)
		cancel()
		if err != nil {
			h.rt.cfg.Logger.Warn("live: read history head", "err", err)
		} else {
			h.epoch.Store(&head.Epoch)
			at = max(at, head.Seq)
		}
	}
	var fresh []Instance
	err := h.timed(g.key.model, ReadMembers, func() (err error) {
		rctx, cancel := h.readContext(ctx)
		defer cancel()
		fresh, err = g.scope.Members(rctx)
		return err
	})
	if err != nil {
		return err
	}
	if g.loaded {
		// A reload of a stale group: its subscribers learn what changed.
		d := diff{h: h, g: g}
		d.replace(fresh)
		d.send(nil, g.offset, max(g.offset, at))
	} else {
		g.members = make(map[string]member, len(fresh))
		for _, in := range fresh {
			g.members[in.PK] = newMember(in)
		}
		h.mu.Lock()
		for pk := range g.members {
			h.byPK.add(modelPK{g.key.model, pk}, g)
		}
		h.mu.Unlock()
	}
	g.gen++
	g.loaded, g.stale = true, false
	g.offset = max(g.offset, at)
	g.size.Store(int64(len(g.members)))
	return nil
}

// drop removes g from the hub. Called with g.mu held, once g has no
// subscriptions.
func (h *hub) drop(g *group) {
	if g.dead {
		return
	}
	g.dead = true
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groups[g.key] == g {
		delete(h.groups, g.key)
	}
	h.byTopic.remove(g.topic, g)
	for _, t := range g.deps {
		h.byDep.remove(t, g)
	}
	for pk := range g.members {
		h.byPK.remove(modelPK{g.key.model, pk}, g)
	}
	if f := g.family; f.key != nil {
		f.groups--
		if f.groups == 0 && h.families[*f.key] == f {
			delete(h.families, *f.key)
		}
	}
}

// offsetOf returns the offset g's members stand at now. Called with g.mu
// held.
func (h *hub) offsetOf(g *group) uint64 {
	f := g.family
	f.mu.Lock()
	idle := !f.busy
	f.mu.Unlock()
	if idle {
		g.offset = max(g.offset, h.enqueued.Load())
	}
	return g.offset
}

// resync tells the subscribers of the groups of topics, and of the groups
// that depend on them, that they may have missed changes, and has the
// groups read again before they are trusted.
func (h *hub) resync(topics []Topic) {
	h.mu.Lock()
	groups := make(map[*group]struct{})
	for _, t := range topics {
		for g := range h.byTopic.all(t) {
			groups[g] = struct{}{}
		}
		for g := range h.byDep.all(t) {
			groups[g] = struct{}{}
		}
	}
	h.mu.Unlock()
	for g := range groups {
		g.mu.Lock()
		h.tellResync(g, CauseBroker)
		g.mu.Unlock()
	}
}

// timed runs read, a read of a scope of model, and tells the Observer how
// long it took.
func (h *hub) timed(model string, kind ReadKind, read func() error) error {
	start := time.Now()
	err := read()
	h.rt.observe(Event{Kind: EventRead, Model: model, Read: kind, Duration: time.Since(start), Failed: err != nil})
	return err
}

// tellResync sends every subscriber of g a resync notice and marks g to be
// read again, whole, before it is trusted: on its next change, or when a
// client subscribes to it, as those told to resynchronise may do. (Reading
// it again at once would retry a failing database in a loop.) Called with
// g.mu held.
func (h *hub) tellResync(g *group, cause ResyncCause) {
	g.stale = true
	told := 0
	for s := range g.subs.all() {
		if s.pending != nil {
			s.pending.fallback = true // it is sent a snapshot instead
			continue
		}
		s.conn.send(frame{head: encodeNotice("resync", s.msg.dialect, s.msg.id)})
		told++
	}
	h.rt.observe(Event{Kind: EventResync, Model: g.key.model, Cause: cause, N: told})
}

// An index maps each key to the groups under it: a topic to the groups
// that joined it, a row to the groups that hold it.
type index[K comparable] map[K]set[*group]

func (ix index[K]) add(k K, g *group) {
	s := ix[k]
	s.add(g)
	ix[k] = s
}

func (ix index[K]) remove(k K, g *group) {
	s, ok := ix[k]
	if !ok {
		return
	}
	s.remove(g)
	if s.len() == 0 {
		delete(ix, k)
	} else {
		ix[k] = s
	}
}

// all returns the groups under k.
func (ix index[K]) all(k K) iter.Seq[*group] {
	s := ix[k]
	return s.all()
}

// A set holds one element without a map, two or more in one. Most sets
// of the hub hold one (the groups under a key of an index: a list watched
// in a scope of its own, a row of one list; a group's subscriptions),
// and a map of one costs about 0.15 KiB. The zero value is empty, and
// the zero T is never an element.
type set[T comparable] struct {
	one  T              // the only element, while there is one
	more map[T]struct{} // every element, once there are two or more
}

func (s *set[T]) add(v T) {
	var zero T
	switch {
	case s.more != nil:
		s.more[v] = struct{}{}
	case s.one == zero:
		s.one = v
	case s.one != v:
		s.more = map[T]struct{}{s.one: {}, v: {}}
		s.one = zero
	}
}

func (s *set[T]) remove(v T) {
	switch {
	case s.more != nil:
		delete(s.more, v)
		if len(s.more) == 1 {
			// Back to one: the map goes, as it would not shrink.
			for last := range s.more {
				s.one = last
			}
			s.more = nil
		}
	case s.one == v:
		var zero T
		s.one = zero
	}
}

func (s *set[T]) has(v T) bool {
	if s.more != nil {
		_, ok := s.more[v]
		return ok
	}
	var zero T
	return v != zero && s.one == v
}

func (s *set[T]) len() int {
	var zero T
	switch {
	case s.more != nil:
		return len(s.more)
	case s.one != zero:
		return 1
	}
	return 0
}

// all returns the elements. The loop may remove any of them as it goes.
func (s *set[T]) all() iter.Seq[T] {
	one, more := s.one, s.more
	return func(yield func(T) bool) {
		var zero T
		if one != zero {
			yield(one)
			return
		}
		for v := range more {
			if !yield(v) {
				return
			}
		}
	}
}

// encodeArgs returns a canonical encoding of view arguments for groupKey.
func encodeArgs(args map[string]string) string {
	if len(args) == 0 {
		return ""
	}
	v := make(url.Values, len(args))
	for k, a := range args {
		v.Set(k, a)
	}
	return v.Encode()
}

// hash names a group in logs without its values, which may be private: a
// metric spike's scope can be found in the log by it.
func (k groupKey) hash() string {
	sum := sha256.Sum256([]byte(strings.Join([]string{k.model, k.field, k.value, k.args, k.query, k.scope}, "\x00")))
	return hex.EncodeToString(sum[:6])
}
