package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"gorm.io/gorm"

	"github.com/restlive/restlive/examples/todolist/todoapp"
)

// A row is one measured run: a scenario with its sizes.
type row struct {
	Scenario string
	// Conns is the number of connections; Subs, for "instances", the
	// number of subscriptions spread over them, and for "groups" the
	// number of lists they watch.
	Conns, Subs int
	Writes      int
	Rate        float64
}

func (r row) label() string {
	l := fmt.Sprintf("%s n=%d", r.Scenario, r.Conns)
	if r.Scenario == "groups" {
		l += fmt.Sprintf(" g=%d", r.Subs)
	}
	if r.Rate > 0 {
		l += fmt.Sprintf(" @%g/s", r.Rate)
	}
	return l
}

// The writes change what subscribers see, always: each sets the text of
// a task no other write of the run touches to "#i", so that no two writes
// can be folded into one broadcast (the hub reads the current state, and
// sends UPDATED only when the serialized instance changed), and the
// clients can tell which write a broadcast answers.
func taskWrite(i int, task uint, token string) writePlan {
	return writePlan{
		Method: http.MethodPatch, Path: fmt.Sprintf("/api/tasks/%d/", task),
		Body: `{"text":"#` + strconv.Itoa(i) + `"}`, Token: token, Status: http.StatusOK,
	}
}

func subscribeList(rid int, list uint) string {
	return fmt.Sprintf(`{"request_id":%d,"model":"todolist.Task","group_by":"list_id","value":%d,"ack":true}`, rid, list)
}

func subscribeTask(rid int, task uint) string {
	return fmt.Sprintf(`{"request_id":%d,"model":"todolist.Task","value":%d,"ack":true}`, rid, task)
}

// dataTarget is where setup makes a run's data.
type dataTarget struct {
	// db is a connection to the app's database, not counted.
	db *gorm.DB
	// api is the host:port setup calls the REST API at.
	api string
	// hubs are a host:port of each server process: the barrier waits
	// until the hub of each has received the setup's changes.
	hubs []string
}

