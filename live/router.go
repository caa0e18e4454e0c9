package live

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// A Router holds the views of the models clients may subscribe to, by
// label, and serves their WebSocket endpoint: it is an http.Handler to
// mount where the application wants it, behind its usual middleware.
//
// Register views before serving. ServeHTTP, Disconnect, Shutdown and
// Close may be called concurrently.
type Router struct {
	cfg   Config
	views map[string]*registered
	hub   *hub

	mu      sync.Mutex
	conns   map[*conn]struct{}
	byAddr  map[string]int
	byUser  map[string]*userConns
	closing bool
	served  sync.WaitGroup // the connections' read loops
}

// registered is a view with what the router derived from its Spec.
type registered struct {
	view         View
	spec         Spec
	args, params map[string]bool // the arguments and query parameters it reads
}

// userConns is what the connections of one user hold together.
type userConns struct {
	conns  map[*conn]struct{}
	scopes map[*group]int // subscriptions per distinct scope
}

// NewRouter returns a Router with no views.
func NewRouter(cfg Config) *Router {
	cfg.setDefaults()
	rt := &Router{
		cfg: cfg, views: make(map[string]*registered),
		conns: make(map[*conn]struct{}), byAddr: make(map[string]int), byUser: make(map[string]*userConns),
	}
	rt.hub = newHub(rt)
	return rt
}

// Register adds views. Like http.ServeMux.Handle, it panics on a definition
// error, which is a programming error to fix before start-up: a view whose
// Spec has no label or one not of the form "app.Model", a label registered
// twice, or a view whose Check method (an optional `Check() error`) fails.
func (rt *Router) Register(views ...View) {
	for _, v := range views {
		if err := rt.register(v); err != nil {
			panic(err)
		}
	}
}

func (rt *Router) register(v View) error {
	if v == nil {
		return errors.New("live: Register: nil view")
	}
	if c, ok := v.(interface{ Check() error }); ok {
		if err := c.Check(); err != nil {
			return fmt.Errorf("live: Register %T: %w", v, err)
		}
	}
	spec := v.Spec()
	label := spec.Model
	switch {
	case !validLabel(label):
		return fmt.Errorf("live: Register: view %T: model label %q must have the form app.Model", v, label)
	case strings.HasPrefix(label, reservedApp+"."):
		return fmt.Errorf("live: Register: model label %q: the app %q is reserved", label, reservedApp)
	case rt.views[label] != nil:
		return fmt.Errorf("live: Register: a view for %q is already registered", label)
	case slices.Contains(spec.GroupBy, PK) || slices.Contains(spec.GroupBy, ""):
		return fmt.Errorf("live: Register %q: GroupBy lists %q, which is not a field", label, PK)
	}
	if spec.Lookup == "" {
		spec.Lookup = PK
	}
	for _, d := range spec.Dependencies {
		if !validLabel(d.Model) || d.Field == "" {
			return fmt.Errorf("live: Register %q: dependency %+v needs a model label app.Model and a field", label, d)
		}
	}
	r := &registered{view: v, spec: spec, args: nameSet(spec.Args), params: nameSet(spec.QueryParams)}
	rt.views[label] = r
	return nil
}

func nameSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// reservedApp is the app part of the labels the router uses for its own
// messages through the layer (see sessionModel).
const reservedApp = "restlive"

// validLabel reports whether label is "app.Model": two identifiers joined
// by one dot.
func validLabel(label string) bool {
	app, model, ok := strings.Cut(label, ".")
	return ok && identifier(app) && identifier(model)
}

