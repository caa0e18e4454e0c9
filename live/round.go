package live

import (
	"strconv"
	"sync"
)

// A round is one family's turn of work: the reads its queued changes
// need, done outside the groups' locks, then the broadcasts they make.
// A group loaded again while a read was under way (its gen moved on)
// already shows what the read would tell, so the read's result is
// dropped for it.
type round struct {
	h       *hub
	upto    uint64 // every change up to it is in this round or was before
	starter starter
}

// task is a group's part of a round, with its state when the round began.
type task struct {
	g     *group
	w     *work
	gen   uint64
	scope Scope
}

func (r *round) run(f *family, all map[*group]*work) {
	defer r.starter.start()
	var fetches []task
	for g, w := range all {
		g.mu.Lock()
		ready := g.loaded && !g.dead && g.subs.len() > 0
		t := task{g: g, w: w, gen: g.gen, scope: g.scope}
		recheck := w.recheck || g.stale
		g.mu.Unlock()
		switch {
		case !ready:
		case recheck:
			r.recheck(t)
		default:
			fetches = append(fetches, t)
		}
	}
	if len(fetches) == 0 {
		return
	}
	if f.key != nil { // shared
		r.fetchShared(fetches)
		return
	}
	for _, t := range fetches {
		found, err := r.fetch(t)
		r.apply(t, found, err)
	}
}

// fetch reads the current state, in t's scope, of the rows t's changes
// name.
func (r *round) fetch(t task) ([]Instance, error) {
	pks := livePKs(t.w.changes)
	if len(pks) == 0 {
		return nil, nil
	}
	var found []Instance
	err := r.h.timed(t.g.key.model, ReadFetch, func() (err error) {
		ctx, cancel := r.h.readContext(r.h.ctx)
		defer cancel()
		found, err = t.scope.Fetch(ctx, pks)
		return err
	})
	return found, err
}

// fetchShared reads the rows of a shared family's changes with one query,
// and lets each group's scope render what its request sees.
func (r *round) fetchShared(tasks []task) {
	var changes []*Change
	for _, t := range tasks {
		changes = append(changes, t.w.changes...)
	}
	var rows any
	var err error
	if pks := livePKs(changes); len(pks) > 0 {
		err = r.h.timed(tasks[0].g.key.model, ReadRows, func() (err error) {
			ctx, cancel := r.h.readContext(r.h.ctx)
			defer cancel()
			rows, err = tasks[0].scope.(SharedScope).Rows(ctx, pks)
			return err
		})
	}
	for _, t := range tasks {
		var found []Instance
		if err == nil && rows != nil {
			ctx, cancel := r.h.readContext(r.h.ctx)
			found, err = t.scope.(SharedScope).Render(ctx, rows)
			cancel()
		}
		r.apply(t, found, err)
		err = nil
	}
}

// apply turns what fetch found into t's group's broadcasts.
func (r *round) apply(t task, found []Instance, err error) {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notePending(t.w.changes, false)
	if g.dead || g.gen != t.gen {
		return
	}
	if err != nil {
		r.h.readFailed(g, err)
		return
	}
	now := make(map[string]Instance, len(found))
	for _, in := range found {
		now[in.PK] = in
	}
	d := diff{h: r.h, g: g}
	for _, c := range t.w.changes {
		in, visible := now[c.PK]
		d.apply(c.PK, in, visible)
	}
	d.send(&r.starter, g.offset, max(g.offset, r.upto, t.w.seq))
}

// recheck reads t's group's scope again, whole, and sends the differences.
func (r *round) recheck(t task) {
	var fresh []Instance
	err := r.h.timed(t.g.key.model, ReadMembers, func() (err error) {
		ctx, cancel := r.h.readContext(r.h.ctx)
		defer cancel()
		fresh, err = t.scope.Members(ctx)
		return err
	})
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	g.notePending(nil, true)
	if g.dead || g.gen != t.gen {
		return
	}
	if err != nil {
		r.h.readFailed(g, err)
		return
	}
	g.stale = false
	d := diff{h: r.h, g: g}
	d.replace(fresh)
	d.send(&r.starter, g.offset, max(g.offset, r.upto, t.w.seq))
}

// readFailed reports a failed read of g's scope: its subscribers may have
// missed a change. Called with g.mu held.
func (h *hub) readFailed(g *group, err error) {
	if h.ctx.Err() != nil {
		return // stopping: the reads were cancelled
	}
	h.rt.cfg.Logger.Error("live: read changed instances", "model", g.key.model, "scope", g.key.hash(), "err", err)
	h.tellResync(g, CauseRead)
}

// livePKs returns the distinct pks of changes whose rows may still exist:
// a row whose last change in the batch is a delete is gone, and the
// database need not be asked about it.
func livePKs(changes []*Change) []string {
	last := make(map[string]Op, len(changes))
	for _, c := range changes {
		last[c.PK] = c.Op
	}
	pks := make([]string, 0, len(last))
	for pk, op := range last {
		if op != OpDelete {
			pks = append(pks, pk)
		}
	}
	return pks
}

