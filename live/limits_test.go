package live_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

// eventually waits, up to a deadline, for cond to hold.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Query parameters and arguments a view does not read make no scope of
// their own: 200 subscriptions that differ only by them share one.
func TestUndeclaredParamsShareAScope(t *testing.T) {
	f := newFixture(t, live.Config{})
	f.table.create("a", 2)
	c := f.connect(t, "")
	for i := range 200 {
		subscribe(t, c, map[string]any{"request_id": i, "model": "app.Todo", "group_by": "list_id", "value": 2,
			"query_params": map[string]any{"nonce": i}, "arguments": map[string]any{"other": i}})
	}
	if st := f.router.Stats(); st.Scopes != 1 || st.Instances != 1 || st.Subscriptions != 200 {
		t.Fatalf("stats %+v, want 1 scope of 1 instance, 200 subscriptions", st)
	}
	// A parameter the view reads does shape its scope.
	subscribe(t, c, map[string]any{"request_id": "s", "model": "app.Todo", "group_by": "list_id", "value": 2,
		"query_params": map[string]any{"search": "a"}})
	if st := f.router.Stats(); st.Scopes != 2 {
		t.Fatalf("stats %+v, want 2 scopes", st)
	}
}

// A list of the whole model is for views that opt in.
func TestListAllNeedsOptIn(t *testing.T) {
	rt := live.NewRouter(live.Config{Authenticate: tokenAuth, Logger: quiet()})
	rt.Register(&todoView{table: newTodoTable(rt.Layer())})
	t.Cleanup(func() { rt.Close() })
	c := livetest.Connect(t, rt, nil)
	c.Send(map[string]any{"type": "subscribe", "id": 1, "model": "app.Todo", "action": "list"})
	m := c.Receive()
	expect(t, m, map[string]any{"type": "error", "id": 1, "code": 400})
	if msg := m["message"].(string); !strings.Contains(msg, "can only be subscribed to by group") {
		t.Fatalf("message %q does not say why", msg)
	}
}

// The limits on distinct scopes and the instances they hold, per
// connection and per user; a scope that grows beyond its limit ends its
// subscriptions with 413.
func TestScopeLimits(t *testing.T) {
	f := newFixture(t, live.Config{MaxScopes: 2, MaxScopeInstances: 3, MaxInstances: 4, MaxUserScopes: 3})
	for range 2 {
		f.table.create("two", 2)
		f.table.create("four", 4)
	}
	for range 4 {
		f.table.create("six", 6)
	}
	c := f.connect(t, "alice")
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	// The same scope again costs no new one.
	subscribe(t, c, map[string]any{"request_id": 2, "model": "app.Todo", "group_by": "list_id", "value": 2})
	c.Send(map[string]any{"request_id": 3, "model": "app.Todo", "group_by": "list_id", "value": 6})
	expect(t, c.Receive(), map[string]any{"type": "error", "request_id": 3, "code": 413})
	subscribe(t, c, map[string]any{"request_id": 4, "model": "app.Todo", "group_by": "list_id", "value": 4})
	// Two scopes of two instances: a third scope is one too many.
	c.Send(map[string]any{"request_id": 5, "model": "app.Todo", "group_by": "list_id", "value": 8})
	expect(t, c.Receive(), map[string]any{"type": "error", "request_id": 5, "code": 429})

	// A second connection of alice's: her scopes count together.
	d := f.connect(t, "alice")
	subscribe(t, d, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 10})
	d.Send(map[string]any{"request_id": 2, "model": "app.Todo", "group_by": "list_id", "value": 12})
	expect(t, d.Receive(), map[string]any{"type": "error", "request_id": 2, "code": 429})

	// The instances of a connection's scopes: 2 + 2 held, a scope of one
	// more is too many even within the scope count.
	e := f.connect(t, "bob")
	subscribe(t, e, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	subscribe(t, e, map[string]any{"request_id": 2, "model": "app.Todo", "value": 1})
	e.Send(map[string]any{"request_id": 3, "model": "app.Todo", "group_by": "list_id", "value": 4})
	expect(t, e.Receive(), map[string]any{"type": "error", "request_id": 3, "code": 429})

	// List 2 grows to four: its subscriptions end with 413.
	f.table.create("two", 2)
	f.table.create("two", 2)
	for _, conn := range []*livetest.Communicator{c, c, e} {
		for {
			m := conn.Receive()
			if m["type"] == "error" {
				expect(t, m, map[string]any{"code": 413})
				break
			}
		}
	}
	c.Send(map[string]any{"request_id": 1, "unsubscribe": true})
	expect(t, c.Receive(), map[string]any{"type": "error", "request_id": 1, "code": 404})
	// The request id is free again.
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "value": 1})
}