func identifier(s string) bool {
	for i, r := range s {
		if r != '_' && !(r >= 'a' && r <= 'z') && !(r >= 'A' && r <= 'Z') && !(i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// Layer returns the layer the router receives changes from.
func (rt *Router) Layer() Layer { return rt.cfg.Layer }

// ServeHTTP upgrades the request to a WebSocket and serves subscriptions on
// it until the client or the router closes it.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveConn(rt, w, r)
}

// Disconnect closes every connection of the user id with 4001, in this
// process and, through the layer, in every process that shares it: call
// it when a user logs out, changes their password or loses rights, so that
// sockets opened before stop receiving at once. Clients reconnect and
// authenticate again: those whose credentials still hold are back, with
// the rights they have now. It returns when the local connections are
// closing and the message to the others is published.
func (rt *Router) Disconnect(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("live: Disconnect: empty user id")
	}
	rt.disconnectLocal(userID)
	return rt.cfg.Layer.Publish(ctx, []Change{sessionEnd(userID)})
}

// disconnectLocal closes the connections of userID in this process.
func (rt *Router) disconnectLocal(userID string) {
	rt.mu.Lock()
	var conns []*conn
	if u := rt.byUser[userID]; u != nil {
		for c := range u.conns {
			conns = append(conns, c)
		}
	}
	rt.mu.Unlock()
	for _, c := range conns {
		c.close(statusSessionEnded, "session ended: reconnect to authenticate again", ReasonSession, "Disconnect")
	}
}

// Close closes every connection with 1001 (going away) at once, waits
// until they have ended, and stops receiving changes. It is Shutdown
// without a deadline.
func (rt *Router) Close() error {
	return rt.Shutdown(context.Background())
}

// Shutdown stops the router gracefully: it refuses new connections,
// closes the open ones with 1001 (going away) so that clients reconnect
// elsewhere, waits until they have ended and the hub has finished the
// work under way, and stops receiving changes. When ctx ends first, it
// drops the connections that have not closed yet and returns ctx's error.
//
// http.Server.Shutdown neither closes nor waits for hijacked connections
// such as WebSockets: call Shutdown too, as the server's Shutdown begins
// (http.Server.RegisterOnShutdown) or after it.
func (rt *Router) Shutdown(ctx context.Context) error {
	rt.mu.Lock()
	rt.closing = true
	conns := make([]*conn, 0, len(rt.conns))
	for c := range rt.conns {
		conns = append(conns, c)
	}
	rt.mu.Unlock()
	for _, c := range conns {
		c.close(statusGoingAway, "server shutting down", ReasonShutdown, "")
	}
	done := make(chan struct{})
	go func() {
		rt.served.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range conns {
			c.drop(ReasonShutdown, "the deadline passed")
		}
		<-done
	}
	return errors.Join(err, rt.hub.close(ctx))
}

// admit counts c against the router's limits, or says which one it would
// exceed.
func (rt *Router) admit(c *conn) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	switch {
	case rt.closing:
		return errShuttingDown
	case !within(len(rt.conns)+1, rt.cfg.MaxConnections):
		return errors.New("too many connections to this server")
	case !within(rt.byAddr[c.addr]+1, rt.cfg.MaxConnectionsPerAddress):
		return errors.New("too many connections from this address")
	}
	u := rt.byUser[c.userID]
	if c.userID != "" && u != nil && !within(len(u.conns)+1, rt.cfg.MaxConnectionsPerUser) {
		return errors.New("too many connections of this user")
	}
	if c.userID != "" && u == nil {
		u = &userConns{conns: make(map[*conn]struct{}), scopes: make(map[*group]int)}
		rt.byUser[c.userID] = u
	}
	if u != nil {
		u.conns[c] = struct{}{}
	}
	rt.conns[c] = struct{}{}
	rt.byAddr[c.addr]++
	rt.served.Add(1)
	return nil
}

var errShuttingDown = errors.New("server shutting down")

// release undoes admit once c has ended.
func (rt *Router) release(c *conn) {
	rt.mu.Lock()
	delete(rt.conns, c)
	if rt.byAddr[c.addr]--; rt.byAddr[c.addr] <= 0 {
		delete(rt.byAddr, c.addr)
	}
	if u := rt.byUser[c.userID]; u != nil {
		delete(u.conns, c)
		if len(u.conns) == 0 {
			delete(rt.byUser, c.userID)
		}
	}
	rt.mu.Unlock()
	rt.served.Done()
}

// takeUserScope counts a subscription of c's user to g, if the user's
// distinct scopes allow it.
func (rt *Router) takeUserScope(c *conn, g *group) bool {
	if c.userID == "" {
		return true
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	u := rt.byUser[c.userID]
	if u == nil {
		return true // the connection is ending
	}
	if u.scopes[g] == 0 && !within(len(u.scopes)+1, rt.cfg.MaxUserScopes) {
		return false
	}
	u.scopes[g]++
	return true
}

// releaseUserScope undoes takeUserScope.
func (rt *Router) releaseUserScope(c *conn, g *group) {
	if c.userID == "" {
		return
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if u := rt.byUser[c.userID]; u != nil {
		if u.scopes[g]--; u.scopes[g] <= 0 {
			delete(u.scopes, g)
		}
	}
}

// Stats is what a router holds at one moment.
type Stats struct {
	// Connections open, and the subscriptions they hold.
	Connections, Subscriptions int
	// Scopes is the number of distinct scopes (groups of subscriptions
	// that see the same instances) the hub keeps, and Instances the
	// instances they hold together.
	Scopes, Instances int
	// Models breaks subscriptions, scopes and instances down by model
	// label.
	Models map[string]ModelStats
}

// ModelStats is what a router holds of one model.
type ModelStats struct {
	Subscriptions, Scopes, Instances int
}

// Stats returns what the router holds now: for tests, health checks and
// metrics. It takes each connection's lock and the hub's in turn, briefly.
func (rt *Router) Stats() Stats {
	st := Stats{Models: make(map[string]ModelStats, len(rt.views))}
	for label := range rt.views {
		st.Models[label] = ModelStats{}
	}
	rt.mu.Lock()
	conns := make([]*conn, 0, len(rt.conns))
	for c := range rt.conns {
		conns = append(conns, c)
	}
	rt.mu.Unlock()
	st.Connections = len(conns)
	for _, c := range conns {
		c.subsMu.Lock()
		st.Subscriptions += len(c.subs)
		for _, s := range c.subs {
			// A subscribe under way may name a model no view serves: a
			// client's label is no metric's.
			if m, ok := st.Models[s.msg.model]; ok {
				m.Subscriptions++
				st.Models[s.msg.model] = m
			}
		}
		c.subsMu.Unlock()
	}
	h := rt.hub
	h.mu.Lock()
	st.Scopes = len(h.groups)
	for _, g := range h.groups {
		n := int(g.size.Load())
		st.Instances += n
		m := st.Models[g.key.model]
		m.Scopes++
		m.Instances += n
		st.Models[g.key.model] = m
	}
	h.mu.Unlock()
	return st
}
