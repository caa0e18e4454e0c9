package todoapp

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/restlive/restlive/live/livetest"
)

var seed = flag.Uint64("seed", 20261129, "seed of TestRandomOperations")

// randomOps is how many random operations TestRandomOperations performs.
const randomOps = 200

// TestRandomOperations has three users (and an anonymous visitor) perform
// random operations through the REST API (lists created, renamed, made
// public or private and deleted; tasks added, edited, ticked, moved and
// deleted, by whoever, allowed or not), while each of them is subscribed
// to every list and every list's tasks (plain, ?done=true and
// ?search=milk) seen so far. A model of the app's rules predicts every
// answer and every broadcast, which the test compares with what arrives:
// no one ever receives anything about a list or task they cannot see at
// that moment, and everyone receives exactly what the protocol promises.
//
// After each operation the test waits for the broadcasts it predicts, then
// a write to a "fence" list everyone watches marks the end of what else
// the operation might have caused.
//
// It runs against each mode of the app (Config.Views), and then compares
// what each answered and broadcast: the modes must agree byte for byte.
func TestRandomOperations(t *testing.T) {
	for _, db := range databases {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			transcripts := make([][]string, len(modes))
			for i, mode := range modes {
				t.Run(mode, func(t *testing.T) {
					transcripts[i] = testRandomOperations(t, startMode(t, db.dsn(t), mode))
				})
			}
			if t.Failed() || slices.ContainsFunc(transcripts, func(s []string) bool { return s == nil }) {
				return // failed, or skipped (no PostgreSQL)
			}
			for i := range transcripts[1:] {
				compareTranscripts(t, modes[0], modes[i+1], transcripts[0], transcripts[i+1])
			}
		})
	}
}

// compareTranscripts fails at the first line where a and b differ.
func compareTranscripts(t *testing.T, nameA, nameB string, a, b []string) {
	t.Helper()
	for i := range max(len(a), len(b)) {
		var la, lb string
		if i < len(a) {
			la = a[i]
		}
		if i < len(b) {
			lb = b[i]
		}
		if la != lb {
			t.Fatalf("the modes disagree at line %d of %d:\n%s: %s\n%s: %s", i+1, len(a), nameA, la, nameB, lb)
		}
	}
	if len(a) < randomOps {
		t.Fatalf("transcripts of %d lines: the comparison compared too little", len(a))
	}
}

// testRandomOperations runs the operations and returns what the server
// answered and broadcast, in order.
func testRandomOperations(t *testing.T, s *server) []string {
	t.Logf("seed %d (go test -run TestRandomOperations -seed N to try another)", *seed)
	w := &world{
		t: t, s: s, rnd: rand.New(rand.NewPCG(*seed, 0)),
		lists: map[uint]*List{}, tasks: map[uint]*Task{},
		deletedLists: map[uint]bool{}, deletedTasks: map[uint]bool{},
	}
	for i, name := range []string{"ann", "ben", "cat"} {
		u := s.register(t, name)
		w.viewers = append(w.viewers, &viewer{name: name, u: u, c: s.connect(t, u), index: i})
	}
	w.viewers = append(w.viewers, &viewer{name: "anonymous", c: s.connect(t, nil), index: 3})
	for _, v := range w.viewers {
		v.listSubs, v.refused, v.grouped = map[uint]*msub{}, map[uint]bool{}, map[uint]bool{}
	}
	// The fence: a public list of ann's, which the operations leave alone.
	s.must(t, 201, "POST", "/api/lists/", w.viewers[0].u, `{"name":"fence","public":true}`).decode(t, &w.fenceList)
	for _, v := range w.viewers {
		subscribe(t, v.c, listSub("fence", w.fenceList.ID))
	}

	counts := map[string]int{}
	for step := range randomOps {
		w.subscribeAll()
		w.expected = map[*viewer][]string{}
		op := w.operate()
		counts[op]++
		w.awaitBroadcasts(step, op)
	}
	for _, v := range w.viewers {
		v.c.ReceiveNothing()
	}
	t.Logf("operations: %v; broadcasts checked: %d; subscriptions: %d", counts, w.checked, w.subscriptions)
	return w.transcript
}

