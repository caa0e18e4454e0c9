package todoapp

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restlive/restlive/live/livetest"
)

// holder applies what a subscription with a snapshot receives, as a
// client keeps a collection: the snapshot replaces what it holds, CREATED
// and UPDATED set an instance, DELETED removes it.
type holder struct {
	rid       string
	instances map[uint]string // by id, the instance's JSON
	offset    string
	snapshots int // snapshot frames received
	resumed   *bool
}

// apply applies f and reports whether it was the subscription's
// "subscribed" frame.
func (h *holder) apply(t *testing.T, f frame, snapshotting *bool) bool {
	t.Helper()
	if f.id() != h.rid {
		t.Fatalf("frame of another subscription: %s", f)
	}
	switch f.Type {
	case "snapshot":
		if !*snapshotting {
			h.instances = map[uint]string{}
			*snapshotting = true
		}
		h.snapshots++
		var in []json.RawMessage
		if err := json.Unmarshal(f.Instances, &in); err != nil {
			t.Fatal(err)
		}
		for _, raw := range in {
			h.instances[idOf(t, raw)] = string(raw)
		}
	case "subscribed":
		*snapshotting = false
		h.offset = f.Offset
		h.resumed = f.Resumed
		return true
	case "broadcast":
		if f.Offset == "" {
			t.Fatalf("a broadcast of a subscription with a snapshot carries no offset: %s", f)
		}
		h.offset = f.Offset
		id := idOf(t, f.Instance)
		if f.Action == "DELETED" {
			delete(h.instances, id)
		} else {
			h.instances[id] = string(f.Instance)
		}
	default:
		t.Fatalf("unexpected %s", f)
	}
	return false
}

// subscribeSnapshot subscribes c with a snapshot (and since, if not
// empty) and applies frames up to "subscribed".
func (h *holder) subscribe(t *testing.T, c *livetest.Communicator, list uint, since string) {
	t.Helper()
	msg := groupSub(h.rid, list, nil).msg()
	delete(msg, "ack")
	msg["snapshot"] = true
	if since != "" {
		msg["since"] = since
	}
	c.Send(msg)
	snapshotting := false
	for !h.apply(t, receive(t, c), &snapshotting) {
	}
}

func idOf(t *testing.T, raw json.RawMessage) uint {
	t.Helper()
	var v struct{ ID uint }
	if err := json.Unmarshal(raw, &v); err != nil || v.ID == 0 {
		t.Fatalf("no id in %s", raw)
	}
	return v.ID
}

// listTasks returns what GET of the list's tasks answers, by id.
func (s *server) listTasks(t *testing.T, u *user, list uint) map[uint]string {
	t.Helper()
	var page struct{ Results []json.RawMessage }
	s.must(t, 200, "GET", fmt.Sprintf("/api/tasks/?list=%d&limit=1000", list), u, "").decode(t, &page)
	out := map[uint]string{}
	for _, raw := range page.Results {
		out[idOf(t, raw)] = string(raw)
	}
	return out
}

func diffHeld(want, got map[uint]string) string {
	var b strings.Builder
	for _, id := range slices.Sorted(maps.Keys(want)) {
		if got[id] != want[id] {
			fmt.Fprintf(&b, "\n\t%d: holds %q, GET %q", id, got[id], want[id])
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			fmt.Fprintf(&b, "\n\t%d: holds %q, GET none", id, got[id])
		}
	}
	return b.String()
}

// TestSnapshotConsistency subscribes clients with a snapshot at random
// moments while writers create, update, move and delete a list's tasks as
// fast as they can: each client's snapshot and broadcasts, applied in
// order, end equal to GET of the list.
func TestSnapshotConsistency(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			testSnapshotConsistency(t, start(t, db.dsn(t)))
		})
	}
}

func testSnapshotConsistency(t *testing.T, s *server) {
	alice := s.register(t, "alice")
	var list, away List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"watched","public":true}`).decode(t, &list)
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"away","public":true}`).decode(t, &away)
	for i := range 20 {
		s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"seed %d","list":%d}`, i, list.ID))
	}

	const writers, writes, clients = 3, 60, 12
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range writes {
				var tasks []uint
				for id := range s.listTasks(t, alice, list.ID) {
					tasks = append(tasks, id)
				}
				slices.Sort(tasks)
				pick := func() uint { return tasks[rnd.IntN(len(tasks))] }
				switch op := rnd.IntN(10); {
				case op <= 2 || len(tasks) == 0:
					s.do(t, "POST", "/api/tasks/", alice.header(), fmt.Sprintf(`{"text":"w%d %d","list":%d}`, w, i, list.ID))
				case op <= 4:
					s.do(t, "PATCH", fmt.Sprintf("/api/tasks/%d/", pick()), alice.header(), fmt.Sprintf(`{"text":"edit w%d %d"}`, w, i))
				case op == 5:
					s.do(t, "PATCH", fmt.Sprintf("/api/tasks/%d/", pick()), alice.header(), `{"done":true}`)
				case op == 6:
					s.do(t, "PATCH", fmt.Sprintf("/api/tasks/%d/", pick()), alice.header(), fmt.Sprintf(`{"list":%d}`, away.ID))
				case op == 7:
					s.do(t, "DELETE", fmt.Sprintf("/api/tasks/%d/", pick()), alice.header(), "")
				case op == 8:
					// A bulk write from outside the API: every task of the
					// list at once.
					if err := s.app.db.Exec("UPDATE tasks SET done = NOT done WHERE list_id = ?", list.ID).Error; err != nil {
						t.Error(err)
					}
				default:
					// A task moved into the list, by raw SQL.
					if err := s.app.db.Exec("UPDATE tasks SET list_id = ? WHERE id = (SELECT MIN(id) FROM tasks WHERE list_id = ?)", list.ID, away.ID).Error; err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	holders := make([]*holder, clients)
	conns := make([]*livetest.Communicator, clients)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range clients {
		time.Sleep(time.Duration(rnd.IntN(40)) * time.Millisecond) // subscribe at random moments of the writes
		conns[i] = s.connect(t, nil)
		holders[i] = &holder{rid: "tasks"}
		holders[i].subscribe(t, conns[i], list.ID, "")
	}
	// The clients apply broadcasts as they come, until a last write that
	// comes after all the writers'.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	<-done
	var last Task
	s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"last","list":%d}`, list.ID)).decode(t, &last)
	want := s.listTasks(t, nil, list.ID)
	for i, h := range holders {
		snapshotting := false
		for !strings.Contains(h.instances[last.ID], `"last"`) {
			h.apply(t, receive(t, conns[i]), &snapshotting)
		}
		if d := diffHeld(want, h.instances); d != "" {
			t.Errorf("client %d ends unlike GET:%s", i, d)
		}
	}
	t.Logf("%d clients, %d tasks held at the end", clients, len(want))
}