// setup prepares the app's data for r and returns the clients' plan
// (without the server's URLs and the run's settings). Tasks are inserted
// directly, in bulk; users and lists are made through the API.
func setup(ctx context.Context, s dataTarget, r row, progressOn bool) (*plan, error) {
	api := &apiClient{base: "http://" + s.api, hc: &http.Client{Timeout: time.Minute}}
	defer api.hc.CloseIdleConnections()
	owner, err := api.register(ctx, "owner")
	if err != nil {
		return nil, err
	}
	public, err := api.createList(ctx, owner.token, "public", true)
	if err != nil {
		return nil, err
	}
	p := &plan{}
	switch r.Scenario {
	case "watchers", "idle":
		// n anonymous subscribers of one public list; write i changes
		// its task i.
		tasks, err := insertTasks(ctx, s.db, public, r.Writes)
		if err != nil {
			return nil, err
		}
		p.Conns = make([]connPlan, r.Conns)
		sub := []string{subscribeList(1, public)}
		for i := range p.Conns {
			p.Conns[i] = connPlan{Subs: sub}
		}
		for i := range r.Writes {
			w := taskWrite(i, tasks[i], "")
			w.All = 1
			p.Writes = append(p.Writes, w)
		}

	case "users":
		// n users, each subscribed to their own private list (request 1)
		// and to the shared public list (request 2). Even writes change a
		// task of the shared list, odd ones a task of one user's private
		// list; every write is made by a user, with their token.
		users := make([]user, r.Conns)
		lists := make([]uint, r.Conns)
		var done atomic.Int64
		bar := startProgress(progressOn, stderr, r.label()+" register", int64(r.Conns), done.Load, nil)
		err := parallel(ctx, 8, r.Conns, func(i int) error {
			u, err := api.register(ctx, fmt.Sprintf("user%d", i))
			if err != nil {
				return err
			}
			l, err := api.createList(ctx, u.token, fmt.Sprintf("private %d", i), false)
			if err != nil {
				return err
			}
			users[i], lists[i] = u, l
			done.Add(1)
			return nil
		})
		bar.end()
		if err != nil {
			return nil, err
		}
		shared, err := insertTasks(ctx, s.db, public, (r.Writes+1)/2)
		if err != nil {
			return nil, err
		}
		// Private write k (the write 2k+1) goes to user k % n, in a task
		// of its own.
		private := make([]uint, r.Writes/2)
		for k := range private {
			t, err := insertTasks(ctx, s.db, lists[k%r.Conns], 1)
			if err != nil {
				return nil, err
			}
			private[k] = t[0]
		}
		p.Conns = make([]connPlan, r.Conns)
		for i := range p.Conns {
			p.Conns[i] = connPlan{Token: users[i].token, Subs: []string{subscribeList(1, lists[i]), subscribeList(2, public)}}
		}
		for i := range r.Writes {
			var w writePlan
			if i%2 == 0 {
				w = taskWrite(i, shared[i/2], users[(i/2)%r.Conns].token)
				w.All = 2
			} else {
				k := i / 2
				u := k % r.Conns
				w = taskWrite(i, private[k], users[u].token)
				w.Conn, w.RID = u, 1
			}
			p.Writes = append(p.Writes, w)
		}

	case "instances":
		// r.Subs subscriptions, each to one task by pk, dealt round-robin
		// over r.Conns connections; the writes change distinct tasks in
		// a random order.
		tasks, err := insertTasks(ctx, s.db, public, r.Subs)
		if err != nil {
			return nil, err
		}
		p.Conns = make([]connPlan, r.Conns)
		for j, t := range tasks {
			c := &p.Conns[j%r.Conns]
			c.Subs = append(c.Subs, subscribeTask(len(c.Subs)+1, t))
		}
		order := rand.New(rand.NewPCG(1, 2)).Perm(len(tasks))
		for i := range r.Writes {
			j := order[i%len(order)]
			w := taskWrite(i, tasks[j], "")
			w.Conn, w.RID = j%r.Conns, j/r.Conns+1
			p.Writes = append(p.Writes, w)
		}

	case "groups":
		// Many small groups, the shape of chat rooms or project boards:
		// r.Subs public lists, the r.Conns connections spread over them
		// (connection i watches list i % r.Subs), and write i changes a
		// task of list i % r.Subs, which its watchers receive.
		lists, err := insertLists(ctx, s.db, owner.id, r.Subs)
		if err != nil {
			return nil, err
		}
		tasks := make([]uint, r.Writes)
		for l, list := range lists {
			// The writes of list l are l, l + n, l + 2n... below r.Writes.
			ids, err := insertTasks(ctx, s.db, list, max(0, r.Writes-l+r.Subs-1)/r.Subs)
			if err != nil {
				return nil, err
			}
			for k, id := range ids {
				tasks[l+k*r.Subs] = id
			}
		}
		p.Conns = make([]connPlan, r.Conns)
		for i := range p.Conns {
			p.Conns[i] = connPlan{Subs: []string{subscribeList(1, lists[i%r.Subs])}, Group: i%r.Subs + 1}
		}
		for i := range r.Writes {
			w := taskWrite(i, tasks[i], "")
			w.Group = i%r.Subs + 1
			p.Writes = append(p.Writes, w)
		}

	default:
		return nil, fmt.Errorf("unknown scenario %q", r.Scenario)
	}
	if err := barrier(ctx, s, api, public); err != nil {
		return nil, err
	}
	return p, nil
}

// insertLists inserts n public lists of owner, in one transaction, and
// returns their ids.
func insertLists(ctx context.Context, db *gorm.DB, owner uint, n int) ([]uint, error) {
	lists := make([]todoapp.List, n)
	for i := range lists {
		lists[i] = todoapp.List{Name: "group " + strconv.Itoa(i), Public: true, OwnerID: owner}
	}
	if err := db.WithContext(ctx).CreateInBatches(lists, 500).Error; err != nil {
		return nil, fmt.Errorf("insert lists: %w", err)
	}
	ids := make([]uint, n)
	for i := range lists {
		ids[i] = lists[i].ID
	}
	return ids, nil
}

