package todoapp

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restlive/restlive/live/livetest"
)

// TestAttacks runs, against the example's views in-process, what a
// hostile client tried when the server had no bounds (issue 10), and
// checks that each costs the server less than 10 MB of retained memory
// and leaves another subscriber's broadcasts flowing. go test -v shows
// the figures.
func TestAttacks(t *testing.T) {
	s := startSQLite(t)
	alice := s.register(t, "alice")
	// A public list of 2,000 tasks, about 500 KB of JSON, and a list
	// another user watches.
	var big, other List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"big","public":true}`).decode(t, &big)
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"other","public":true}`).decode(t, &other)
	tasks := make([]Task, 2000)
	for i := range tasks {
		tasks[i] = Task{Text: fmt.Sprintf("task %d %s", i, strings.Repeat("x", 200)), ListID: big.ID}
	}
	if err := s.app.db.CreateInBatches(tasks, 200).Error; err != nil {
		t.Fatal(err)
	}
	watcher := s.connect(t, nil)
	subscribe(t, watcher, groupSub("w", other.ID, nil))
	flowing := func(attack string) {
		t.Helper()
		var task Task
		s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"after %s","list":%d}`, attack, other.ID)).decode(t, &task)
		f := receive(t, watcher)
		if f.Action != "CREATED" || !strings.Contains(string(f.Instance), "after "+attack) {
			t.Fatalf("after %s, the watcher received %s", attack, f)
		}
	}
	router := s.app.router
	measure := func(attack string, run func() string) {
		t.Helper()
		before := heap()
		effect := run()
		grown := heap() - before
		st := router.Stats()
		t.Logf("%s: %s; heap %+.1f MB; server holds %d connections, %d subscriptions, %d scopes, %d instances",
			attack, effect, float64(grown)/(1<<20), st.Connections, st.Subscriptions, st.Scopes, st.Instances)
		if grown > 10<<20 {
			t.Errorf("%s: the server's heap grew by %.1f MB, want less than 10", attack, float64(grown)/(1<<20))
		}
		flowing(attack)
	}

	attacker := s.connect(t, nil)
	measure("200 subscribes to the big list with a query parameter the view does not read", func() string {
		for i := range 200 {
			subscribe(t, attacker, groupSub(fmt.Sprint("n", i), big.ID, map[string]string{"nonce": fmt.Sprint(i)}))
		}
		if st := router.Stats(); st.Scopes > 3 || st.Instances > 2000+1 {
			t.Errorf("200 subscriptions to one scope hold %d scopes and %d instances", st.Scopes, st.Instances)
		}
		return "all share one scope"
	})
	measure("a rename of the big list (a dependency change) under those subscriptions", func() string {
		start := time.Now()
		s.must(t, 200, "PATCH", fmt.Sprintf("/api/lists/%d/", big.ID), alice, `{"name":"renamed"}`)
		flowing("the rename")
		return fmt.Sprintf("the watcher's next broadcast came %v after the rename", time.Since(start).Round(time.Millisecond))
	})
	measure("distinct filters, each a scope of its own", func() string {
		refused := 0
		for i := range 300 {
			attacker.Send(groupSub(fmt.Sprint("q", i), big.ID, map[string]string{"search": fmt.Sprint("task ", i)}).msg())
			if f := receive(t, attacker); f.Type == "error" {
				refused++
				if f.Code != 429 {
					t.Fatalf("refused with %s", f)
				}
			}
		}
		if refused == 0 {
			t.Errorf("300 distinct scopes on one connection, none refused")
		}
		return fmt.Sprintf("%d of 300 refused with 429 (scopes or instances per connection)", refused)
	})
	measure("1,000 subscribes with a 60 KB request id", func() string {
		long := strings.Repeat("x", 60<<10)
		codes := map[int]int{}
		subs := router.Stats().Subscriptions
		for i := range 1000 {
			attacker.Send(fmt.Sprintf(`{"request_id": "%d%s", "model": "todolist.Task", "group_by": "list_id", "value": %d}`, i, long, big.ID))
			if f := receive(t, attacker); f.Type == "error" {
				codes[f.Code]++
			}
		}
		if codes[400]+codes[429] != 1000 || router.Stats().Subscriptions != subs {
			t.Errorf("answers %v, want 1,000 refusals", codes)
		}
		return fmt.Sprintf("all refused: %d with 400 (id too long), %d with 429 (too fast)", codes[400], codes[429])
	})
	measure("2,000 frames of {", func() string {
		flood := s.connect(t, nil)
		for range 2000 {
			flood.Send("{")
		}
		codes := map[float64]int{}
		for range 2000 {
			codes[flood.Receive()["code"].(float64)]++
		}
		if codes[429] == 0 {
			t.Errorf("2,000 malformed frames, none answered 429: %v", codes)
		}
		return fmt.Sprintf("answered %d × 400, %d × 429", codes[400], codes[429])
	})
	measure("2,000 anonymous connections from one address", func() string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		refused := 0
		var open []*websocket.Conn
		for range 2000 {
			ws, _, err := websocket.Dial(ctx, s.ws, nil)
			if err != nil {
				t.Fatal(err)
			}
			open = append(open, ws)
		}
		// Those beyond the bound are closed by the server with 1013.
		for _, ws := range open[len(open)-1000:] {
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			_, _, err := ws.Read(rctx)
			rcancel()
			if websocket.CloseStatus(err) == websocket.StatusTryAgainLater {
				refused++
			}
		}
		st := router.Stats()
		for _, ws := range open {
			ws.CloseNow()
		}
		if refused != 1000 || st.Connections > 256+3 {
			t.Errorf("%d of the last 1,000 refused, %d connections open", refused, st.Connections)
		}
		return fmt.Sprintf("%d accepted (the limit per address), the others closed with 1013", st.Connections-3)
	})
}

// heap returns the bytes the heap holds after a collection.
func heap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// Logging out ends the user's WebSockets at once: opened before, with the
// session cookie or the token, none receives private data after.
func TestLogoutEndsSockets(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, db.dsn(t))
			alice := s.register(t, "alice")
			var priv List
			s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"secret"}`).decode(t, &priv)
			byCookie := livetest.ConnectURL(t, s.ws, &livetest.Options{Header: livetest.CookieHeader(alice.session), Timeout: 10 * time.Second})
			byToken := s.connect(t, alice)
			for _, c := range []*livetest.Communicator{byCookie, byToken} {
				subscribe(t, c, groupSub("tasks", priv.ID, nil))
			}
			start := time.Now()
			s.do(t, "POST", "/api/auth/logout", http.Header{"Cookie": {alice.session.Name + "=" + alice.session.Value}}, "{}")
			for _, c := range []*livetest.Communicator{byCookie, byToken} {
				if code := c.CloseStatus(); code != 4001 {
					t.Fatalf("close code %d, want 4001", code)
				}
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("the sockets closed %v after the logout, want within a second", d)
			}
			// The token is still valid (only the session logged out): a
			// socket opened with it again sees the private list; one with
			// the revoked cookie is anonymous and does not.
			again := s.connect(t, alice)
			subscribe(t, again, groupSub("tasks", priv.ID, nil))
			anon := livetest.ConnectURL(t, s.ws, &livetest.Options{Header: livetest.CookieHeader(alice.session), Timeout: 10 * time.Second})
			subscribe(t, anon, groupSub("tasks", priv.ID, nil))
			s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"private","list":%d}`, priv.ID))
			if f := receive(t, again); f.Action != "CREATED" {
				t.Fatalf("the token's new socket received %s", f)
			}
			anon.ReceiveNothing()
		})
	}
}

// The HTTP server's timeouts cut a request that is too slow to arrive,
// but not a WebSocket, however long it lives.
func TestRequestTimeouts(t *testing.T) {
	// A second: the register and login below must fit in it on a loaded
	// machine (a login under -race took 800 ms while other packages' tests
	// ran), and the slow request below is cut all the same.
	s := startWith(t, filepath.Join(t.TempDir(), "todolist.db"), func(c *Config) { c.RequestTimeout = time.Second })
	alice := s.register(t, "alice")
	var l List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"l","public":true}`).decode(t, &l)
	c := s.connect(t, nil)
	subscribe(t, c, groupSub("tasks", l.ID, nil))

	// A request whose body never ends is cut.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/tasks/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(conn); err != nil {
		t.Fatalf("the slow request was not cut: %v", err)
	}
	// The WebSocket, older than several timeouts, still gets broadcasts.
	s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"late","list":%d}`, l.ID))
	if f := receive(t, c); f.Action != "CREATED" {
		t.Fatalf("received %s", f)
	}
}

// Logins and registrations are bounded per address and per username:
// each costs a bcrypt. Beyond the bound they are answered 429 with
// Retry-After.
func TestLoginIsRateLimited(t *testing.T) {
	s := startWith(t, filepath.Join(t.TempDir(), "todolist.db"), func(c *Config) { c.LoginRate = 0.5 })
	s.register(t, "alice") // one registration and one login
	codes := map[int]int{}
	var retry string
	for i := range 30 {
		res := s.do(t, "POST", "/api/auth/login", nil, fmt.Sprintf(`{"username":"alice","password":"wrong %d"}`, i))
		codes[res.code]++
		if res.code == 429 {
			retry = res.header.Get("Retry-After")
		}
	}
	// alice's bucket holds 5 tries, of which login spent one.
	if codes[400] != 4 || codes[429] != 26 || retry == "" || retry == "0" {
		t.Fatalf("30 wrong logins of one user: %v, Retry-After %q; want 4 × 400 then 429 with a delay", codes, retry)
	}
	// Other usernames from the same address: its bucket of 10 (two spent
	// registering and logging in, six by alice's tries) runs out too.
	codes = map[int]int{}
	for i := range 10 {
		codes[s.do(t, "POST", "/api/auth/login", nil, fmt.Sprintf(`{"username":"user%d","password":"x"}`, i)).code]++
	}
	if codes[429] == 0 {
		t.Fatalf("logins from one address: %v, want some 429", codes)
	}
}
