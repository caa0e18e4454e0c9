package todoapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restlive/restlive/live/livetest"
)

// End-to-end tests: REST writes to the real server on a loopback port,
// and the broadcasts they cause on real WebSockets, for each rule of the
// app, on SQLite and on PostgreSQL.

// frame is a server frame.
type frame struct {
	Type      string          `json:"type"`
	RequestID json.RawMessage `json:"request_id"`
	Model     string          `json:"model"`
	Action    string          `json:"action"`
	Instance  json.RawMessage `json:"instance"`
	Code      int             `json:"code"`
	Message   string          `json:"message"`
	// The snapshot and resume extension.
	Instances json.RawMessage `json:"instances"`
	Offset    string          `json:"offset"`
	Resumed   *bool           `json:"resumed"`
}

// id returns the frame's request_id, a string in these tests.
func (f frame) id() string {
	var s string
	json.Unmarshal(f.RequestID, &s)
	return s
}

func (f frame) String() string {
	if f.Type == "broadcast" {
		return fmt.Sprintf("%s %s %s %s", f.id(), f.Model, f.Action, f.Instance)
	}
	return fmt.Sprintf("%s %s %d %s", f.id(), f.Type, f.Code, f.Message)
}

func receive(t *testing.T, c *livetest.Communicator) frame {
	t.Helper()
	var f frame
	c.ReceiveInto(&f)
	return f
}

// sub is a subscription request.
type sub struct {
	id, model, groupBy string
	value              uint
	query              map[string]string
}

func (s sub) msg() map[string]any {
	m := map[string]any{"request_id": s.id, "model": s.model, "value": s.value, "ack": true}
	if s.groupBy != "" {
		m["group_by"] = s.groupBy
	}
	if s.query != nil {
		m["query_params"] = s.query
	}
	return m
}

func listSub(id string, list uint) sub { return sub{id: id, model: "todolist.List", value: list} }
func taskSub(id string, task uint) sub { return sub{id: id, model: "todolist.Task", value: task} }
func groupSub(id string, list uint, query map[string]string) sub {
	return sub{id: id, model: "todolist.Task", groupBy: "list_id", value: list, query: query}
}

// subscribe subscribes and waits until the subscription is live.
func subscribe(t *testing.T, c *livetest.Communicator, s sub) {
	t.Helper()
	c.Send(s.msg())
	if f := receive(t, c); f.Type != "subscribed" || f.id() != s.id {
		t.Fatalf("subscribe %+v: got %s, want subscribed", s, f)
	}
}

// refused subscribes and expects an error with code.
func refused(t *testing.T, c *livetest.Communicator, s sub, code int) {
	t.Helper()
	c.Send(s.msg())
	if f := receive(t, c); f.Type != "error" || f.id() != s.id || f.Code != code {
		t.Fatalf("subscribe %+v: got %s, want error %d", s, f, code)
	}
}

// want is an expected broadcast.
type want struct {
	id, action, instance string
}

func (w want) String() string { return w.id + " " + w.action + " " + w.instance }