// insertTasks inserts n tasks into list, in one transaction, and returns
// their ids. Their capture triggers record them in the outbox like any
// write.
func insertTasks(ctx context.Context, db *gorm.DB, list uint, n int) ([]uint, error) {
	if n <= 0 {
		return nil, nil
	}
	tasks := make([]todoapp.Task, n)
	for i := range tasks {
		tasks[i] = todoapp.Task{Text: "task " + strconv.Itoa(i), ListID: list}
	}
	if err := db.WithContext(ctx).CreateInBatches(tasks, 500).Error; err != nil {
		return nil, fmt.Errorf("insert tasks: %w", err)
	}
	ids := make([]uint, n)
	for i := range tasks {
		ids[i] = tasks[i].ID
	}
	return ids, nil
}

// barrier returns once the outbox reader has published every change made
// so far, and each server process's hub has received them: it subscribes
// to a new task of list on each process, changes the task through the
// API, and waits for the broadcast on each, which comes after those of
// every earlier commit. The write phase then counts only its own queries.
func barrier(ctx context.Context, s dataTarget, api *apiClient, list uint) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ids, err := insertTasks(ctx, s.db, list, 1)
	if err != nil {
		return err
	}
	var conns []*websocket.Conn
	defer func() {
		for _, ws := range conns {
			ws.CloseNow()
		}
	}()
	expect := func(ws *websocket.Conn, typ string) error {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			return fmt.Errorf("barrier: waiting for %s: %w", typ, err)
		}
		if !bytes.HasPrefix(msg, []byte(`{"type":"`+typ+`"`)) {
			return fmt.Errorf("barrier: got %s, want a %s", msg, typ)
		}
		return nil
	}
	for _, addr := range s.hubs {
		ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws/subscribe/", nil)
		if err != nil {
			return fmt.Errorf("barrier: %w", err)
		}
		conns = append(conns, ws)
		if err := ws.Write(ctx, websocket.MessageText, []byte(subscribeTask(1, ids[0]))); err != nil {
			return fmt.Errorf("barrier: %w", err)
		}
		if err := expect(ws, "subscribed"); err != nil {
			return err
		}
	}
	if err := api.do(ctx, http.MethodPatch, fmt.Sprintf("/api/tasks/%d/", ids[0]), "", `{"text":"barrier"}`, http.StatusOK, nil); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	for _, ws := range conns {
		if err := expect(ws, "broadcast"); err != nil {
			return err
		}
		ws.Close(websocket.StatusNormalClosure, "")
	}
	return nil
}

// apiClient calls the app's REST API.
type apiClient struct {
	base string
	hc   *http.Client
}

type user struct {
	id    uint
	token string
}

func (a *apiClient) register(ctx context.Context, name string) (user, error) {
	var out struct {
		ID    uint   `json:"id"`
		Token string `json:"token"`
	}
	body := fmt.Sprintf(`{"username":%q,"password":"password of %s"}`, name, name)
	if err := a.do(ctx, http.MethodPost, "/api/auth/register", "", body, http.StatusCreated, &out); err != nil {
		return user{}, fmt.Errorf("register %s: %w", name, err)
	}
	return user{id: out.ID, token: out.Token}, nil
}

func (a *apiClient) createList(ctx context.Context, token, name string, public bool) (uint, error) {
	var out struct {
		ID uint `json:"id"`
	}
	body := fmt.Sprintf(`{"name":%q,"public":%t}`, name, public)
	if err := a.do(ctx, http.MethodPost, "/api/lists/", token, body, http.StatusCreated, &out); err != nil {
		return 0, fmt.Errorf("create list: %w", err)
	}
	return out.ID, nil
}

func (a *apiClient) do(ctx context.Context, method, path, token, body string, status int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != status {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// parallel calls f(0) ... f(n-1), at most k at a time, and returns the
// first error.
func parallel(ctx context.Context, k, n int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
