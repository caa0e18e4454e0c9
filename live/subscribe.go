package live

import (
	"cmp"
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A subscription is one request id of one connection.
type subscription struct {
	conn *conn
	msg  *message
	req  *Request
	head []byte // its broadcast frames up to the offset and action

	// The fields below are guarded by group.mu once the subscription is
	// in its group.
	group   *group
	offsets bool     // its broadcasts carry offsets
	pending *pending // a resume is under way: broadcasts are held back
}

// pending is what a resume under way must also answer for: the rows of
// the changes its group handled meanwhile.
type pending struct {
	pks      map[string]string // by pk, the lookup field's value when known
	fallback bool              // the group was read whole: send a snapshot
}

func (p *pending) note(c *Change, lookup string) {
	v := p.pks[c.PK]
	if lookup != PK {
		if x, ok := c.New[lookup]; ok {
			v = x
		} else if x, ok := c.Old[lookup]; ok {
			v = x
		}
	}
	p.pks[c.PK] = v
}

// subscribe adds s to its group, loading the group if s is its first
// subscription, and sends what s asked for: a snapshot, a resume, or an
// ack. When it returns, every change the layer delivers afterwards reaches
// s.
func (h *hub) subscribe(c *conn, s *subscription) error {
	m := s.msg
	reg := h.rt.views[m.model]
	if reg == nil {
		return Errorf(404, "unknown model %q", m.model)
	}
	req, topic, err := h.request(c, reg, m)
	if err != nil {
		return err
	}
	ctx, cancel := h.readContext(c.ctx)
	scope, err := reg.view.Subscribe(ctx, req)
	cancel()
	if err != nil {
		return err
	}
	deps := dependencyTopics(reg.spec, m)
	topics := append([]Topic{topic, {Model: m.model, Field: AnyGroup}}, deps...)
	recv, err := h.receiver(c.ctx)
	if err != nil {
		return err
	}
	if err := recv.Join(c.ctx, topics...); err != nil {
		return err
	}
	key := groupKey{
		model: m.model, field: topic.Field, value: topic.Value,
		args: encodeArgs(req.Args), query: req.Query.Encode(), scope: scope.Key(),
	}
	s.req, s.head = req, broadcastHead(m.dialect, m.id, m.model)
	for {
		g := h.group(key, reg, topics, deps, scope)
		g.mu.Lock()
		if g.dead {
			g.mu.Unlock()
			continue
		}
		err := h.join(c, s, g)
		if err != nil && g.subs.len() == 0 {
			h.drop(g)
		}
		resume := err == nil && s.pending != nil
		g.mu.Unlock()
		if err != nil {
			h.leave(topics)
			return err
		}
		if resume {
			h.resume(c, s, g)
		}
		return nil
	}
}

// request builds the Request views see for m: only the arguments and query
// parameters the view reads, and the value as the field's type holds it.
// It returns the topic of the subscription's group.
func (h *hub) request(c *conn, reg *registered, m *message) (*Request, Topic, error) {
	spec := reg.spec
	req := &Request{
		HTTP: c.req, User: c.user, UserID: c.userID,
		Action: m.action, GroupBy: m.groupBy,
		Args: make(map[string]string), Query: make(url.Values),
	}
	for k, v := range m.args {
		if reg.args[k] {
			req.Args[k] = v
		}
	}
	for k, v := range m.query {
		if reg.params[k] {
			req.Query[k] = v
		}
	}
	topic := Topic{Model: m.model}
	field := m.groupBy
	switch {
	case m.action == ActionRetrieve:
		field = spec.Lookup
	case m.groupBy == "":
		if !spec.ListAll {
			return nil, topic, Errorf(400, "%q can only be subscribed to by group: group_by one of %s", m.model, groupNames(spec))
		}
	case !slices.Contains(spec.GroupBy, m.groupBy):
		return nil, topic, Errorf(400, "%q cannot be grouped by %q: expected one of %s", m.model, m.groupBy, groupNames(spec))
	}
	if field != "" {
		v, err := reg.view.Parse(field, m.value)
		if err != nil {
			return nil, topic, Errorf(400, "%s: %q is not a valid value: %v", field, m.value, err)
		}
		req.Value = v.Canonical
		topic.Field, topic.Value = field, v.Canonical
	}
	return req, topic, nil
}

func groupNames(spec Spec) string {
	return strings.Join(append([]string{PK}, spec.GroupBy...), ", ")
}

// dependencyTopics returns the topics of the other models' rows a
// subscription's scope reads (see Dependency).
func dependencyTopics(spec Spec, m *message) []Topic {
	var topics []Topic
	for _, dep := range spec.Dependencies {
		if m.groupBy == dep.Field {
			topics = append(topics, Topic{Model: dep.Model, Field: PK, Value: m.value})
		} else {
			topics = append(topics, Topic{Model: dep.Model})
		}
	}
	return topics
}

// join loads g if needed, checks the limits s would break, adds s to g and
// answers it. Called with g.mu held.
func (h *hub) join(c *conn, s *subscription, g *group) error {
	m := s.msg
	if !g.loaded || g.stale {
		if err := h.load(c.ctx, g); err != nil {
			return err
		}
	}
	if limit := h.rt.cfg.MaxScopeInstances; !within(len(g.members), limit) {
		return Errorf(413, "the subscription's scope holds %d instances: at most %d", len(g.members), limit)
	}
	if m.action == ActionRetrieve && len(g.members) == 0 && !m.snapshot {
		return Errorf(404, "%s %q not found", m.model, m.value)
	}
	if err := c.takeScope(g); err != nil {
		return err
	}
	if !h.rt.takeUserScope(c, g) {
		c.releaseScope(g)
		return Errorf(429, "too many distinct scopes: at most %d for one user", h.rt.cfg.MaxUserScopes)
	}
	s.group = g
	g.subs.add(s)
	if g.owner == nil {
		g.owner = s
	}
	switch {
	case m.hasSince:
		s.offsets = true
		s.pending = &pending{pks: make(map[string]string)}
		g.resuming++
	case m.snapshot:
		s.offsets = true
		h.sendSnapshot(s, g, nil)
	case m.ack:
		c.send(frame{head: encodeNotice("subscribed", m.dialect, m.id)})
	}
	return nil
}

// detach removes s from g and gives back what it counted against its
// connection's and user's limits. Called with g.mu held.
func (h *hub) detach(s *subscription, g *group) {
	g.subs.remove(s)
	if s.pending != nil {
		g.resuming--
	}
	s.conn.releaseScope(g)
	h.rt.releaseUserScope(s.conn, g)
}

// unsubscribe removes s from its group. If s's request made the group's
// scope, another subscription's request makes it anew, so that the scope
// never serves the request (its user, its rights) of a connection that has
// gone.
func (h *hub) unsubscribe(s *subscription) {
	g := s.group
	g.mu.Lock()
	if !g.subs.has(s) {
		g.mu.Unlock()
		return // the hub ended it
	}
	h.detach(s, g)
	rebase := false
	if g.owner == s {
		g.owner = nil
		rebase = g.subs.len() > 0
	}
	if g.subs.len() == 0 {
		h.drop(g)
	}
	g.mu.Unlock()
	h.leave(g.topics)
	if rebase {
		h.rebase(g)
	}
}

// rebase makes g's scope anew from the request of one of its
// subscriptions. A subscription whose view now refuses its request is
// ended with the view's error.
func (h *hub) rebase(g *group) {
	for {
		g.mu.Lock()
		var next *subscription
		for s := range g.subs.all() {
			next = s
			break
		}
		if g.dead || g.owner != nil || next == nil {
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()

		ctx, cancel := h.readContext(next.conn.ctx)
		scope, err := g.view.view.Subscribe(ctx, next.req)
		cancel()

		g.mu.Lock()
		still := g.subs.has(next)
		switch {
		case !still || g.owner != nil:
		case err != nil:
			code, msg := errorCode(err)
			h.end(g, next, &Error{Code: code, Message: msg})
		default:
			g.scope, g.owner = scope, next
		}
		g.mu.Unlock()
	}
}

// end ends s, a subscription of g, on the server's side: the client gets
// the error with the subscription's request id, and the subscription is
// gone. Called with g.mu held.
func (h *hub) end(g *group, s *subscription, e *Error) {
	h.detach(s, g)
	s.conn.forget(s)
	s.conn.send(frame{head: encodeError(s.msg.dialect, s.msg.id, e.Code, e.Message)})
	if g.owner == s {
		g.owner = nil
	}
	if g.subs.len() == 0 {
		h.drop(g)
	}
	h.leave(g.topics)
}

// endAll ends every subscription of g (see end). Called with g.mu held.
func (h *hub) endAll(g *group, e *Error) {
	for s := range g.subs.all() {
		h.end(g, s, e)
	}
}

// sendSnapshot queues s's snapshot of g's members, then the "subscribed"
// frame with the offset they stand at (and resumed, after a resume that
// could not). Called with g.mu held, so that no broadcast comes between.
func (h *hub) sendSnapshot(s *subscription, g *group, resumed *bool) {
	c, m := s.conn, s.msg
	pks := make([]string, 0, len(g.members))
	for pk := range g.members {
		pks = append(pks, pk)
	}
	slices.SortFunc(pks, comparePKs)
	head := snapshotHead(m.dialect, m.id, m.model)
	items, size := make([]string, 0, min(len(pks), maxSnapshotItems)), 0
	flush := func() {
		c.send(frame{head: head, items: items, tail: snapshotTail})
		items, size = nil, 0
	}
	for _, pk := range pks {
		data := g.members[pk].data.Value()
		if len(items) > 0 && (len(items) == maxSnapshotItems || size+len(data) > maxSnapshotBytes) {
			flush()
		}
		items = append(items, data)
		size += len(data) + 1
	}
	flush() // at least one frame, if empty: a snapshot came
	c.send(frame{head: encodeSubscribed(m.dialect, m.id, h.offset(g, h.offsetOf(g)), resumed)})
}

// The bounds of one snapshot frame.
const (
	maxSnapshotItems = 1000
	maxSnapshotBytes = 64 << 10
)

var snapshotTail = []byte("]}")

// comparePKs orders pks as numbers when both are, else as text, so that a
// snapshot lists instances as a list ordered by id would.
func comparePKs(a, b string) int {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return strings.Compare(a, b)
}

// resume answers a subscribe with "since": the instances of g's scope that
// changed since the offset, each once at its current state, or DELETED if
// it has left; or, if the history cannot tell, a whole snapshot.
func (h *hub) resume(c *conn, s *subscription, g *group) {
	changes, ok := h.history(c.ctx, s.msg.since, g)
	g.mu.Lock()
	defer g.mu.Unlock()
	p := s.pending
	if still := g.subs.has(s); !still || p == nil {
		return // ended meanwhile
	}
	s.pending = nil
	g.resuming--
	if !ok || p.fallback {
		resumed := false
		h.sendSnapshot(s, g, &resumed)
		return
	}
	lookup := g.view.spec.Lookup
	for i := range changes {
		p.note(&changes[i], lookup)
	}
	pks := make([]string, 0, len(p.pks))
	for pk := range p.pks {
		pks = append(pks, pk)
	}
	slices.SortFunc(pks, comparePKs)
	mid := offsetField(s.msg.since)
	for _, pk := range pks {
		var tail []byte
		if mb, in := g.members[pk]; in {
			tail = broadcastTail("UPDATED", mb.data.Value())
		} else {
			tail = broadcastTail("DELETED", h.identify(g.view, pk, p.pks[pk]))
		}
		c.send(frame{head: s.head, mid: mid, tail: tail})
	}
	resumed := true
	c.send(frame{head: encodeSubscribed(s.msg.dialect, s.msg.id, h.offset(g, h.offsetOf(g)), &resumed)})
}

// history returns the changes since the offset that concern g, or false
// when a snapshot must answer instead: no History, an offset it cannot
// use, too many changes, or a change of a row g's scope depends on.
func (h *hub) history(ctx context.Context, since string, g *group) ([]Change, bool) {
	hist := h.rt.cfg.History
	pos, tag, ok := parseOffset(since)
	if hist == nil || !ok || tag != g.tag {
		return nil, false
	}
	models := []string{g.key.model}
	for _, d := range g.view.spec.Dependencies {
		models = append(models, d.Model)
	}
	limit := h.rt.cfg.MaxScopeInstances
	if limit <= 0 {
		limit = 10_000
	}
	all, err := h.since(ctx, hist, pos, models, limit)
	if err != nil {
		if !errors.Is(err, ErrHistoryGone) && !errors.Is(err, ErrHistoryTooLong) && ctx.Err() == nil {
			h.rt.cfg.Logger.Warn("live: read history", "model", g.key.model, "err", err)
		}
		return nil, false
	}
	anyGroup := Topic{Model: g.key.model, Field: AnyGroup}
	var mine []Change
	var topics []Topic
	for _, c := range all {
		topics = c.AppendTopics(topics[:0])
		for _, t := range topics {
			if slices.Contains(g.deps, t) {
				return nil, false // cannot be narrowed to instances
			}
			if c.Model == g.key.model && (t == g.topic || t == anyGroup) {
				mine = append(mine, c)
				break
			}
		}
	}
	return mine, true
}

// since asks hist for the changes after pos. An offset of a change this
// process has delivered may be ahead of the History's head, which follows
// the reader's cursor and trails publication by milliseconds: then it
// waits a little for the head to get there, and asks again.
func (h *hub) since(ctx context.Context, hist History, pos Position, models []string, limit int) ([]Change, error) {
	ctx, cancel := h.readContext(ctx)
	defer cancel()
	var changes []Change
	err := h.timed(models[0], ReadHistory, func() (err error) {
		changes, err = hist.Since(ctx, pos, models, limit)
		return err
	})
	if !errors.Is(err, ErrHistoryGone) {
		return changes, err
	}
	for wait := 10 * time.Millisecond; wait <= headLag; wait *= 2 {
		head, herr := hist.Head(ctx)
		if herr != nil || head.Epoch != pos.Epoch || head.Seq+maxHeadLag < pos.Seq {
			return nil, err // another sequence, or far ahead: really gone
		}
		if head.Seq >= pos.Seq {
			return hist.Since(ctx, pos, models, limit)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
	return nil, err
}

// How long, and by how many changes, a History's head may trail what
// this process has delivered.
const (
	headLag    = 320 * time.Millisecond
	maxHeadLag = 100_000
)

// parseOffset reads an offset made by hub.offset: its position and the
// tag of the group it was issued for.
func parseOffset(s string) (pos Position, tag string, ok bool) {
	epoch, rest, ok1 := strings.Cut(s, ".")
	seq, tag, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || epoch == "" || len(epoch) > 32 {
		return Position{}, "", false
	}
	for _, r := range epoch {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z') {
			return Position{}, "", false
		}
	}
	n, err := strconv.ParseUint(seq, 36, 64)
	if err != nil {
		return Position{}, "", false
	}
	return Position{Epoch: epoch, Seq: n}, tag, true
}

// identify returns the identifying fields of an instance that is no
// longer in a scope (so its row may be gone): its pk and lookup value, as
// the view's instances show them.
func (h *hub) identify(view *registered, pk, lookup string) []byte {
	b := []byte(`{"id":`)
	if v, err := view.view.Parse(PK, pk); err == nil {
		b = append(b, v.JSON...)
	} else {
		b = appendJSONString(b, pk)
	}
	if l := view.spec.Lookup; l != PK && lookup != "" {
		if v, err := view.view.Parse(l, lookup); err == nil {
			b = append(b, ',')
			b = appendJSONString(b, l)
			b = append(b, ':')
			b = append(b, v.JSON...)
		}
	}
	return append(b, '}')
}