// world is the model: the lists and tasks as they are, and what each
// viewer's subscriptions hold as the server's hub sees it.
type world struct {
	t       *testing.T
	s       *server
	rnd     *rand.Rand
	viewers []*viewer
	// fenceList is the list whose renames fence operations off.
	fenceList List

	lists        map[uint]*List // the fence excepted
	listIDs      []uint         // every list ever created, the deleted ones too
	tasks        map[uint]*Task
	taskIDs      []uint
	deletedLists map[uint]bool
	deletedTasks map[uint]bool

	// expected are the broadcasts the current operation must cause, per
	// viewer, as "request_id action instance".
	expected      map[*viewer][]string
	checked       int
	subscriptions int
	fences        int
	// transcript is every answer and broadcast, in order.
	transcript []string
}

// viewer is one of the users, or the anonymous visitor, with a WebSocket.
type viewer struct {
	name  string
	u     *user // nil: anonymous
	index int
	c     *livetest.Communicator

	listSubs map[uint]*msub // by list id
	refused  map[uint]bool  // lists whose subscription was refused (invisible then)
	grouped  map[uint]bool  // lists whose task groups are subscribed to
	taskSubs []*msub
}

// msub is a subscription as the hub sees it: its members are the
// instances it has told the subscriber of and not yet deleted.
type msub struct {
	id      string
	list    uint   // the list, or the group's list_id
	filter  string // "", "done" or "milk" for task groups
	members map[uint]bool
}

func (w *world) seesList(v *viewer, id uint) bool {
	l := w.lists[id]
	return l != nil && (l.Public || v.u != nil && l.OwnerID == v.u.id)
}

func (w *world) seesTask(v *viewer, id uint) bool {
	task := w.tasks[id]
	return task != nil && w.seesList(v, task.ListID)
}

// inScope reports whether task id belongs to the task group s of v.
func (w *world) inScope(v *viewer, s *msub, id uint) bool {
	if !w.seesTask(v, id) {
		return false
	}
	task := w.tasks[id]
	switch {
	case task.ListID != s.list:
		return false
	case s.filter == "done":
		return task.Done
	case s.filter == "milk":
		return strings.Contains(strings.ToLower(task.Text), "milk")
	}
	return true
}

