package todoapp

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/restlive/restlive/live/livetest"
)

// resumeFixture is a public list of alice's that bob holds, with a
// snapshot, until he goes away.
type resumeFixture struct {
	s             *server
	alice, bob    *user
	list, private List
	tasks         []Task
	held          *holder
	offset        string
}

func newResumeFixture(t *testing.T, s *server, suffix string) *resumeFixture {
	f := &resumeFixture{s: s, alice: s.register(t, "alice"+suffix), bob: s.register(t, "bob"+suffix)}
	s.must(t, 201, "POST", "/api/lists/", f.alice, `{"name":"shared","public":true}`).decode(t, &f.list)
	s.must(t, 201, "POST", "/api/lists/", f.alice, `{"name":"mine"}`).decode(t, &f.private)
	for i := range 30 {
		var task Task
		s.must(t, 201, "POST", "/api/tasks/", f.alice, fmt.Sprintf(`{"text":"task %d","list":%d}`, i, f.list.ID)).decode(t, &task)
		f.tasks = append(f.tasks, task)
	}
	c := s.connect(t, f.bob)
	f.held = &holder{rid: "tasks"}
	f.held.subscribe(t, c, f.list.ID, "")
	if len(f.held.instances) != 30 {
		t.Fatalf("the snapshot holds %d tasks, want 30", len(f.held.instances))
	}
	c.Close() // bob goes away
	f.offset = f.held.offset
	return f
}

// resume reconnects bob and resumes from his offset (or since), counting
// the frames each task gets.
func (f *resumeFixture) resume(t *testing.T, since string) (frames map[uint]int, c *livetest.Communicator) {
	t.Helper()
	c = f.s.connect(t, f.bob)
	msg := groupSub("tasks", f.list.ID, nil).msg()
	delete(msg, "ack")
	msg["since"] = since
	c.Send(msg)
	frames = map[uint]int{}
	snapshotting := false
	for {
		fr := receive(t, c)
		if fr.Type == "broadcast" {
			frames[idOf(t, fr.Instance)]++
			if fr.Action == "DELETED" && strings.Count(string(fr.Instance), ":") != 1 {
				t.Fatalf("a DELETED tells more than the id: %s", fr)
			}
		}
		if f.held.apply(t, fr, &snapshotting) {
			return frames, c
		}
	}
}

// TestResume: bob holds a list, goes away; 50 writes happen (creates,
// updates, a bulk UPDATE from outside the server, deletes, a move to a list
// he cannot see, one task changed five times); he resumes from his offset
// and receives at most one frame per changed task, none for the others,
// ends equal to GET, and the server says it resumed.
func TestResume(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, db.dsn(t))
			f := newResumeFixture(t, s, "")
			changed := map[uint]bool{}
			patch := func(task Task, body string) {
				s.must(t, 200, "PATCH", fmt.Sprintf("/api/tasks/%d/", task.ID), f.alice, body)
				changed[task.ID] = true
			}
			writes := 0
			for i := range 10 {
				var task Task
				s.must(t, 201, "POST", "/api/tasks/", f.alice, fmt.Sprintf(`{"text":"new %d","list":%d}`, i, f.list.ID)).decode(t, &task)
				changed[task.ID] = true
				writes++
			}
			for _, task := range f.tasks[0:10] {
				patch(task, `{"text":"edited"}`)
				writes++
			}
			ids := []string{}
			for _, task := range f.tasks[10:15] {
				ids = append(ids, fmt.Sprint(task.ID))
				changed[task.ID] = true
			}
			if err := s.app.db.Exec("UPDATE tasks SET done = true WHERE id IN (" + strings.Join(ids, ",") + ")").Error; err != nil {
				t.Fatal(err)
			}
			writes += 5
			for _, task := range f.tasks[15:20] {
				s.must(t, 204, "DELETE", fmt.Sprintf("/api/tasks/%d/", task.ID), f.alice, "")
				changed[task.ID] = true
				writes++
			}
			patch(f.tasks[20], fmt.Sprintf(`{"list":%d}`, f.private.ID)) // out of bob's sight
			writes++
			for i := range 5 {
				patch(f.tasks[21], fmt.Sprintf(`{"text":"version %d"}`, i))
				writes++
			}
			for writes < 50 {
				patch(f.tasks[22+writes%8], fmt.Sprintf(`{"text":"w%d"}`, writes))
				writes++
			}

			frames, _ := f.resume(t, f.offset)
			if f.held.resumed == nil || !*f.held.resumed {
				t.Fatalf("resumed = %v, want true", f.held.resumed)
			}
			for id, n := range frames {
				if n > 1 || !changed[id] {
					t.Errorf("task %d: %d frames (changed: %v)", id, n, changed[id])
				}
			}
			if f.held.snapshots != 1 {
				t.Errorf("%d snapshot frames in all, want the first one only", f.held.snapshots)
			}
			if d := diffHeld(s.listTasks(t, f.bob, f.list.ID), f.held.instances); d != "" {
				t.Fatalf("after resuming, bob holds unlike GET:%s", d)
			}
			if _, ok := f.held.instances[f.tasks[20].ID]; ok {
				t.Fatal("bob still holds the task moved out of his sight")
			}
			t.Logf("%d writes while away, %d changed tasks, %d frames on resume", writes, len(changed), len(frames))
		})
	}
}

