package live_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

// fixture is a router serving todoView over a MemoryLayer.
type fixture struct {
	router *live.Router
	table  *todoTable
	view   *todoView
}

func newFixture(t *testing.T, cfg live.Config) *fixture {
	t.Helper()
	if cfg.Authenticate == nil {
		cfg.Authenticate = tokenAuth
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	rt := live.NewRouter(cfg)
	f := &fixture{router: rt, table: newTodoTable(rt.Layer())}
	f.view = &todoView{table: f.table, listAll: true}
	rt.Register(f.view)
	t.Cleanup(func() { rt.Close() })
	return f
}

// tokenAuth logs in whoever "Authorization: Token <name>" names.
func tokenAuth(r *http.Request) (live.Identity, error) {
	name, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Token ")
	if !ok || name == "" {
		return live.Identity{}, nil
	}
	return live.Identity{User: name, ID: name}, nil
}

func (f *fixture) connect(t *testing.T, user string) *livetest.Communicator {
	t.Helper()
	var h http.Header
	if user != "" {
		h = livetest.TokenHeader("Token", user)
	}
	return livetest.Connect(t, f.router, &livetest.Options{Header: h})
}

// expect checks that got has every key of want with an equal value
// (compared through fmt, so JSON numbers match Go ints).
func expect(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Fatalf("%s = %v, want %v in %v", k, got[k], w, got)
		}
	}
}

func instance(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	in, ok := m["instance"].(map[string]any)
	if !ok {
		t.Fatalf("no instance in %v", m)
	}
	return in
}

// subscribe subscribes with an ack and waits for it, so that every change
// made afterwards is delivered.
func subscribe(t *testing.T, c *livetest.Communicator, msg map[string]any) {
	t.Helper()
	msg["ack"] = true
	c.Send(msg)
	reply := c.Receive()
	if reply["type"] != "subscribed" {
		t.Fatalf("subscribe %v: got %v", msg, reply)
	}
}

func TestSubscribeToInstance(t *testing.T) {
	f := newFixture(t, live.Config{})
	todo := f.table.create("buy milk", 2)
	c := f.connect(t, "")
	subscribe(t, c, map[string]any{"request_id": 1337, "model": "app.Todo", "value": todo.ID})

	todo.Done = true
	f.table.update(todo)
	m := c.Receive()
	expect(t, m, map[string]any{"type": "broadcast", "request_id": 1337, "model": "app.Todo", "action": "UPDATED"})
	expect(t, instance(t, m), map[string]any{"id": todo.ID, "text": "buy milk", "done": true})

	c.Send(map[string]any{"request_id": 1337, "unsubscribe": true, "ack": true})
	expect(t, c.Receive(), map[string]any{"type": "unsubscribed", "request_id": 1337})
	todo.Text = "buy oat milk"
	f.table.update(todo)
	c.ReceiveNothing()
}

func TestGroupReceivesCreateUpdateDelete(t *testing.T) {
	f := newFixture(t, live.Config{})
	c := f.connect(t, "")
	subscribe(t, c, map[string]any{"request_id": "g", "model": "app.Todo", "group_by": "list_id", "value": "14"})

	todo := f.table.create("one", 14)
	f.table.create("elsewhere", 16)
	expect(t, c.Receive(), map[string]any{"request_id": "g", "action": "CREATED"})
	todo.Text = "two"
	f.table.update(todo)
	m := c.Receive()
	expect(t, m, map[string]any{"action": "UPDATED"})
	expect(t, instance(t, m), map[string]any{"text": "two"})
	f.table.delete(todo.ID)
	m = c.Receive()
	expect(t, m, map[string]any{"action": "DELETED"})
	if in := instance(t, m); len(in) != 1 || fmt.Sprint(in["id"]) != fmt.Sprint(todo.ID) {
		t.Fatalf("DELETED instance = %v, want only the id", in)
	}
	c.ReceiveNothing()
}

