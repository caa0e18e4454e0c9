package live_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

// dial opens a raw WebSocket to the router that the test reads, or not.
func dial(t *testing.T, rt *live.Router) *websocket.Conn {
	t.Helper()
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

// A peer that stops answering pings is taken for dead and closed; one
// that reads (and so answers them) stays.
func TestDeadPeerIsClosed(t *testing.T) {
	logs := &testenv.Logs{}
	f := newFixture(t, live.Config{PingInterval: 20 * time.Millisecond, PongTimeout: 50 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	alive := f.connect(t, "")
	subscribe(t, alive, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	dead := dial(t, f.router) // never read: its pongs never leave
	_ = dead
	eventually(t, "the silent peer is closed", func() bool { return strings.Contains(logs.String(), "reason=ping_timeout") })
	eventually(t, "one connection left", func() bool { return f.router.Stats().Connections == 1 })
	// The live one still works, several intervals later.
	f.table.create("a", 2)
	expect(t, alive.Receive(), map[string]any{"action": "CREATED"})
}

// Shutdown closes every connection with 1001, refuses new ones, and
// returns once they have ended.
func TestShutdown(t *testing.T) {
	f := newFixture(t, live.Config{})
	cs := []*livetest.Communicator{f.connect(t, ""), f.connect(t, "alice")}
	subscribe(t, cs[1], map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.router.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.router.Stats(); st.Connections != 0 || st.Scopes != 0 {
		t.Fatalf("after Shutdown: %+v", st)
	}
	for _, c := range cs {
		if code := c.CloseStatus(); code != 1001 {
			t.Fatalf("close code %d, want 1001", code)
		}
	}
	if code := f.connect(t, "").CloseStatus(); code != 1001 {
		t.Fatalf("a connection after Shutdown: close code %d, want 1001", code)
	}
}

// A Shutdown whose context ends drops the connections that have not
// closed yet, and says so.
func TestShutdownDeadline(t *testing.T) {
	f := newFixture(t, live.Config{})
	ws := dial(t, f.router) // never reads: its close handshake never ends
	eventually(t, "connected", func() bool { return f.router.Stats().Connections == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := f.router.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline's error", err)
	}
	if st := f.router.Stats(); st.Connections != 0 {
		t.Fatalf("%d connections left", st.Connections)
	}
	_ = ws
}

// A client that stops reading is closed as a slow consumer once the bytes
// queued for it pass the limit, and the log says so.
func TestSlowConsumerByBytes(t *testing.T) {
	logs := &testenv.Logs{}
	f := newFixture(t, live.Config{SendQueueBytes: 256 << 10, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	slow := dial(t, f.router)
	ctx := context.Background()
	slow.Write(ctx, websocket.MessageText, []byte(`{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2, "ack": true}`))
	if _, msg, err := slow.Read(ctx); err != nil || !strings.Contains(string(msg), "subscribed") {
		t.Fatalf("subscribe: %s %v", msg, err)
	}
	fast := f.connect(t, "")
	subscribe(t, fast, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	todo := f.table.create(strings.Repeat("x", 64<<10), 2)
	expect(t, fast.Receive(), map[string]any{"action": "CREATED"})
	// Enough 64 KiB broadcasts to fill the socket's buffers and then the
	// 256 KiB queue, unless the client is gone before.
	for i := 0; i < 1000 && f.router.Stats().Connections == 2; i++ {
		todo.Done = !todo.Done
		f.table.update(todo)
		expect(t, fast.Receive(), map[string]any{"action": "UPDATED"})
	}
	eventually(t, "the log says the client was a slow consumer", func() bool {
		return strings.Contains(logs.String(), "reason=slow_consumer")
	})
	eventually(t, "the slow consumer is gone", func() bool { return f.router.Stats().Connections == 1 })
}

// Disconnect closes a user's connections, with 4001 so that their clients
// reconnect and authenticate again, and leaves the others.
func TestDisconnect(t *testing.T) {
	f := newFixture(t, live.Config{})
	a1, a2, b := f.connect(t, "alice"), f.connect(t, "alice"), f.connect(t, "bob")
	for _, c := range []*livetest.Communicator{a1, a2, b} {
		subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	}
	if err := f.router.Disconnect(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*livetest.Communicator{a1, a2} {
		if code := c.CloseStatus(); code != 4001 {
			t.Fatalf("close code %d, want 4001", code)
		}
	}
	f.table.create("a", 2)
	expect(t, b.Receive(), map[string]any{"action": "CREATED"})
}

// tokens is an Authenticate whose valid tokens a test can revoke.
type tokens struct {
	mu      sync.Mutex
	valid   map[string]string // token: user
	expires time.Time
}

func (tk *tokens) authenticate(r *http.Request) (live.Identity, error) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Token ")
	if !ok {
		return live.Identity{}, nil
	}
	user, ok := tk.valid[token]
	if !ok {
		return live.Identity{}, live.Errorf(401, "Invalid token.")
	}
	return live.Identity{User: user, ID: user, Expires: tk.expires}, nil
}

func (tk *tokens) revoke(token string) {
	tk.mu.Lock()
	delete(tk.valid, token)
	tk.mu.Unlock()
}

// A connection whose credentials are revoked is closed at the next
// authentication; one whose credentials hold is not. A bad token is
// refused at once, with its message.
func TestReauthenticate(t *testing.T) {
	tk := &tokens{valid: map[string]string{"t1": "alice", "t2": "bob"}}
	f := newFixture(t, live.Config{Authenticate: tk.authenticate, Reauthenticate: 20 * time.Millisecond})
	if c := livetest.Connect(t, f.router, &livetest.Options{Header: livetest.TokenHeader("Token", "nope")}); c.CloseStatus() != 4003 {
		t.Fatalf("a bad token: close code %d, want 4003", c.CloseStatus())
	}
	alice := livetest.Connect(t, f.router, &livetest.Options{Header: livetest.TokenHeader("Token", "t1")})
	bob := livetest.Connect(t, f.router, &livetest.Options{Header: livetest.TokenHeader("Token", "t2")})
	subscribe(t, alice, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 3})
	subscribe(t, bob, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 3})
	tk.revoke("t1")
	if code := alice.CloseStatus(); code != 4003 {
		t.Fatalf("revoked: close code %d, want 4003", code)
	}
	f.table.create("a", 3)
	expect(t, bob.Receive(), map[string]any{"action": "CREATED"})
}

// A connection lives no longer than its credentials, unless they hold
// when it is authenticated again.
func TestCredentialsExpire(t *testing.T) {
	tk := &tokens{valid: map[string]string{"t1": "alice"}, expires: time.Now().Add(50 * time.Millisecond)}
	f := newFixture(t, live.Config{Authenticate: tk.authenticate})
	c := livetest.Connect(t, f.router, &livetest.Options{Header: livetest.TokenHeader("Token", "t1")})
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 3})
	tk.revoke("t1")
	if code := c.CloseStatus(); code != 4003 {
		t.Fatalf("expired: close code %d, want 4003", code)
	}
}

// A group shared by users (its view's scopes do not vary by user) reads
// and serializes with the request of one subscription that is still
// there: when the one whose request made it leaves, another's request
// makes it anew.
func TestSharedGroupOutlivesItsFirstSubscriber(t *testing.T) {
	f := newFixture(t, live.Config{})
	f.view.shareScopes = true
	todo := f.table.create("a", 3)
	alice, bob := f.connect(t, "alice"), f.connect(t, "bob")
	subscribe(t, alice, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 3})
	subscribe(t, bob, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 3})
	if st := f.router.Stats(); st.Scopes != 1 {
		t.Fatalf("%d scopes, want the one shared", st.Scopes)
	}
	todo.Done = true
	f.table.update(todo)
	expect(t, instance(t, bob.Receive()), map[string]any{"seen_by": "alice"})
	alice.Close()
	eventually(t, "alice gone", func() bool { return f.router.Stats().Connections == 1 })
	todo.Text = "b"
	f.table.update(todo)
	expect(t, instance(t, bob.Receive()), map[string]any{"seen_by": "bob"})
}
