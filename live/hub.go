package live

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// The hub turns the changes a Layer delivers into broadcasts. Subscriptions
// that would see the same thing share a group: same model, group field and
// value, view arguments, query parameters and Scope key. A group remembers
// which instances are in its scope (members), so that a change can be told
// apart as entering (CREATED), staying (UPDATED) or leaving (DELETED) the
// scope, and costs one Fetch and one serialization however many
// subscriptions the group has. Groups whose scopes share their query (see
// SharedScope), such as one per user watching a public list, form a family
// that runs that query once per batch. A group whose scope depends on other
// models (see Dependent) is read again whole when a row of one changes.
//
// Locks: hub.mu guards the indexes; group.mu serialises a group's loading
// and change processing and guards its members and subscriptions. A
// goroutine holding a group.mu may take hub.mu, never the other way round.
type hub struct {
	rt     *Router
	ctx    context.Context // the hub's work: cancelled by close
	cancel context.CancelFunc

	recvMu sync.Mutex // guards recv, which is created on first use
	recv   Receiver

	mu      sync.Mutex
	groups  map[groupKey]*group
	byTopic map[Topic]map[*group]struct{} // the topic each group joined
	byPK    map[modelPK]map[*group]struct{}
	byDep   map[Topic]map[*group]struct{} // the dependency topics each group joined
}

type groupKey struct {
	model, field, value string
	args, query, scope  string
}

type modelPK struct{ model, pk string }

type group struct {
	key   groupKey
	topic Topic
	deps  []Topic // topics of the rows of other models the scope reads
	scope Scope

	mu      sync.Mutex
	loaded  bool
	dead    bool              // removed from the hub: subscribe elsewhere
	members map[string]member // by pk
	subs    map[*subscription]struct{}
}

// A member is an instance in a group's scope, as its subscribers last saw
// it.
type member struct {
	id, data json.RawMessage
}

// A subscription is one request_id of one connection.
type subscription struct {
	conn  *conn
	group *group
	msg   *message
	head  []byte // its broadcast frames up to the action
}

func newHub(rt *Router) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{
		rt: rt, ctx: ctx, cancel: cancel,
		groups:  make(map[groupKey]*group),
		byTopic: make(map[Topic]map[*group]struct{}),
		byPK:    make(map[modelPK]map[*group]struct{}),
		byDep:   make(map[Topic]map[*group]struct{}),
	}
}

