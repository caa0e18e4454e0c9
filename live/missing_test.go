package live_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
)

// A group value is read as its field's type: "02" and 2.0 name list 2,
// which then gets every change of it, creations included.
func TestGroupValuesAreCanonical(t *testing.T) {
	f := newFixture(t, live.Config{})
	c := f.connect(t, "")
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": "02"})
	subscribe(t, c, map[string]any{"request_id": 2, "model": "app.Todo", "group_by": "list_id", "value": 2.0})
	if st := f.router.Stats(); st.Scopes != 1 {
		t.Fatalf("%d scopes, want one for list 2", st.Scopes)
	}
	todo := f.table.create("a", 2)
	for range 2 {
		expect(t, c.Receive(), map[string]any{"action": "CREATED"})
	}
	f.table.delete(todo.ID)
	for range 2 {
		expect(t, c.Receive(), map[string]any{"action": "DELETED"})
	}
	c.Send(map[string]any{"request_id": 3, "model": "app.Todo", "group_by": "list_id", "value": "two"})
	expect(t, c.Receive(), map[string]any{"type": "error", "request_id": 3, "code": 400})
}

// A change whose old group values are unknown (a capture that cannot
// tell) still reaches the groups that held its row: they learn it left.
func TestChangeWithoutOldValues(t *testing.T) {
	f := newFixture(t, live.Config{})
	todo := f.table.create("a", 2)
	c := f.connect(t, "")
	subscribe(t, c, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	f.table.mu.Lock()
	todo.ListID = 4
	f.table.rows[todo.ID] = todo
	f.table.mu.Unlock()
	f.table.publish(live.Change{Model: "app.Todo", PK: strconv.Itoa(todo.ID), Op: live.OpUpdate, New: groupValues(todo)})
	expect(t, c.Receive(), map[string]any{"request_id": 1, "action": "DELETED"})
}

// missingLayer is a MemoryLayer whose deliveries a test can add a missed
// topic to, as a broker layer does after an outage.
type missingLayer struct {
	*live.MemoryLayer
	mu       sync.Mutex
	delivers []func(live.Delivery)
}

func (l *missingLayer) Receive(ctx context.Context, deliver func(live.Delivery)) (live.Receiver, error) {
	l.mu.Lock()
	l.delivers = append(l.delivers, deliver)
	l.mu.Unlock()
	return l.MemoryLayer.Receive(ctx, deliver)
}

func (l *missingLayer) miss(topics ...live.Topic) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.delivers {
		d(live.Delivery{Missed: topics})
	}
}

// When changes of a model a view depends on may have been lost, the
// view's subscribers are told to resynchronise too.
func TestResyncReachesDependentViews(t *testing.T) {
	layer := &missingLayer{MemoryLayer: live.NewMemoryLayer()}
	f := newFixture(t, live.Config{Layer: layer})
	group, single, other := f.connect(t, ""), f.connect(t, ""), f.connect(t, "")
	todo := f.table.create("a", 2)
	subscribe(t, group, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	subscribe(t, single, map[string]any{"request_id": 2, "model": "app.Todo", "value": todo.ID})
	subscribe(t, other, map[string]any{"request_id": 3, "model": "app.Todo", "group_by": "list_id", "value": 4})
	// A broker outage loses the topics of lists the process joined: list
	// 2's, which group's scope reads, and every list's, which single's
	// scope reads (it is not grouped by list).
	layer.miss(live.Topic{Model: "app.List", Field: live.PK, Value: "2"}, live.Topic{Model: "app.List"})
	expect(t, group.Receive(), map[string]any{"type": "resync", "request_id": 1})
	expect(t, single.Receive(), map[string]any{"type": "resync", "request_id": 2})
	other.ReceiveNothing()
	// Told to resynchronise, a scope is read whole before it is trusted:
	// its subscribers learn what they missed.
	f.table.mu.Lock()
	f.table.hidden[2] = true // a change of list 2 that was lost
	f.table.mu.Unlock()
	f.table.create("b", 2)
	expect(t, group.Receive(), map[string]any{"request_id": 1, "action": "DELETED"})
}

// MemoryLayer.Publish reports failure only when it delivered nothing, so
// that a publisher that retries never delivers twice.
func TestMemoryLayerPublishDeliversOnce(t *testing.T) {
	l := live.NewMemoryLayer()
	ctx, cancel := context.WithCancel(context.Background())
	delivered := 0
	r, err := l.Receive(ctx, func(live.Delivery) { delivered++; cancel() })
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Join(ctx, live.Topic{Model: "a.B"})
	if err := l.Publish(ctx, []live.Change{{Model: "a.B", PK: "1", Op: live.OpInsert}}); err != nil {
		t.Fatalf("Publish: %v, after it delivered", err)
	}
	if err := l.Publish(ctx, []live.Change{{Model: "a.B", PK: "2", Op: live.OpInsert}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish on an ended context: %v", err)
	}
	if delivered != 1 {
		t.Fatalf("%d deliveries, want 1", delivered)
	}
}

// slowView blocks the reads of list 6 until their context ends.
type slowView struct{ *todoView }

func (v slowView) Subscribe(ctx context.Context, req *live.Request) (live.Scope, error) {
	s, err := v.todoView.Subscribe(ctx, req)
	if err != nil || req.Value != "6" {
		return s, err
	}
	return slowScope{s}, nil
}

type slowScope struct{ live.Scope }

func (s slowScope) Fetch(ctx context.Context, pks []string) ([]live.Instance, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A scope whose reads hang holds up no other: other groups' broadcasts
// flow, and after ReadTimeout its subscribers are told to resynchronise.
func TestSlowScopeStallsNoOther(t *testing.T) {
	rt := live.NewRouter(live.Config{Authenticate: tokenAuth, Logger: quiet(), ReadTimeout: 500 * time.Millisecond})
	table := newTodoTable(rt.Layer())
	rt.Register(slowView{&todoView{table: table}})
	t.Cleanup(func() { rt.Close() })
	f := &fixture{router: rt, table: table}
	slow, fast := f.connect(t, ""), f.connect(t, "")
	subscribe(t, slow, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 6})
	subscribe(t, fast, map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2})
	start := time.Now()
	table.create("stuck", 6)
	for range 5 {
		table.create("flows", 2)
		expect(t, fast.Receive(), map[string]any{"action": "CREATED"})
	}
	if d := time.Since(start); d >= 500*time.Millisecond {
		t.Fatalf("the other group's broadcasts took %v: held up by the slow one", d)
	}
	expect(t, slow.Receive(), map[string]any{"type": "resync", "request_id": 1})
}
