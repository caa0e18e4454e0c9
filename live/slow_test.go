package live_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/restlive/restlive/live"
)

// A client that does not read is closed once its queue fills, and never
// holds up the hub: a client that reads receives every broadcast.
func TestSlowClientIsClosed(t *testing.T) {
	f := newFixture(t, live.Config{SendQueue: 16})
	srv := httptest.NewServer(f.router)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	slow.SetReadLimit(-1)
	if err := slow.Write(ctx, websocket.MessageText, []byte(`{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2, "ack": true}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := slow.Read(ctx); err != nil || !strings.Contains(string(msg), "subscribed") {
		t.Fatalf("subscribe: %s %v", msg, err)
	}
	fast := f.connect(t, "")
	subscribe(t, fast, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})

	// 1,000 frames of 16 KiB overflow the loopback socket's buffers, so the
	// slow client's queue fills.
	const n = 1000
	todo := f.table.create(strings.Repeat("x", 16<<10), 2)
	expect(t, fast.Receive(), map[string]any{"action": "CREATED"})
	for i := range n {
		todo.Done = i%2 == 0
		f.table.update(todo)
		expect(t, fast.Receive(), map[string]any{"action": "UPDATED"})
	}

	received := 0
	for {
		if _, _, err = slow.Read(ctx); err != nil {
			break
		}
		received++
	}
	if ctx.Err() != nil {
		t.Fatal("the slow client was never closed")
	}
	if received >= n+1 {
		t.Fatalf("the slow client received all %d broadcasts: it was not slow enough to test", received)
	}
	if s := websocket.CloseStatus(err); s != -1 && s != websocket.StatusTryAgainLater {
		t.Fatalf("closed with %v, want 1013 (or a dropped connection)", s)
	}
}