func (h *hub) close() error {
	h.cancel()
	h.recvMu.Lock()
	defer h.recvMu.Unlock()
	if h.recv == nil {
		return nil
	}
	return h.recv.Close()
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

// subscribe registers a subscription of c, loading its group's members if
// it is the group's first. When it returns, every change the layer delivers
// afterwards reaches the subscription.
func (h *hub) subscribe(c *conn, m *message) (*subscription, error) {
	view, ok := h.rt.views[m.model]
	if !ok {
		return nil, Errorf(404, "unknown model %q", m.model)
	}
	req := &Request{
		HTTP: c.req, User: c.user, UserID: c.userID,
		Action: m.action, GroupBy: m.groupBy, Value: m.value,
		Args: m.args, Query: m.query,
	}
	if req.Args == nil {
		req.Args = map[string]string{}
	}
	if req.Query == nil {
		req.Query = url.Values{}
	}
	topic := Topic{Model: m.model, Field: m.groupBy, Value: m.value}
	switch {
	case m.action == "retrieve":
		if lookup := view.Lookup(); lookup != "" && lookup != PK {
			topic.Field = lookup
		}
	case m.groupBy == "":
		topic.Value = ""
	case !slices.Contains(view.GroupBy(), m.groupBy):
		return nil, Errorf(400, "%q cannot be grouped by %q: expected one of pk, %s", m.model, m.groupBy, strings.Join(view.GroupBy(), ", "))
	}
	scope, err := view.Subscribe(c.ctx, req)
	if err != nil {
		return nil, err
	}
	topics := append([]Topic{topic}, dependencyTopics(view, m)...)
	recv, err := h.receiver(c.ctx)
	if err != nil {
		return nil, err
	}
	if err := recv.Join(c.ctx, topics...); err != nil {
		return nil, err
	}
	key := groupKey{
		model: m.model, field: topic.Field, value: topic.Value,
		args: encodeArgs(req.Args), query: req.Query.Encode(), scope: scope.Key(),
	}
	s := &subscription{conn: c, msg: m, head: broadcastHead(m.dialect, m.id, m.model)}
	for {
		g := h.group(key, topics, scope)
		g.mu.Lock()
		if g.dead {
			g.mu.Unlock()
			continue
		}
		if !g.loaded {
			if err := h.load(g); err != nil {
				g.mu.Unlock()
				h.drop(g)
				recv.Leave(h.ctx, topics...)
				return nil, err
			}
		}
		if m.action == "retrieve" && len(g.members) == 0 {
			g.mu.Unlock()
			h.drop(g)
			recv.Leave(h.ctx, topics...)
			return nil, Errorf(404, "%s %q not found", m.model, m.value)
		}
		s.group = g
		g.subs[s] = struct{}{}
		g.mu.Unlock()
		return s, nil
	}
}

// dependencyTopics returns the topics of the other models' rows a
// subscription's scope reads (see Dependent).
func dependencyTopics(view View, m *message) []Topic {
	d, ok := view.(Dependent)
	if !ok {
		return nil
	}
	var topics []Topic
	for _, dep := range d.DependsOn() {
		if m.groupBy == dep.Field {
			topics = append(topics, Topic{Model: dep.Model, Field: PK, Value: m.value})
		} else {
			topics = append(topics, Topic{Model: dep.Model})
		}
	}
	return topics
}

// group returns the group of key, creating it (not yet loaded) if needed.
// topics are the group's own topic and its dependency topics.
func (h *hub) group(key groupKey, topics []Topic, scope Scope) *group {
	h.mu.Lock()
	defer h.mu.Unlock()
	if g, ok := h.groups[key]; ok {
		return g
	}
	g := &group{key: key, topic: topics[0], deps: topics[1:], scope: scope, subs: make(map[*subscription]struct{})}
	h.groups[key] = g
	addTo(h.byTopic, g.topic, g)
	for _, t := range g.deps {
		addTo(h.byDep, t, g)
	}
	return g
}

// load reads g's members. Called with g.mu held.
func (h *hub) load(g *group) error {
	members, err := g.scope.Members(h.ctx)
	if err != nil {
		return err
	}
	g.members = make(map[string]member, len(members))
	h.mu.Lock()
	for _, in := range members {
		g.members[in.PK] = member{id: in.ID, data: in.Data}
		addTo(h.byPK, modelPK{g.key.model, in.PK}, g)
	}
	h.mu.Unlock()
	g.loaded = true
	return nil
}

// drop removes g from the hub if it has no subscriptions left.
func (h *hub) drop(g *group) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.subs) > 0 || g.dead {
		return
	}
	g.dead = true
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groups[g.key] == g {
		delete(h.groups, g.key)
	}
	removeFrom(h.byTopic, g.topic, g)
	for _, t := range g.deps {
		removeFrom(h.byDep, t, g)
	}
	for pk := range g.members {
		removeFrom(h.byPK, modelPK{g.key.model, pk}, g)
	}
}

func (h *hub) unsubscribe(s *subscription) {
	g := s.group
	g.mu.Lock()
	delete(g.subs, s)
	empty := len(g.subs) == 0
	g.mu.Unlock()
	if empty {
		h.drop(g)
	}
	h.recvMu.Lock()
	recv := h.recv
	h.recvMu.Unlock()
	if recv != nil {
		if err := recv.Leave(h.ctx, append([]Topic{g.topic}, g.deps...)...); err != nil {
			h.rt.cfg.Logger.Warn("live: leave topic", "topic", g.topic.String(), "err", err)
		}
	}
}

