package gormlive_test

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/glebarez/sqlite"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/livetest"
)

// FuzzSubscribe drives subscribe and unsubscribe frames with random
// models, groups, values, arguments and query parameters through a router
// serving a gormlive view on SQLite. Every frame is answered, by an ack or
// by an error with one of the protocol's codes (never a 500: values are
// parsed by their column's type before any query), and the connection
// stays open.
func FuzzSubscribe(f *testing.F) {
	for _, seed := range []struct {
		model, groupBy, value, key, arg string
		typed, unsubscribe, snapshot    bool
	}{
		{"todolist.Todo", "list_id", "1", "search", "milk", false, false, false},
		{"todolist.Todo", "pk", "01", "list", "1", false, false, true},
		{"todolist.Todo", "done", "true", "list", "x", false, false, false},
		{"todolist.Todo", "list_id", "1 OR 1=1", "search", "'; DROP TABLE todos; --", false, false, false},
		{"todolist.Todo", "", "", "search", "%", true, false, false},
		{"todolist.Todo", "text", "x", "", "", false, true, false},
		{"nope.Nope", "pk", "1", "", "", true, false, true},
		{"todolist.Todo", "list_id", "99999999999999999999", "since", "e.1", false, false, true},
	} {
		f.Add(seed.model, seed.groupBy, seed.value, seed.key, seed.arg, seed.typed, seed.unsubscribe, seed.snapshot)
	}
	db := open(f, sqlite.Open(filepath.Join(f.TempDir(), "fuzz.db")))
	v := todoView(db)
	rt := live.NewRouter(live.Config{Logger: quietLogger(), MessageRate: -1})
	rt.Register(v)
	f.Cleanup(func() { rt.Close() })

	f.Fuzz(func(t *testing.T, model, groupBy, value, key, arg string, typed, unsubscribe, snapshot bool) {
		c := livetest.Connect(t, rt, nil)
		frame := map[string]any{"model": model, "query_params": map[string]any{key: arg}, "arguments": map[string]any{key: arg}, "ack": true}
		id := "r"
		switch {
		case typed && unsubscribe:
			frame = map[string]any{"type": "unsubscribe", "id": id}
		case typed:
			frame["type"], frame["id"], frame["action"], frame["lookup_by"] = "subscribe", id, "list", value
			if groupBy == "pk" {
				frame["action"] = "retrieve"
			}
		case unsubscribe:
			frame = map[string]any{"request_id": id, "unsubscribe": true}
		default:
			frame["request_id"], frame["group_by"], frame["value"] = id, groupBy, value
		}
		if snapshot {
			frame["snapshot"] = true
			frame["since"] = arg
		}
		for range 2 { // the second time, a duplicate or a fresh subscribe
			c.Send(frame)
			m := c.Receive()
			switch m["type"] {
			case "subscribed", "unsubscribed":
			case "snapshot":
				for m["type"] == "snapshot" {
					m = c.Receive()
				}
				if m["type"] != "subscribed" {
					t.Fatalf("%v: after the snapshot, %v", frame, m)
				}
			case "error":
				switch m["code"] {
				case 400.0, 403.0, 404.0, 413.0, 429.0:
				default:
					b, _ := json.Marshal(frame)
					t.Fatalf("%s: answered %v", b, m)
				}
			default:
				t.Fatalf("%v: answered %v", frame, m)
			}
		}
		c.Send(map[string]any{"request_id": "ping", "unsubscribe": true})
		if m := c.Receive(); m["code"] != 404.0 {
			t.Fatalf("after %v, the connection answers %v", frame, m)
		}
		c.Close()
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
