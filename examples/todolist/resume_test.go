package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestResumeOnAnotherServer: a client holds a list through one server
// process, with a snapshot, and goes away; writes go through a second
// process; the client resumes from its offset on a third, through each
// broker and database. It gets each changed task once, ends equal to GET,
// and the server says it resumed: an offset of one process is understood
// by any other that shares the database.
func TestResumeOnAnotherServer(t *testing.T) {
	var wg sync.WaitGroup
	for _, b := range brokers {
		for _, db := range databases {
			wg.Go(func() {
				t.Run(b.name+"/"+db.name, func(t *testing.T) { testResumeOnAnotherServer(t, b, db.dsn(t)) })
			})
		}
	}
	wg.Wait()
}

func testResumeOnAnotherServer(t *testing.T, b brokerKind, dsn string) {
	broker := b.start(t)
	bin := command(t, raceEnabled)
	var servers []*proc
	for i := range 3 {
		servers = append(servers, startServer(t, fmt.Sprintf("server%d", i), bin, "-db", dsn, b.flag, broker.url))
	}
	r := newREST(t)
	list := setupList(t, r, servers[0])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The client holds the list while its tasks are written, then goes
	// away with the offset of the last broadcast it applied.
	made := make(chan uint, 20)
	go func() {
		defer close(made)
		for i := range 20 {
			var task struct{ ID uint }
			if err := r.do(ctx, "POST", servers[1].url+"/api/tasks/", nil, map[string]any{"text": fmt.Sprint("task ", i), "list": list}, &task); err != nil {
				t.Error(err)
				return
			}
			made <- task.ID
		}
	}()
	held, offset := subscribeHeld(ctx, t, servers[0].ws, list, "", func(h map[uint]string) bool { return len(h) == 20 })
	var ids []uint
	for id := range made {
		ids = append(ids, id)
	}
	changed := map[uint]bool{}
	for i, id := range ids[:8] {
		if err := r.do(ctx, "PATCH", fmt.Sprintf("%s/api/tasks/%d/", servers[1].url, id), nil, map[string]any{"text": fmt.Sprint("edit ", i)}, nil); err != nil {
			t.Fatal(err)
		}
		changed[id] = true
	}
	for _, id := range ids[8:10] {
		if err := r.do(ctx, "DELETE", fmt.Sprintf("%s/api/tasks/%d/", servers[1].url, id), nil, nil, nil); err != nil {
			t.Fatal(err)
		}
		changed[id] = true
	}
	var created struct{ ID uint }
	if err := r.do(ctx, "POST", servers[1].url+"/api/tasks/", nil, map[string]any{"text": "new", "list": list}, &created); err != nil {
		t.Fatal(err)
	}
	changed[created.ID] = true

	frames := map[uint]int{}
	var resumed *bool
	count := func(f wsFrame) {
		if f.Type == "broadcast" {
			frames[idIn(t, f.Instance)]++
		}
		if f.Type == "subscribed" {
			resumed = f.Resumed
		}
	}
	got, _ := subscribeHeldFrom(ctx, t, servers[2].ws, list, offset, held, count, func(h map[uint]string) bool {
		_, ok := h[created.ID]
		return ok && len(h) == 19
	})
	if resumed == nil || !*resumed {
		t.Fatalf("resumed = %v, want true", resumed)
	}
	for id, n := range frames {
		if n > 1 || !changed[id] {
			t.Errorf("task %d: %d frames on resume (changed: %v)", id, n, changed[id])
		}
	}
	var page struct{ Results []json.RawMessage }
	if err := r.do(ctx, "GET", fmt.Sprintf("%s/api/tasks/?list=%d", servers[0].url, list), nil, nil, &page); err != nil {
		t.Fatal(err)
	}
	want := map[uint]string{}
	for _, raw := range page.Results {
		want[idIn(t, raw)] = string(raw)
	}
	if !maps.Equal(want, got) {
		t.Fatalf("after resuming on another server, held %v; GET %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

type wsFrame struct {
	Type      string            `json:"type"`
	Action    string            `json:"action"`
	Instance  json.RawMessage   `json:"instance"`
	Instances []json.RawMessage `json:"instances"`
	Offset    string            `json:"offset"`
	Resumed   *bool             `json:"resumed"`
	Code      int               `json:"code"`
}

func idIn(t *testing.T, raw json.RawMessage) uint {
	var v struct{ ID uint }
	if err := json.Unmarshal(raw, &v); err != nil || v.ID == 0 {
		t.Fatalf("no id in %s", raw)
	}
	return v.ID
}

// subscribeHeld subscribes to the list's tasks with a snapshot and applies
// frames until done holds, then closes the connection; it returns what it
// holds and the offset of the last frame it applied.
func subscribeHeld(ctx context.Context, t *testing.T, url string, list uint, since string, done func(map[uint]string) bool) (map[uint]string, string) {
	return subscribeHeldFrom(ctx, t, url, list, since, map[uint]string{}, nil, done)
}

func subscribeHeldFrom(ctx context.Context, t *testing.T, url string, list uint, since string, held map[uint]string, each func(wsFrame), done func(map[uint]string) bool) (map[uint]string, string) {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1)
	msg := map[string]any{"request_id": 1, "model": "todolist.Task", "group_by": "list_id", "value": list, "snapshot": true}
	if since != "" {
		msg["since"] = since
	}
	b, _ := json.Marshal(msg)
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	offset, live, snapshotting := "", false, false
	var seen []string
	for !live || !done(held) {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (holding %d, since %q); received:\n%s", err, len(held), since, strings.Join(seen, "\n"))
		}
		seen = append(seen, string(data))
		var f wsFrame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		if each != nil {
			each(f)
		}
		switch f.Type {
		case "snapshot":
			if !snapshotting {
				clear(held)
				snapshotting = true
			}
			for _, raw := range f.Instances {
				held[idIn(t, raw)] = string(raw)
			}
		case "subscribed":
			live, snapshotting, offset = true, false, f.Offset
		case "broadcast":
			offset = f.Offset
			if f.Action == "DELETED" {
				delete(held, idIn(t, f.Instance))
			} else {
				held[idIn(t, f.Instance)] = string(f.Instance)
			}
		default:
			t.Fatalf("unexpected frame %s", data)
		}
	}
	return held, offset
}