// deliver is the Layer's callback: it processes one batch of changes. The
// groups a batch touches are processed concurrently, each group's changes
// in order; deliver returns when all are queued to their connections, so
// batches never overtake each other.
func (h *hub) deliver(d Delivery) {
	if len(d.Missed) > 0 {
		h.resync(d.Missed)
	}
	if len(d.Changes) == 0 {
		return
	}
	work := h.route(d.Changes)
	if len(work) == 0 {
		return
	}
	var st starter
	defer st.start()
	jobs := h.plan(work, &st)
	if len(jobs) == 1 {
		jobs[0]()
		return
	}
	sem := make(chan struct{}, h.rt.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, job := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			job()
		}()
	}
	wg.Wait()
}

// familyKey is a groupKey whose scope part is a SharedScope's QueryKey:
// the groups of a family run the same query.
type familyKey groupKey

// plan turns a batch's work into jobs that may run concurrently: one per
// group, but one per family of groups whose scopes share their query, which
// then runs once for all of them.
func (h *hub) plan(work map[*group]*work, st *starter) []func() {
	var jobs []func()
	families := make(map[familyKey][]*group)
	for g, w := range work {
		if ss, ok := g.scope.(SharedScope); ok && !w.recheck {
			fk := familyKey(g.key)
			fk.scope = ss.QueryKey()
			families[fk] = append(families[fk], g)
			continue
		}
		jobs = append(jobs, func() {
			h.process(g, w, st, func(pks []string) ([]Instance, error) { return g.scope.Fetch(h.ctx, pks) })
		})
	}
	for _, groups := range families {
		jobs = append(jobs, func() { h.processFamily(groups, work, st) })
	}
	return jobs
}

// processFamily reads the rows the changes of a family's groups name with
// one query, and lets each group's scope render what its request sees.
func (h *hub) processFamily(groups []*group, work map[*group]*work, st *starter) {
	var changes []*Change
	for _, g := range groups {
		changes = append(changes, work[g].changes...)
	}
	pks := livePKs(changes)
	var rows any
	var err error
	if len(pks) > 0 {
		rows, err = groups[0].scope.(SharedScope).Rows(h.ctx, pks)
	}
	for _, g := range groups {
		h.process(g, work[g], st, func([]string) ([]Instance, error) {
			if err != nil {
				return nil, err
			}
			return g.scope.(SharedScope).Render(rows)
		})
	}
}

// work is what a batch asks of one group.
type work struct {
	changes []*Change // of the group's model, in order
	// recheck asks for the whole scope to be read again: a row of a model
	// the scope depends on changed.
	recheck bool
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
			for g := range h.byTopic[t] {
				add(g, c)
			}
			for g := range h.byDep[t] {
				get(g).recheck = true
			}
		}
		for g := range h.byPK[modelPK{c.Model, c.PK}] {
			add(g, c)
		}
	}
	return all
}

// process checks g's scope for the rows of w's changes with one Fetch, or
// reads the whole scope again if w asks for it, and queues the resulting
// broadcasts to g's subscribers.
func (h *hub) process(g *group, w *work, st *starter, read func(pks []string) ([]Instance, error)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead || !g.loaded || len(g.subs) == 0 {
		return
	}
	d := diff{starter: st}
	if w.recheck {
		fresh, err := g.scope.Members(h.ctx)
		if !h.fetched(g, err) {
			return
		}
		now := make(map[string]bool, len(fresh))
		for _, in := range fresh {
			now[in.PK] = true
			d.apply(g, in.PK, in, true)
		}
		for pk := range g.members {
			if !now[pk] {
				d.apply(g, pk, Instance{}, false)
			}
		}
	} else {
		now, ok := h.fetch(g, w.changes, read)
		if !ok {
			return
		}
		for _, c := range w.changes {
			in, visible := now[c.PK]
			d.apply(g, c.PK, in, visible)
		}
	}
	if len(d.entered)+len(d.left) > 0 {
		h.mu.Lock()
		for _, pk := range d.entered {
			addTo(h.byPK, modelPK{g.key.model, pk}, g)
		}
		for _, pk := range d.left {
			if _, back := g.members[pk]; !back {
				removeFrom(h.byPK, modelPK{g.key.model, pk}, g)
			}
		}
		h.mu.Unlock()
	}
}