func encode(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tell records what subscription s of v must receive about instance pk,
// in its scope now or not, and updates its members.
func (w *world) tell(v *viewer, s *msub, pk uint, now bool, data func() string) {
	was := s.members[pk]
	var action, instance string
	switch {
	case now && was:
		action, instance = "UPDATED", data()
	case now:
		action, instance = "CREATED", data()
		s.members[pk] = true
	case was:
		action, instance = "DELETED", deleted(pk)
		delete(s.members, pk)
	default:
		return
	}
	w.expected[v] = append(w.expected[v], want{s.id, action, instance}.String())
}

// listChanged predicts the broadcasts of a committed write of list id: of
// the list itself, and of the tasks that entered or left the task groups
// of the list as who may see it changed (the task view depends on lists).
func (w *world) listChanged(id uint) {
	for _, v := range w.viewers {
		if s := v.listSubs[id]; s != nil {
			w.tell(v, s, id, w.seesList(v, id), func() string { return encode(w.t, w.lists[id]) })
		}
		for _, s := range v.taskSubs {
			if s.list != id {
				continue
			}
			for _, tid := range w.taskIDs {
				if now := w.inScope(v, s, tid); now != s.members[tid] {
					w.tell(v, s, tid, now, func() string { return encode(w.t, w.tasks[tid]) })
				}
			}
		}
	}
}

// taskChanged predicts the broadcasts of a committed write of task id,
// whose list_id was before and is after (0 for none): it concerns the
// groups of either list, and those that hold it.
func (w *world) taskChanged(id, before, after uint) {
	for _, v := range w.viewers {
		for _, s := range v.taskSubs {
			if s.list == before || s.list == after || s.members[id] {
				w.tell(v, s, id, w.inScope(v, s, id), func() string { return encode(w.t, w.tasks[id]) })
			}
		}
	}
}

// subscribeAll subscribes each viewer to the lists and task groups it has
// not subscribed to yet: a list when it can see it (once, while it
// cannot, to check that it is refused), the task groups of every list.
func (w *world) subscribeAll() {
	t := w.t
	for _, v := range w.viewers {
		// answers are the answers due, in order: "subscribed" or "404".
		type answer struct{ rid, typ string }
		var answers []answer
		for _, id := range w.listIDs {
			if w.deletedLists[id] {
				continue
			}
			if v.listSubs[id] == nil {
				rid := fmt.Sprintf("list %d", id)
				if w.seesList(v, id) {
					v.c.Send(listSub(rid, id).msg())
					v.listSubs[id] = &msub{id: rid, list: id, members: map[uint]bool{id: true}}
					answers = append(answers, answer{rid, "subscribed"})
				} else if !v.refused[id] {
					v.c.Send(listSub(rid, id).msg())
					v.refused[id] = true
					answers = append(answers, answer{rid, "error"})
				}
			}
			if !v.grouped[id] {
				v.grouped[id] = true
				for _, filter := range []string{"", "done", "milk"} {
					rid := strings.TrimSpace(fmt.Sprintf("tasks %d %s", id, filter))
					s := &msub{id: rid, list: id, filter: filter, members: map[uint]bool{}}
					for _, tid := range w.taskIDs {
						if w.inScope(v, s, tid) {
							s.members[tid] = true
						}
					}
					var query map[string]string
					switch filter {
					case "done":
						query = map[string]string{"done": "true"}
					case "milk":
						query = map[string]string{"search": "milk"}
					}
					v.c.Send(groupSub(rid, id, query).msg())
					v.taskSubs = append(v.taskSubs, s)
					answers = append(answers, answer{rid, "subscribed"})
				}
			}
		}
		// The connection answers its frames in order.
		for _, a := range answers {
			f := receive(t, v.c)
			if f.Type != a.typ || f.id() != a.rid || a.typ == "error" && f.Code != 404 {
				t.Fatalf("%s: subscribe %q: got %s, want %s", v.name, a.rid, f, a.typ)
			}
			if a.typ == "subscribed" {
				w.subscriptions++
			}
		}
	}
}

// pickList returns a list id: almost always one that exists.
func (w *world) pickList() uint {
	return w.listIDs[w.rnd.IntN(len(w.listIDs))]
}

func (w *world) pickTask() uint {
	return w.taskIDs[w.rnd.IntN(len(w.taskIDs))]
}

// pickActor returns who performs an operation: usually one of the users.
func (w *world) pickActor() *viewer {
	if w.rnd.IntN(7) == 0 {
		return w.viewers[3]
	}
	return w.viewers[w.rnd.IntN(3)]
}

var (
	listNames = []string{"groceries", "chores", "work", "weekend", "books"}
	taskTexts = []string{"buy milk", "Milkshake", "bread", "eggs", "call mom", "OAT MILK", "fix the bike"}
)

// operate performs one random operation, checks its answer against the
// model, and records the broadcasts it must cause. It returns its name.
func (w *world) operate() string {
	t := w.t
	actor := w.pickActor()
	ops := []struct {
		name   string
		weight int
		run    func(actor *viewer)
	}{
		{"create list", 12, w.createList},
		{"rename list", 8, func(a *viewer) { w.changeList(a, "name") }},
		{"toggle public", 14, func(a *viewer) { w.changeList(a, "public") }},
		{"delete list", 4, w.deleteList},
		{"create task", 22, w.createTask},
		{"edit task", 10, func(a *viewer) { w.changeTask(a, "text") }},
		{"toggle done", 14, func(a *viewer) { w.changeTask(a, "done") }},
		{"move task", 10, func(a *viewer) { w.changeTask(a, "list") }},
		{"delete task", 6, w.deleteTask},
	}
	if len(w.listIDs) == 0 {
		w.createList(w.viewers[w.rnd.IntN(3)])
		return "create list"
	}
	if len(w.taskIDs) == 0 {
		ops = ops[:5]
	}
	total := 0
	for _, op := range ops {
		total += op.weight
	}
	n := w.rnd.IntN(total)
	for _, op := range ops {
		if n -= op.weight; n < 0 {
			op.run(actor)
			return op.name
		}
	}
	t.Fatal("unreachable")
	return ""
}

// request performs an operation as actor; it must answer code, and, if
// want is not empty, exactly that body.
func (w *world) request(actor *viewer, code int, method, path, body, want string) response {
	w.t.Helper()
	res := w.s.must(w.t, code, method, path, actor.u, body)
	w.transcript = append(w.transcript, fmt.Sprintf("%s %s %s as %s: %d %s", method, path, body, actor.name, res.code, res.body))
	if want != "" && res.body != want {
		w.t.Fatalf("%s %s %s as %s: got %s, want %s", method, path, body, actor.name, res.body, want)
	}
	return res
}

func (w *world) createList(actor *viewer) {
	public := w.rnd.IntN(2) == 0
	body := encode(w.t, map[string]any{"name": listNames[w.rnd.IntN(len(listNames))], "public": public})
	if actor.u == nil {
		w.request(actor, 401, "POST", "/api/lists/", body, "")
		return
	}
	var l List
	res := w.request(actor, 201, "POST", "/api/lists/", body, "")
	res.decode(w.t, &l)
	if l.OwnerID != actor.u.id || l.Public != public {
		w.t.Fatalf("created %s as %s", res.body, actor.name)
	}
	w.lists[l.ID] = &l
	w.listIDs = append(w.listIDs, l.ID)
	w.listChanged(l.ID)
}

// listWriteCode is the answer to actor's write of list id.
func (w *world) listWriteCode(actor *viewer, id uint, ok int) int {
	switch {
	case !w.seesList(actor, id):
		return 404
	case actor.u == nil:
		return 401
	case w.lists[id].OwnerID != actor.u.id:
		return 403
	}
	return ok
}

func (w *world) changeList(actor *viewer, field string) {
	id := w.pickList()
	path := fmt.Sprintf("/api/lists/%d/", id)
	var body string
	var apply func(l *List) bool // reports whether it changed l
	switch field {
	case "name":
		name := listNames[w.rnd.IntN(len(listNames))]
		body = encode(w.t, map[string]string{"name": name})
		apply = func(l *List) bool { old := l.Name; l.Name = name; return old != name }
	case "public":
		public := true
		if l := w.lists[id]; l != nil {
			public = !l.Public
		}
		body = encode(w.t, map[string]bool{"public": public})
		apply = func(l *List) bool { old := l.Public; l.Public = public; return old != public }
	}
	code := w.listWriteCode(actor, id, 200)
	if code != 200 {
		w.request(actor, code, "PATCH", path, body, "")
		return
	}
	after := *w.lists[id]
	changed := apply(&after)
	w.request(actor, 200, "PATCH", path, body, encode(w.t, &after))
	*w.lists[id] = after
	if changed {
		w.listChanged(id)
	}
}

func (w *world) deleteList(actor *viewer) {
	id := w.pickList()
	path := fmt.Sprintf("/api/lists/%d/", id)
	code := w.listWriteCode(actor, id, 204)
	w.request(actor, code, "DELETE", path, "", "")
	if code != 204 {
		return
	}
	delete(w.lists, id)
	w.deletedLists[id] = true
	w.listChanged(id)
	// The database deletes its tasks.
	for _, tid := range w.taskIDs {
		if task := w.tasks[tid]; task != nil && task.ListID == id {
			delete(w.tasks, tid)
			w.deletedTasks[tid] = true
			w.taskChanged(tid, id, 0)
		}
	}
}

func (w *world) createTask(actor *viewer) {
	list := w.pickList()
	text := taskTexts[w.rnd.IntN(len(taskTexts))]
	body := encode(w.t, map[string]any{"text": text, "list": list})
	if !w.seesList(actor, list) {
		w.request(actor, 400, "POST", "/api/tasks/", body, "")
		return
	}
	var task Task
	res := w.request(actor, 201, "POST", "/api/tasks/", body, "")
	res.decode(w.t, &task)
	if task.Text != text || task.ListID != list || task.Done {
		w.t.Fatalf("created %s", res.body)
	}
	w.tasks[task.ID] = &task
	w.taskIDs = append(w.taskIDs, task.ID)
	w.taskChanged(task.ID, 0, list)
}

func (w *world) changeTask(actor *viewer, field string) {
	id := w.pickTask()
	path := fmt.Sprintf("/api/tasks/%d/", id)
	var body string
	var after Task
	if task := w.tasks[id]; task != nil {
		after = *task
	}
	var dest uint
	switch field {
	case "text":
		after.Text = taskTexts[w.rnd.IntN(len(taskTexts))]
		body = encode(w.t, map[string]string{"text": after.Text})
	case "done":
		after.Done = !after.Done
		body = encode(w.t, map[string]bool{"done": after.Done})
	case "list":
		dest = w.pickList()
		after.ListID = dest
		body = encode(w.t, map[string]uint{"list": dest})
	}
	switch {
	case !w.seesTask(actor, id):
		w.request(actor, 404, "PATCH", path, body, "")
		return
	case field == "list" && !w.seesList(actor, dest):
		w.request(actor, 400, "PATCH", path, body, "")
		return
	}
	w.request(actor, 200, "PATCH", path, body, encode(w.t, &after))
	before := *w.tasks[id]
	*w.tasks[id] = after
	if before != after {
		w.taskChanged(id, before.ListID, after.ListID)
	}
}

func (w *world) deleteTask(actor *viewer) {
	id := w.pickTask()
	path := fmt.Sprintf("/api/tasks/%d/", id)
	if !w.seesTask(actor, id) {
		w.request(actor, 404, "DELETE", path, "", "")
		return
	}
	w.request(actor, 204, "DELETE", path, "", "")
	list := w.tasks[id].ListID
	delete(w.tasks, id)
	w.deletedTasks[id] = true
	w.taskChanged(id, list, 0)
}

// fence renames the fence list and returns the broadcast everyone gets.
// It writes with SQL, not through the API: the triggers capture every
// write, and this one is quicker.
func (w *world) fence() string {
	w.fences++
	f := w.fenceList
	f.Name = fmt.Sprintf("fence %d", w.fences)
	if err := w.s.app.db.Model(&List{}).Where("id = ?", f.ID).Update("name", f.Name).Error; err != nil {
		w.t.Fatalf("fence: %v", err)
	}
	// No nudge needed on SQLite: the server's GORM callback wakes the
	// outbox reader after a write through the app's *gorm.DB.
	w.fenceList = f
	return want{"fence", "UPDATED", encode(w.t, &f)}.String()
}

// awaitBroadcasts waits, for each viewer, for the broadcasts the model
// predicts for the operation, failing on any other, then fences: a write
// to a list everyone watches, whose broadcast marks the end of whatever
// else was queued to each viewer. (The hub keeps the order of each
// subscription's broadcasts, not of different subscriptions': a broadcast
// the server should not have sent may arrive after the fence, and is then
// caught at the next step, or by the final ReceiveNothing.)
func (w *world) awaitBroadcasts(step int, op string) {
	t := w.t
	fail := func(v *viewer, got, why string) {
		e := slices.Clone(w.expected[v])
		slices.Sort(e)
		t.Fatalf("step %d (%s): %s received %s, %s; the operation's broadcasts:\n\t%s", step, op, v.name, got, why, strings.Join(e, "\n\t"))
	}
	for _, v := range w.viewers {
		var received []string
		due := map[string]int{}
		for _, e := range w.expected[v] {
			due[e]++
		}
		for n := len(w.expected[v]); n > 0; n-- {
			f := receive(t, v.c)
			s := want{f.id(), f.Action, string(f.Instance)}.String()
			if f.Type != "broadcast" {
				fail(v, f.String(), "not a broadcast")
			}
			w.checkVisible(step, op, v, f)
			if due[s] == 0 {
				fail(v, s, "which it should not have")
			}
			due[s]--
			received = append(received, s)
		}
		// In any order between subscriptions: sorted.
		slices.Sort(received)
		for _, s := range received {
			w.transcript = append(w.transcript, v.name+" received "+s)
		}
		w.checked += len(w.expected[v])
	}
	fence := w.fence()
	for _, v := range w.viewers {
		f := receive(t, v.c)
		if s := (want{f.id(), f.Action, string(f.Instance)}).String(); s != fence {
			fail(v, s, "which it should not have (before the fence)")
		}
	}
}

// checkVisible checks, independently of the predictions, the promise
// that matters most: a viewer is told about a list or task only while it
// can see it, and, once it cannot, learns its id and no more.
func (w *world) checkVisible(step int, op string, v *viewer, f frame) {
	var id struct {
		ID uint `json:"id"`
	}
	if err := json.Unmarshal(f.Instance, &id); err != nil {
		w.t.Fatalf("step %d: %s received %s: %v", step, v.name, f, err)
	}
	if f.Action == "DELETED" {
		if string(f.Instance) != deleted(id.ID) {
			w.t.Fatalf("step %d (%s): %s learned more than an id: %s", step, op, v.name, f)
		}
		return
	}
	visible := w.seesList(v, id.ID)
	if f.Model == "todolist.Task" {
		visible = w.seesTask(v, id.ID)
	}
	if !visible {
		w.t.Fatalf("step %d (%s): %s received %s, which it cannot see", step, op, v.name, f)
	}
}