// expect receives len(wants) frames and checks that they are the wanted
// broadcasts, in any order: broadcasts to different subscriptions of a
// connection may come in either order. Each instance must be exactly the
// bytes given.
func expect(t *testing.T, c *livetest.Communicator, wants ...want) {
	t.Helper()
	var got, wanted []string
	for range wants {
		f := receive(t, c)
		got = append(got, want{f.id(), f.Action, string(f.Instance)}.String())
	}
	for _, w := range wants {
		wanted = append(wanted, w.String())
	}
	slices.Sort(got)
	slices.Sort(wanted)
	if !slices.Equal(got, wanted) {
		t.Fatalf("received:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(wanted, "\n\t"))
	}
}

func deleted(id uint) string { return fmt.Sprintf(`{"id":%d}`, id) }

func TestBroadcasts(t *testing.T) {
	for _, db := range databases {
		for _, mode := range modes {
			t.Run(db.name+"/"+mode, func(t *testing.T) {
				t.Parallel()
				testBroadcasts(t, startMode(t, db.dsn(t), mode))
			})
		}
	}
}

func testBroadcasts(t *testing.T, s *server) {
	alice, bob := s.register(t, "alice"), s.register(t, "bob")
	ca, cb, cn := s.connect(t, alice), s.connect(t, bob), s.connect(t, nil)
	// The page's socket: authenticated by the session cookie.
	cc := livetest.ConnectURL(t, s.ws, &livetest.Options{Header: livetest.CookieHeader(alice.session), Timeout: 10 * time.Second})
	var priv, pub List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"secret","public":false}`).decode(t, &priv)
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"shared","public":true}`).decode(t, &pub)
	privPath, pubPath := fmt.Sprintf("/api/lists/%d/", priv.ID), fmt.Sprintf("/api/lists/%d/", pub.ID)
	get := func(path string, u *user) string { t.Helper(); return s.must(t, 200, "GET", path, u, "").body }

	// A private list: its owner subscribes, by token or cookie; to anyone
	// else it does not exist.
	subscribe(t, ca, listSub("priv", priv.ID))
	subscribe(t, cc, listSub("priv", priv.ID))
	refused(t, cb, listSub("priv", priv.ID), 404)
	refused(t, cn, listSub("priv", priv.ID), 404)
	for _, c := range []*livetest.Communicator{ca, cb, cn} {
		subscribe(t, c, listSub("pub", pub.ID))
	}

	// Only the owner changes a list; subscribers get exactly the bytes a
	// GET returns to them.
	s.must(t, 200, "PATCH", privPath, alice, `{"name":"still secret"}`)
	expect(t, ca, want{"priv", "UPDATED", get(privPath, alice)})
	expect(t, cc, want{"priv", "UPDATED", get(privPath, alice)})
	s.must(t, 403, "PATCH", pubPath, bob, `{"name":"bob's now"}`)
	s.must(t, 401, "PATCH", pubPath, nil, `{"name":"anyone's now"}`)
	s.must(t, 200, "PATCH", pubPath, alice, `{"name":"renamed"}`)
	expect(t, ca, want{"pub", "UPDATED", get(pubPath, alice)})
	expect(t, cb, want{"pub", "UPDATED", get(pubPath, bob)})
	expect(t, cn, want{"pub", "UPDATED", get(pubPath, nil)})

	// Made private, a list leaves everyone's sight but its owner's: they
	// learn its id, no more. Made public, it comes back.
	s.must(t, 200, "PATCH", pubPath, alice, `{"public":false}`)
	expect(t, ca, want{"pub", "UPDATED", get(pubPath, alice)})
	expect(t, cb, want{"pub", "DELETED", deleted(pub.ID)})
	expect(t, cn, want{"pub", "DELETED", deleted(pub.ID)})
	s.must(t, 200, "PATCH", pubPath, alice, `{"public":true}`)
	expect(t, ca, want{"pub", "UPDATED", get(pubPath, alice)})
	expect(t, cb, want{"pub", "CREATED", get(pubPath, bob)})
	expect(t, cn, want{"pub", "CREATED", get(pubPath, nil)})

	// Tasks by list, with the REST list's filters.
	for _, c := range []*livetest.Communicator{ca, cb, cn} {
		subscribe(t, c, groupSub("tasks", pub.ID, nil))
	}
	subscribe(t, cb, groupSub("done", pub.ID, map[string]string{"done": "true"}))
	subscribe(t, cb, groupSub("milk", pub.ID, map[string]string{"search": "milk"}))
	refused(t, cb, groupSub("bad", pub.ID, map[string]string{"done": "maybe"}), 400)
	subscribe(t, ca, groupSub("private tasks", priv.ID, nil))
	// A group of another user's private list may be subscribed to; it
	// stays silent (checked at the end).
	subscribe(t, cb, groupSub("private tasks", priv.ID, nil))

	// Anyone, even anonymous, may add to a public list.
	var task Task
	s.must(t, 201, "POST", "/api/tasks/", nil, fmt.Sprintf(`{"text":"bread","list":%d}`, pub.ID)).decode(t, &task)
	taskPath := fmt.Sprintf("/api/tasks/%d/", task.ID)
	expect(t, ca, want{"tasks", "CREATED", get(taskPath, alice)})
	expect(t, cb, want{"tasks", "CREATED", get(taskPath, bob)})
	expect(t, cn, want{"tasks", "CREATED", get(taskPath, nil)})
	// Ticked, it enters ?done=true; renamed, ?search=milk.
	s.must(t, 200, "PATCH", taskPath, bob, `{"done":true}`)
	expect(t, ca, want{"tasks", "UPDATED", get(taskPath, alice)})
	expect(t, cb, want{"tasks", "UPDATED", get(taskPath, bob)}, want{"done", "CREATED", get(taskPath, bob)})
	expect(t, cn, want{"tasks", "UPDATED", get(taskPath, nil)})
	s.must(t, 200, "PATCH", taskPath, nil, `{"text":"Oat MILK"}`)
	body := get(taskPath, bob)
	expect(t, ca, want{"tasks", "UPDATED", body})
	expect(t, cb, want{"tasks", "UPDATED", body}, want{"done", "UPDATED", body}, want{"milk", "CREATED", body})
	expect(t, cn, want{"tasks", "UPDATED", body})
	s.must(t, 200, "PATCH", taskPath, bob, `{"done":false}`)
	body = get(taskPath, bob)
	expect(t, ca, want{"tasks", "UPDATED", body})
	expect(t, cb, want{"tasks", "UPDATED", body}, want{"done", "DELETED", deleted(task.ID)}, want{"milk", "UPDATED", body})
	expect(t, cn, want{"tasks", "UPDATED", body})

	// A task of a private list reaches its owner only.
	var hidden Task
	s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"hidden milk","list":%d}`, priv.ID)).decode(t, &hidden)
	hiddenPath := fmt.Sprintf("/api/tasks/%d/", hidden.ID)
	expect(t, ca, want{"private tasks", "CREATED", get(hiddenPath, alice)})
	subscribe(t, ca, taskSub("hidden", hidden.ID))
	refused(t, cb, taskSub("hidden", hidden.ID), 404)
	refused(t, cn, taskSub("hidden", hidden.ID), 404)
	s.must(t, 404, "PATCH", hiddenPath, bob, `{"done":true}`)
	s.must(t, 200, "PATCH", hiddenPath, alice, `{"done":true}`)
	body = get(hiddenPath, alice)
	expect(t, ca, want{"private tasks", "UPDATED", body}, want{"hidden", "UPDATED", body})

	// Moved to the private list, the public task leaves everyone's sight
	// but the owner's, for whom it moves from one group to the other.
	s.must(t, 400, "PATCH", taskPath, bob, fmt.Sprintf(`{"list":%d}`, priv.ID))
	s.must(t, 200, "PATCH", taskPath, alice, fmt.Sprintf(`{"list":%d}`, priv.ID))
	expect(t, ca, want{"tasks", "DELETED", deleted(task.ID)}, want{"private tasks", "CREATED", get(taskPath, alice)})
	expect(t, cb, want{"tasks", "DELETED", deleted(task.ID)}, want{"milk", "DELETED", deleted(task.ID)})
	expect(t, cn, want{"tasks", "DELETED", deleted(task.ID)})
	// Back, and then deleted by an anonymous visitor.
	s.must(t, 200, "PATCH", taskPath, alice, fmt.Sprintf(`{"list":%d}`, pub.ID))
	body = get(taskPath, bob)
	expect(t, ca, want{"tasks", "CREATED", body}, want{"private tasks", "DELETED", deleted(task.ID)})
	expect(t, cb, want{"tasks", "CREATED", body}, want{"milk", "CREATED", body})
	expect(t, cn, want{"tasks", "CREATED", body})
	s.must(t, 204, "DELETE", taskPath, nil, "")
	expect(t, ca, want{"tasks", "DELETED", deleted(task.ID)})
	expect(t, cb, want{"tasks", "DELETED", deleted(task.ID)}, want{"milk", "DELETED", deleted(task.ID)})
	expect(t, cn, want{"tasks", "DELETED", deleted(task.ID)})

	// Deleting a list deletes its tasks, and says so.
	s.must(t, 404, "DELETE", privPath, bob, "")
	s.must(t, 204, "DELETE", privPath, alice, "")
	expect(t, ca, want{"priv", "DELETED", deleted(priv.ID)}, want{"private tasks", "DELETED", deleted(hidden.ID)}, want{"hidden", "DELETED", deleted(hidden.ID)})
	expect(t, cc, want{"priv", "DELETED", deleted(priv.ID)})

	// Nothing else, to anyone: not the refused writes, not bob's silent
	// group of alice's private list.
	for _, c := range []*livetest.Communicator{ca, cb, cn, cc} {
		c.ReceiveNothing()
	}
}

// TestConnectionRefusals checks the WebSocket upgrade's authentication
// and origin checks.
func TestConnectionRefusals(t *testing.T) {
	eachMode(t, func(t *testing.T, s *server) { testConnectionRefusals(t, s) })
}

func testConnectionRefusals(t *testing.T, s *server) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// A token that names no one is refused with 4003 and DRF's message,
	// in the Authorization header or offered as a subprotocol, as a
	// browser's page must.
	for _, opts := range []*websocket.DialOptions{
		{HTTPHeader: http.Header{"Authorization": {"Token wrong"}}},
		{Subprotocols: []string{"restlive", "restlive.token.wrong"}},
	} {
		ws, _, err := websocket.Dial(ctx, s.ws, opts)
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		_, _, err = ws.Read(ctx)
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4003 || ce.Reason != "Invalid token." {
			t.Errorf("connection with a wrong token: %v, want close 4003 Invalid token.", err)
		}
	}
	// The right token as a subprotocol logs the page in.
	alice := s.register(t, "alice")
	ws, _, err := websocket.Dial(ctx, s.ws, &websocket.DialOptions{Subprotocols: []string{"restlive", "restlive.token." + alice.token}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if ws.Subprotocol() != "restlive" {
		t.Errorf("subprotocol %q, want restlive", ws.Subprotocol())
	}
	var l List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"mine"}`).decode(t, &l)
	ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"request_id": 1, "model": "todolist.List", "value": %d, "ack": true}`, l.ID))
	if _, msg, err := ws.Read(ctx); err != nil || !strings.Contains(string(msg), `"subscribed"`) {
		t.Errorf("subscribe to a private list with the token: %s %v", msg, err)
	}
	// Another site's page cannot use a visitor's cookie.
	evil := livetest.ConnectURL(t, s.ws, &livetest.Options{Header: http.Header{"Origin": {"https://evil.example"}}})
	if code := evil.CloseStatus(); code != 1008 {
		t.Errorf("cross-origin connection: close code %d, want 1008", code)
	}
}

// TestShutdown checks that stopping the server closes the WebSockets with
// 1001 (going away), and that Serve returns cleanly.
func TestShutdown(t *testing.T) {
	eachMode(t, func(t *testing.T, s *server) { testShutdown(t, s) })
}

func testShutdown(t *testing.T, s *server) {
	alice := s.register(t, "alice")
	c := s.connect(t, alice)
	var l List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"x"}`).decode(t, &l)
	subscribe(t, c, listSub("l", l.ID))
	if err := s.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if code := c.CloseStatus(); code != 1001 {
		t.Errorf("close code %d, want 1001", code)
	}
	// The connection's goroutine logs its end once the client has seen it.
	for _, line := range []string{`msg="live: connected" remote=`, `msg="todolist: shutting down"`, `msg="live: disconnected"`} {
		s.logs.waitFor(t, line, 10*time.Second)
	}
}

// TestRestart checks that the app starts again on its database: the
// migration and the triggers' installation are idempotent, the data and
// the credentials survive, and broadcasts still flow.
func TestRestart(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testRestart(t, mode)
		})
	}
}

func testRestart(t *testing.T, mode string) {
	dsn := databases[0].dsn(t)
	s := startMode(t, dsn, mode)
	alice := s.register(t, "alice")
	var l List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"kept"}`).decode(t, &l)
	path := fmt.Sprintf("/api/lists/%d/", l.ID)
	before := s.must(t, 200, "GET", path, alice, "").body
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.app.Close(); err != nil {
		t.Fatal(err)
	}

	s = startMode(t, dsn, mode)
	if got := s.must(t, 200, "GET", path, alice, "").body; got != before {
		t.Fatalf("after restart: got %s, want %s", got, before)
	}
	c := s.connect(t, alice)
	subscribe(t, c, listSub("l", l.ID))
	s.must(t, 200, "PATCH", path, alice, `{"name":"still kept"}`)
	expect(t, c, want{"l", "UPDATED", s.must(t, 200, "GET", path, alice, "").body})
}