// fetch reads, with read, the current state of the rows of changes in g's
// scope.
func (h *hub) fetch(g *group, changes []*Change, read func(pks []string) ([]Instance, error)) (map[string]Instance, bool) {
	pks := livePKs(changes)
	now := make(map[string]Instance, len(pks))
	if len(pks) == 0 {
		return now, true
	}
	found, err := read(pks)
	if !h.fetched(g, err) {
		return nil, false
	}
	for _, in := range found {
		now[in.PK] = in
	}
	return now, true
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

// fetched reports whether err is nil. Otherwise g's subscribers may have
// missed a change: they are told to resynchronise.
func (h *hub) fetched(g *group, err error) bool {
	if err == nil {
		return true
	}
	if h.ctx.Err() == nil {
		h.rt.cfg.Logger.Error("live: read changed instances", "model", g.key.model, "err", err)
		h.tellResync(g)
	}
	return false
}

// diff collects how a group's members change in one batch.
type diff struct {
	entered, left []string
	starter       *starter
}

// starter collects the connections whose write loops are to start once a
// batch is queued.
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

// apply updates g's member pk to its current state (in, if visible) and
// queues the broadcast it makes to g's subscribers. Called with g.mu held.
//
// The state is read after the changes, so several changes of a row in a
// batch, or a change committed before a subscription loaded its members
// but delivered after, can show the same state: UPDATED is only sent when
// the serialized instance differs from what the subscribers last saw.
func (d *diff) apply(g *group, pk string, in Instance, visible bool) {
	m, was := g.members[pk]
	var tail []byte
	switch {
	case visible && was:
		if bytes.Equal(m.data, in.Data) {
			return
		}
		tail = broadcastTail("UPDATED", in.Data)
		g.members[pk] = member{id: in.ID, data: in.Data}
	case visible:
		tail = broadcastTail("CREATED", in.Data)
		g.members[pk] = member{id: in.ID, data: in.Data}
		d.entered = append(d.entered, pk)
	case was:
		tail = broadcastTail("DELETED", m.id)
		delete(g.members, pk)
		d.left = append(d.left, pk)
	default:
		return
	}
	for s := range g.subs {
		if s.conn.enqueue(frame{head: s.head, tail: tail}) {
			d.starter.add(s.conn)
		}
	}
}

// resync tells the subscribers of the groups of topics that they may have
// missed changes.
func (h *hub) resync(topics []Topic) {
	h.mu.Lock()
	var groups []*group
	for _, t := range topics {
		for g := range h.byTopic[t] {
			groups = append(groups, g)
		}
	}
	h.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		h.tellResync(g)
		g.mu.Unlock()
	}
}

// tellResync sends every subscriber of g a resync notice. Called with g.mu
// held.
func (h *hub) tellResync(g *group) {
	for s := range g.subs {
		s.conn.send(frame{head: encodeNotice("resync", s.msg.dialect, s.msg.id)})
	}
}

func addTo[K comparable](index map[K]map[*group]struct{}, k K, g *group) {
	set := index[k]
	if set == nil {
		set = make(map[*group]struct{}, 1)
		index[k] = set
	}
	set[g] = struct{}{}
}

func removeFrom[K comparable](index map[K]map[*group]struct{}, k K, g *group) {
	if set := index[k]; set != nil {
		delete(set, g)
		if len(set) == 0 {
			delete(index, k)
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