func TestMoveBetweenGroups(t *testing.T) {
	f := newFixture(t, live.Config{})
	c := f.connect(t, "")
	subscribe(t, c, map[string]any{"request_id": 14, "model": "app.Todo", "group_by": "list_id", "value": 14})
	subscribe(t, c, map[string]any{"request_id": 16, "model": "app.Todo", "group_by": "list_id", "value": 16})
	todo := f.table.create("move me", 14)
	expect(t, c.Receive(), map[string]any{"request_id": 14, "action": "CREATED"})
	todo.ListID = 16
	f.table.update(todo)
	got := map[string]string{}
	for range 2 {
		m := c.Receive()
		got[fmt.Sprint(m["request_id"])] = fmt.Sprint(m["action"])
	}
	if got["14"] != "DELETED" || got["16"] != "CREATED" {
		t.Fatalf("after the move: %v, want 14 DELETED and 16 CREATED", got)
	}
	c.ReceiveNothing()
}

func TestStackedSubscriptions(t *testing.T) {
	f := newFixture(t, live.Config{})
	c := f.connect(t, "")
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	subscribe(t, c, map[string]any{"request_id": 2, "model": "app.Todo", "group_by": "list_id", "value": 2})
	f.table.create("x", 2)
	ids := map[string]bool{}
	for range 2 {
		ids[fmt.Sprint(c.Receive()["request_id"])] = true
	}
	if !ids["1"] || !ids["2"] {
		t.Fatalf("broadcasts for %v, want both subscriptions", ids)
	}
	c.Send(map[string]any{"request_id": 1, "unsubscribe": true, "ack": true})
	expect(t, c.Receive(), map[string]any{"type": "unsubscribed", "request_id": 1})
	f.table.create("y", 2)
	expect(t, c.Receive(), map[string]any{"request_id": 2, "action": "CREATED"})
	c.ReceiveNothing()
	c.Send(map[string]any{"request_id": 2, "unsubscribe": true, "ack": true})
	expect(t, c.Receive(), map[string]any{"type": "unsubscribed", "request_id": 2})
	f.table.create("z", 2)
	c.ReceiveNothing()
}

func TestScopeEnterAndLeave(t *testing.T) {
	f := newFixture(t, live.Config{})
	c := f.connect(t, "")
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2,
		"query_params": map[string]any{"search": "milk"}})
	f.table.create("bread", 2)
	c.ReceiveNothing()
	todo := f.table.create("milk", 2)
	expect(t, c.Receive(), map[string]any{"action": "CREATED"})
	todo.Text = "more milk"
	f.table.update(todo)
	expect(t, c.Receive(), map[string]any{"action": "UPDATED"})
	todo.Text = "water"
	f.table.update(todo)
	expect(t, c.Receive(), map[string]any{"action": "DELETED"})
	todo.Text = "sparkling water"
	f.table.update(todo)
	f.table.delete(todo.ID)
	c.ReceiveNothing() // DELETED only once
	todo = f.table.create("bread", 2)
	todo.Text = "milk bread"
	f.table.update(todo)
	expect(t, c.Receive(), map[string]any{"action": "CREATED"})
}

func TestTypedDialect(t *testing.T) {
	f := newFixture(t, live.Config{})
	todo := f.table.create("a", 2)
	c := f.connect(t, "")
	c.Send(map[string]any{"type": "subscribe", "id": 7, "model": "app.Todo", "action": "retrieve", "lookup_by": todo.ID, "ack": true})
	expect(t, c.Receive(), map[string]any{"type": "subscribed", "id": 7})
	c.Send(map[string]any{"type": "subscribe", "id": 8, "model": "app.Todo", "action": "list",
		"view_kwargs": map[string]any{"done": true}, "ack": true})
	expect(t, c.Receive(), map[string]any{"type": "subscribed", "id": 8})
	todo.Done = true
	f.table.update(todo)
	got := map[string]string{}
	for range 2 {
		m := c.Receive()
		if _, seed := m["request_id"]; seed {
			t.Fatalf("typed dialect reply carries request_id: %v", m)
		}
		got[fmt.Sprint(m["id"])] = fmt.Sprint(m["action"])
	}
	if got["7"] != "UPDATED" || got["8"] != "CREATED" {
		t.Fatalf("got %v, want 7 UPDATED (retrieve) and 8 CREATED (entered the done list)", got)
	}
	c.Send(map[string]any{"type": "unsubscribe", "id": 8, "ack": true})
	expect(t, c.Receive(), map[string]any{"type": "unsubscribed", "id": 8})
}