// notePending records, for the subscriptions of g whose resume is under
// way, the rows changes name (or that a recheck makes them start from a
// snapshot): the resume answers for them too. Called with g.mu held.
func (g *group) notePending(changes []*Change, recheck bool) {
	if g.resuming == 0 {
		return
	}
	for s := range g.subs.all() {
		p := s.pending
		if p == nil {
			continue
		}
		if recheck {
			p.fallback = true
			continue
		}
		for _, c := range changes {
			p.note(c, g.view.spec.Lookup)
		}
	}
}

// diff collects how a group's members change, and the broadcasts that
// tell it. Its methods are called with the group's mu held.
type diff struct {
	h             *hub
	g             *group
	tails         [][]byte
	actions       []string // of each tail
	entered, left []string
}

// apply updates member pk to its current state (in, if visible) and
// records the broadcast it makes.
//
// The state is read after the changes, so several changes of a row, or a
// change committed before a group loaded its members but delivered after,
// can show the same state: UPDATED is only sent when the serialized
// instance differs from what the subscribers last saw.
func (d *diff) apply(pk string, in Instance, visible bool) {
	g := d.g
	m, was := g.members[pk]
	switch {
	case visible && was:
		if m.data.Value() == string(in.Data) {
			return
		}
		m = newMember(in)
		g.members[pk] = m
		d.add("UPDATED", m.data.Value())
	case visible:
		m = newMember(in)
		g.members[pk] = m
		d.add("CREATED", m.data.Value())
		d.entered = append(d.entered, pk)
	case was:
		d.add("DELETED", m.id.Value())
		delete(g.members, pk)
		d.left = append(d.left, pk)
	}
}

func (d *diff) add(action, instance string) {
	d.tails = append(d.tails, broadcastTail(action, instance))
	d.actions = append(d.actions, action)
}

// replace makes fresh the group's members.
func (d *diff) replace(fresh []Instance) {
	now := make(map[string]bool, len(fresh))
	for _, in := range fresh {
		now[in.PK] = true
		d.apply(in.PK, in, true)
	}
	for pk := range d.g.members {
		if !now[pk] {
			d.apply(pk, Instance{}, false)
		}
	}
}

// send queues the broadcasts to the group's subscribers, and moves the
// group's offset from prev to next: subscriptions that carry offsets get
// prev with every broadcast but the last, since a client that stops in the
// middle does not hold all of next. Frames go through st, or straight to
// the connections when st is nil.
func (d *diff) send(st *starter, prev, next uint64) {
	g := d.g
	g.offset = next
	if len(d.entered)+len(d.left) > 0 {
		d.h.mu.Lock()
		for _, pk := range d.entered {
			d.h.byPK.add(modelPK{g.key.model, pk}, g)
		}
		for _, pk := range d.left {
			if _, back := g.members[pk]; !back {
				d.h.byPK.remove(modelPK{g.key.model, pk}, g)
			}
		}
		d.h.mu.Unlock()
	}
	g.size.Store(int64(len(g.members)))
	if len(d.tails) == 0 {
		return
	}
	var prevMid, nextMid []byte
	queued := 0
	for s := range g.subs.all() {
		if s.pending != nil {
			continue // its resume answers with the current state
		}
		if s.offsets && nextMid == nil {
			prevMid, nextMid = offsetField(d.h.offset(g, prev)), offsetField(d.h.offset(g, next))
		}
		for i, tail := range d.tails {
			f := frame{head: s.head, tail: tail}
			if s.offsets {
				f.mid = prevMid
				if i == len(d.tails)-1 {
					f.mid = nextMid
				}
			}
			if st == nil {
				s.conn.send(f)
			} else if s.conn.enqueue(f) {
				st.add(s.conn)
			}
		}
		queued++
	}
	if d.h.rt.cfg.Observer != nil {
		for _, action := range d.actions {
			d.h.rt.observe(Event{Kind: EventBroadcast, Model: g.key.model, Action: action, N: queued})
		}
	}
	if limit := d.h.rt.cfg.MaxScopeInstances; !within(len(g.members), limit) {
		d.h.endAll(g, Errorf(413, "the subscription's scope grew beyond %d instances", limit))
	}
}

// offset returns the offset string of seq for g's subscribers: the
// History's epoch, seq and g's tag, "<epoch>.<seq>.<tag>".
func (h *hub) offset(g *group, seq uint64) string {
	epoch := ""
	if e := h.epoch.Load(); e != nil {
		epoch = *e
	}
	return epoch + "." + strconv.FormatUint(seq, 36) + "." + g.tag
}

// starter collects the connections whose write loops are to start once a
// round is queued, so that each connection writes the round's frames in
// one system call.
type starter struct {
	mu    sync.Mutex
	conns []*conn
}

func (st *starter) add(c *conn) {
	st.mu.Lock()
	st.conns = append(st.conns, c)
	st.mu.Unlock()
}

func (st *starter) start() {
	for _, c := range st.conns {
		go c.writeLoop()
	}
}
