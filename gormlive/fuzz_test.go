package gormlive_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/gormlive"

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
	v := fuzzView(f)
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

// FuzzTodo is the model FuzzSubscribe serves.
type FuzzTodo struct {
	ID     int64  `json:"id"`
	Text   string `json:"text"`
	Done   bool   `json:"done"`
	ListID int64  `json:"list_id" gorm:"index"`
}

// fuzzView is a view with every kind of input a subscription may carry:
// group fields of two types, a filter (search) and an argument (list)
// that Query refuses when it is not a number.
func fuzzView(tb testing.TB) *gormlive.View[FuzzTodo] {
	db, err := gorm.Open(sqlite.Open(filepath.Join(tb.TempDir(), "fuzz.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, _ := db.DB()
	tb.Cleanup(func() { sqlDB.Close() })
	if err := db.AutoMigrate(&FuzzTodo{}); err != nil {
		tb.Fatal(err)
	}
	for i := range 20 {
		db.Create(&FuzzTodo{Text: fmt.Sprint("buy milk ", i), Done: i%3 == 0, ListID: int64(i % 4)})
	}
	return &gormlive.View[FuzzTodo]{
		Label: "todolist.Todo", DB: db, GroupFields: []string{"list_id", "done"}, ListAll: true,
		QueryParams: []string{"search"}, Args: []string{"list"},
		Query: func(_ context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error) {
			if s := req.Query.Get("search"); s != "" {
				db = db.Where("text LIKE ?", "%"+s+"%")
			}
			if l, ok := req.Args["list"]; ok {
				n, err := strconv.ParseInt(l, 10, 64)
				if err != nil {
					return nil, live.Errorf(400, "list: %q is not a number", l)
				}
				db = db.Where("list_id = ?", n)
			}
			return db, nil
		},
	}
}