// TestResumeFallsBack: a garbage offset, an offset older than what the
// server keeps, and a change of the list itself while away (which the
// server cannot narrow to tasks) each answer a whole snapshot, with
// resumed false, and end equal to GET.
func TestResumeFallsBack(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			s := start(t, db.dsn(t))
			for _, tc := range []struct {
				name  string
				since string
				away  func(f *resumeFixture)
			}{
				{"garbage offset", "not an offset", nil},
				{"another epoch", "zz.1", nil},
				{"offset no longer kept", "", func(f *resumeFixture) {
					// Once the changes are published, the record of them
					// is pruned (by hand here; by age or number in
					// production).
					watcher := s.connect(t, f.alice)
					subscribe(t, watcher, groupSub("w", f.list.ID, nil))
					s.must(t, 200, "PATCH", fmt.Sprintf("/api/tasks/%d/", f.tasks[1].ID), f.alice, `{"text":"changed too"}`)
					if fr := receive(t, watcher); fr.Action != "UPDATED" {
						t.Fatalf("watcher received %s", fr)
					}
					if err := s.app.db.Exec("DELETE FROM restlive_outbox").Error; err != nil {
						t.Fatal(err)
					}
				}},
				{"the list made private and public again", "", func(f *resumeFixture) {
					path := fmt.Sprintf("/api/lists/%d/", f.list.ID)
					s.must(t, 200, "PATCH", path, f.alice, `{"public":false}`)
					s.must(t, 201, "POST", "/api/tasks/", f.alice, fmt.Sprintf(`{"text":"while private","list":%d}`, f.list.ID))
					s.must(t, 200, "PATCH", path, f.alice, `{"public":true}`)
				}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					f := newResumeFixture(t, s, strings.ReplaceAll(tc.name, " ", "_"))
					s.must(t, 200, "PATCH", fmt.Sprintf("/api/tasks/%d/", f.tasks[0].ID), f.alice, `{"text":"changed"}`)
					if tc.away != nil {
						tc.away(f)
					}
					since := tc.since
					if since == "" {
						since = f.offset
					}
					f.resume(t, since)
					if f.held.resumed == nil || *f.held.resumed {
						t.Fatalf("resumed = %v, want false", f.held.resumed)
					}
					if f.held.snapshots != 2 {
						t.Errorf("%d snapshots, want a second one", f.held.snapshots)
					}
					if d := diffHeld(s.listTasks(t, f.bob, f.list.ID), f.held.instances); d != "" {
						t.Fatalf("bob holds unlike GET:%s", d)
					}
				})
			}
		})
	}
}

// TestResumeAsAnotherUser: alice holds the tasks of her private list and
// logs out; resuming her offset anonymously, or as bob, must not keep
// what she saw: the server answers a snapshot of what the new user may
// see (none of it), with resumed false.
func TestResumeAsAnotherUser(t *testing.T) {
	s := start(t, databases[0].dsn(t))
	alice, bob := s.register(t, "alice"), s.register(t, "bob")
	var private List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"mine"}`).decode(t, &private)
	for i := range 3 {
		s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"secret %d","list":%d}`, i, private.ID))
	}
	c := s.connect(t, alice)
	held := &holder{rid: "tasks"}
	held.subscribe(t, c, private.ID, "")
	if len(held.instances) != 3 {
		t.Fatalf("alice's snapshot holds %d tasks, want 3", len(held.instances))
	}
	c.Close()
	for _, who := range []*user{nil, bob} {
		again := &holder{rid: "tasks", instances: maps.Clone(held.instances)}
		again.subscribe(t, s.connect(t, who), private.ID, held.offset)
		if again.resumed == nil || *again.resumed {
			t.Fatalf("%v resumed alice's offset: resumed = %v, want false", who, again.resumed)
		}
		if len(again.instances) != 0 {
			t.Fatalf("%v still holds %d of alice's tasks after resuming", who, len(again.instances))
		}
	}
	// alice herself, on a new connection, resumes.
	back := &holder{rid: "tasks", instances: maps.Clone(held.instances)}
	back.subscribe(t, s.connect(t, alice), private.ID, held.offset)
	if back.resumed == nil || !*back.resumed || len(back.instances) != 3 {
		t.Fatalf("alice's own resume: resumed = %v, %d tasks", back.resumed, len(back.instances))
	}
}