func TestSerializerPerUser(t *testing.T) {
	f := newFixture(t, live.Config{})
	anon, alice := f.connect(t, ""), f.connect(t, "alice")
	for _, c := range []*livetest.Communicator{anon, alice} {
		subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	}
	f.table.create("x", 2)
	if in := instance(t, anon.Receive()); in["owner_only"] != nil {
		t.Fatalf("anonymous got %v", in)
	}
	if in := instance(t, alice.Receive()); in["owner_only"] != "secret" {
		t.Fatalf("alice got %v", in)
	}
	anon.ReceiveNothing()
	alice.ReceiveNothing()
}

func TestPermissionRefused(t *testing.T) {
	f := newFixture(t, live.Config{})
	f.view.refuse = func(req *live.Request) bool { return req.Anonymous() }
	anon := f.connect(t, "")
	anon.Send(map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	expect(t, anon.Receive(), map[string]any{"type": "error", "request_id": 1, "code": 403})
	alice := f.connect(t, "alice")
	subscribe(t, alice, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	f.table.create("x", 2)
	expect(t, alice.Receive(), map[string]any{"action": "CREATED"})
	anon.ReceiveNothing()
}

func TestInvisibleNeverSent(t *testing.T) {
	f := newFixture(t, live.Config{})
	c := f.connect(t, "") // anonymous users see even lists only
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 3})
	todo := f.table.create("odd", 3)
	todo.Done = true
	f.table.update(todo)
	f.table.delete(todo.ID)
	c.ReceiveNothing()
}