// Connections are bounded per address, per user and per router; the
// refused are closed with 1013 and told why.
func TestConnectionLimits(t *testing.T) {
	f := newFixture(t, live.Config{MaxConnectionsPerAddress: 3, MaxConnectionsPerUser: 1, MaxConnections: 4})
	alice := f.connect(t, "alice")
	subscribe(t, alice, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	if code := f.connect(t, "alice").CloseStatus(); code != 1013 {
		t.Fatalf("alice's second connection: close code %d, want 1013", code)
	}
	// A connection is admitted after its handshake: each is waited for,
	// or the last two could be admitted in either order.
	for n := 2; n <= 3; n++ {
		f.connect(t, "")
		eventually(t, fmt.Sprint(n, " connections"), func() bool { return f.router.Stats().Connections == n })
	}
	// livetest connects from one address: the fourth is one too many.
	if code := f.connect(t, "").CloseStatus(); code != 1013 {
		t.Fatalf("a fourth connection from one address: close code %d, want 1013", code)
	}
	if st := f.router.Stats(); st.Connections != 3 {
		t.Fatalf("%d connections, want 3", st.Connections)
	}
	// Per address by ClientAddress: a proxy's clients told apart.
	g := newFixture(t, live.Config{MaxConnectionsPerAddress: 1, MaxConnections: 2, ClientAddress: func(r *http.Request) string {
		return r.Header.Get("X-Forwarded-For")
	}})
	for i, want := range []int{-1, -1, 1013} {
		c := livetest.Connect(t, g.router, &livetest.Options{Header: http.Header{"X-Forwarded-For": {fmt.Sprint(i)}}})
		if want == -1 {
			subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
		} else if code := c.CloseStatus(); code != want {
			t.Fatalf("connection %d: close code %d, want %d (the router's limit)", i, code, want)
		}
	}
}

// A request id is echoed with every broadcast for as long as its
// subscription lasts: a long one is refused.
func TestRequestIDSize(t *testing.T) {
	f := newFixture(t, live.Config{})
	c := f.connect(t, "")
	long := strings.Repeat("x", 60<<10)
	for i := range 20 {
		c.Send(fmt.Sprintf(`{"request_id": "%d%s", "model": "app.Todo", "group_by": "list_id", "value": 2}`, i, long))
		m := c.Receive()
		expect(t, m, map[string]any{"type": "error", "code": 400})
		if m["request_id"] != nil {
			t.Fatalf("the refusal echoed the long id")
		}
	}
	if st := f.router.Stats(); st.Subscriptions != 0 || st.Scopes != 0 {
		t.Fatalf("stats %+v after refusals", st)
	}
	subscribe(t, c, map[string]any{"request_id": strings.Repeat("y", 62), "model": "app.Todo", "group_by": "list_id", "value": 2})
}

// Malformed frames count against the rate limit like any other.
func TestMalformedFramesAreRateLimited(t *testing.T) {
	f := newFixture(t, live.Config{MessageRate: 1, MessageBurst: 5})
	c := f.connect(t, "")
	for range 8 {
		c.Send("{")
	}
	for i := range 8 {
		want := 400.0
		if i >= 5 {
			want = 429
		}
		if m := c.Receive(); m["code"] != want {
			t.Fatalf("frame %d: got %v, want code %v", i, m, want)
		}
	}
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