func TestErrors(t *testing.T) {
	f := newFixture(t, live.Config{MaxSubscriptions: 3})
	todo := f.table.create("a", 2)
	c := f.connect(t, "")
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "value": todo.ID})
	for _, tc := range []struct {
		name, frame string
		code        int
		id          any // the id the reply carries
		idKey       string
	}{
		{"not JSON", `{"request_id": 2,`, 400, nil, "request_id"},
		{"not an object", `[1, 2]`, 400, nil, "request_id"},
		{"missing model", `{"request_id": 2, "value": 1}`, 400, 2.0, "request_id"},
		{"missing value", `{"request_id": 2, "model": "app.Todo"}`, 400, 2.0, "request_id"},
		{"missing request_id", `{"model": "app.Todo", "value": 1}`, 400, nil, "request_id"},
		{"object request_id", `{"request_id": {}, "model": "app.Todo", "value": 1}`, 400, nil, "request_id"},
		{"unknown group_by", `{"request_id": 2, "model": "app.Todo", "group_by": "text", "value": 1}`, 400, 2.0, "request_id"},
		{"model not a string", `{"request_id": 2, "model": 5, "value": 1}`, 400, 2.0, "request_id"},
		{"value an object", `{"request_id": "s", "model": "app.Todo", "value": {}}`, 400, "s", "request_id"},
		{"query_params not an object", `{"request_id": 2, "model": "app.Todo", "value": 1, "query_params": 3}`, 400, 2.0, "request_id"},
		{"duplicate request_id", fmt.Sprintf(`{"request_id": 1, "model": "app.Todo", "value": %d}`, todo.ID), 400, 1.0, "request_id"},
		{"unknown type", `{"type": "subscrbe", "id": 3}`, 400, 3.0, "id"},
		{"unknown action", `{"type": "subscribe", "id": 3, "model": "app.Todo", "action": "destroy"}`, 400, 3.0, "id"},
		{"view refuses an argument", `{"request_id": 2, "model": "app.Todo", "group_by": "list_id", "value": 2, "arguments": {"done": "maybe"}}`, 400, 2.0, "request_id"},
		{"unknown model", `{"request_id": 2, "model": "app.Nope", "value": 1}`, 404, 2.0, "request_id"},
		{"instance not found", `{"request_id": 2, "model": "app.Todo", "value": 999}`, 404, 2.0, "request_id"},
		{"unsubscribe unknown", `{"request_id": 99, "unsubscribe": true}`, 404, 99.0, "request_id"},
		{"unsubscribe unknown, typed", `{"type": "unsubscribe", "id": 99}`, 404, 99.0, "id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Send(tc.frame)
			m := c.Receive()
			if m["type"] != "error" || m["code"] != float64(tc.code) || m[tc.idKey] != tc.id {
				t.Fatalf("reply %v, want error %d with %s %v", m, tc.code, tc.idKey, tc.id)
			}
			if _, ok := m[tc.idKey]; !ok {
				t.Fatalf("reply %v lacks %q", m, tc.idKey)
			}
			if msg, _ := m["message"].(string); msg == "" {
				t.Fatalf("reply %v has no message", m)
			}
		})
	}
	// Too many subscriptions: 429, and the connection still works.
	subscribe(t, c, map[string]any{"request_id": 2, "model": "app.Todo", "group_by": "list_id", "value": 2})
	subscribe(t, c, map[string]any{"request_id": 3, "model": "app.Todo", "group_by": "list_id", "value": 4})
	c.Send(map[string]any{"request_id": 4, "model": "app.Todo", "group_by": "list_id", "value": 6})
	expect(t, c.Receive(), map[string]any{"type": "error", "request_id": 4, "code": 429})
	todo.Done = true
	f.table.update(todo)
	got := map[string]bool{}
	for range 2 {
		got[fmt.Sprint(c.Receive()["request_id"])] = true
	}
	if !got["1"] || !got["2"] {
		t.Fatalf("after the errors, broadcasts for %v, want 1 and 2", got)
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, live.Config{MessageRate: 1, MessageBurst: 2})
	c := f.connect(t, "")
	for i := range 3 {
		c.Send(map[string]any{"request_id": i, "unsubscribe": true})
	}
	for _, code := range []float64{404, 404, 429} {
		if m := c.Receive(); m["code"] != code {
			t.Fatalf("got %v, want code %v", m, code)
		}
	}
}

func TestCloseCodes(t *testing.T) {
	t.Run("private refuses anonymous", func(t *testing.T) {
		f := newFixture(t, live.Config{Private: true})
		if code := f.connect(t, "").CloseStatus(); code != 4003 {
			t.Fatalf("close code %d, want 4003", code)
		}
		c := f.connect(t, "alice")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	})
	t.Run("cross-origin refused", func(t *testing.T) {
		f := newFixture(t, live.Config{OriginPatterns: []string{"*.example.com"}})
		h := http.Header{"Origin": {"https://evil.test"}}
		if code := livetest.Connect(t, f.router, &livetest.Options{Header: h}).CloseStatus(); code != 1008 {
			t.Fatalf("close code %d, want 1008", code)
		}
		h = http.Header{"Origin": {"https://app.example.com"}}
		c := livetest.Connect(t, f.router, &livetest.Options{Header: h})
		subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	})
	t.Run("binary frame", func(t *testing.T) {
		f := newFixture(t, live.Config{})
		c := f.connect(t, "")
		c.SendBinary([]byte("{}"))
		if code := c.CloseStatus(); code != 1003 {
			t.Fatalf("close code %d, want 1003", code)
		}
	})
	t.Run("frame too large", func(t *testing.T) {
		f := newFixture(t, live.Config{MaxMessageSize: 128})
		c := f.connect(t, "")
		c.Send(`{"request_id": "` + strings.Repeat("x", 200) + `"}`)
		if code := c.CloseStatus(); code != 1009 {
			t.Fatalf("close code %d, want 1009", code)
		}
	})
	t.Run("router closed", func(t *testing.T) {
		f := newFixture(t, live.Config{})
		c := f.connect(t, "")
		subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
		f.router.Close()
		if code := c.CloseStatus(); code != 1001 {
			t.Fatalf("close code %d, want 1001", code)
		}
	})
}

func TestRegisterFailsLoudly(t *testing.T) {
	for name, register := range map[string]func(rt *live.Router){
		"twice":     func(rt *live.Router) { rt.Register(&todoView{}, &todoView{}) },
		"no label":  func(rt *live.Router) { rt.Register(labelled("")) },
		"bad label": func(rt *live.Router) { rt.Register(labelled("Todo")) },
		"reserved":  func(rt *live.Router) { rt.Register(labelled("restlive.session")) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			register(live.NewRouter(live.Config{}))
		})
	}
}

type labelled string

func (l labelled) Spec() live.Spec                                            { return live.Spec{Model: string(l)} }
func (labelled) Parse(string, string) (live.Value, error)                     { return live.Value{}, nil }
func (labelled) Subscribe(context.Context, *live.Request) (live.Scope, error) { return nil, nil }

// One change costs one Fetch whatever the number of subscribers sharing
// a scope.
func TestSharedScopeOneFetchPerChange(t *testing.T) {
	for _, n := range []int{1, 100, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f := newFixture(t, live.Config{})
			conns := make([]*livetest.Communicator, 10)
			for i := range conns {
				conns[i] = f.connect(t, "")
			}
			for i := range n {
				subscribe(t, conns[i%len(conns)], map[string]any{"request_id": i, "model": "app.Todo", "group_by": "list_id", "value": 2})
			}
			before := f.table.fetches.Load()
			f.table.create("x", 2)
			var wg sync.WaitGroup
			for i, c := range conns {
				wg.Add(1)
				count := n / len(conns)
				if i < n%len(conns) {
					count++
				}
				func() {
					defer wg.Done()
					for range count {
						expect(t, c.Receive(), map[string]any{"action": "CREATED"})
					}
				}()
			}
			wg.Wait()
			if got := f.table.fetches.Load() - before; got != 1 {
				t.Fatalf("%d subscribers: %d fetches for one change, want 1", n, got)
			}
		})
	}
}

// A to-do leaves its subscribers' scopes when its list is hidden, though no
// to-do row changed, and enters them again when the list is shown.
func TestDependencyChange(t *testing.T) {
	f := newFixture(t, live.Config{})
	a := f.table.create("a", 2)
	b := f.table.create("b", 2)
	other := f.table.create("other list", 4)
	group, single := f.connect(t, ""), f.connect(t, "")
	subscribe(t, group, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	subscribe(t, single, map[string]any{"request_id": 2, "model": "app.Todo", "value": a.ID})
	subscribe(t, single, map[string]any{"request_id": 3, "model": "app.Todo", "value": other.ID})

	f.table.hide(2, true)
	deleted := map[string]bool{}
	for range 2 {
		m := group.Receive()
		expect(t, m, map[string]any{"request_id": 1, "action": "DELETED"})
		deleted[fmt.Sprint(instance(t, m)["id"])] = true
	}
	if !deleted[fmt.Sprint(a.ID)] || !deleted[fmt.Sprint(b.ID)] {
		t.Fatalf("DELETED %v, want to-dos %d and %d", deleted, a.ID, b.ID)
	}
	expect(t, single.Receive(), map[string]any{"request_id": 2, "action": "DELETED"})

	f.table.hide(2, false)
	for range 2 {
		expect(t, group.Receive(), map[string]any{"request_id": 1, "action": "CREATED"})
	}
	expect(t, single.Receive(), map[string]any{"request_id": 2, "action": "CREATED"})
	group.ReceiveNothing()
	single.ReceiveNothing() // the to-do of list 4 did not move
}
