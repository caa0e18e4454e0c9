package live

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"
)

// versionScope holds every pk it is asked about, each time in a new
// version, so that every change is an UPDATED.
type versionScope struct{ version *int }

func (versionScope) Key() string { return "" }
func (versionScope) Members(context.Context) ([]Instance, error) {
	return []Instance{{PK: "1", ID: json.RawMessage(`{"id":1}`)}}, nil
}
func (s versionScope) Fetch(_ context.Context, pks []string) ([]Instance, error) {
	*s.version++
	v := fmt.Sprint(*s.version)
	out := make([]Instance, len(pks))
	for i, pk := range pks {
		out[i] = Instance{PK: pk, ID: json.RawMessage(`{"id":` + pk + `}`), Data: json.RawMessage(`{"id":` + pk + `,"text":"buy milk ` + v + `","done":true,"list":14}`)}
	}
	return out, nil
}

// BenchmarkDeliver measures the hub's dispatch path: one change to a group
// of n subscriptions, from the layer's callback to the connections' queues.
func BenchmarkDeliver(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			rt := NewRouter(Config{Logger: slog.New(slog.DiscardHandler), SendQueue: 1 << 30})
			h := rt.hub
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			view := &registered{spec: Spec{Model: "a.B", Lookup: PK}}
			g := h.group(groupKey{model: "a.B", field: "list_id", value: "14"}, view, []Topic{{Model: "a.B", Field: "list_id", Value: "14"}}, nil, versionScope{new(int)})
			g.mu.Lock()
			if err := h.load(ctx, g); err != nil {
				b.Fatal(err)
			}
			conns := make([]*conn, n)
			for i := range conns {
				conns[i] = &conn{rt: rt, ctx: ctx, cancel: cancel, writing: true} // no write loop: the benchmark empties the queues
				s := &subscription{conn: conns[i], group: g, head: broadcastHead(dialectSeed, json.RawMessage(fmt.Sprint(i)), "a.B")}
				g.subs.add(s)
			}
			g.mu.Unlock()
			change := []Change{{Model: "a.B", PK: "1", Op: OpUpdate, New: map[string]string{"list_id": "14"}}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.deliver(Delivery{Changes: change})
				<-h.whenIdle()
				for _, c := range conns {
					if len(c.queue) != 1 {
						b.Fatalf("%d frames queued, want 1", len(c.queue))
					}
					c.queue, c.queued = c.queue[:0], 0
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/broadcast")
		})
	}
}

// A set keeps one element without a map, two or more in one, and goes
// back to one as they leave; all yields exactly its elements, and a loop
// over it may remove them as it goes. The index over sets of groups
// drops a key whose set is empty.
func TestSet(t *testing.T) {
	var s set[*group]
	a, b, c := &group{}, &group{}, &group{}
	is := func(want ...*group) {
		t.Helper()
		got := slices.Collect(s.all())
		if len(got) != len(want) || s.len() != len(want) {
			t.Fatalf("%d elements (len %d), want %d", len(got), s.len(), len(want))
		}
		for _, g := range want {
			if !slices.Contains(got, g) || !s.has(g) {
				t.Fatalf("%p missing", g)
			}
		}
	}
	is()
	if s.has(nil) {
		t.Fatal("the empty set has nil")
	}
	s.add(a)
	s.add(a)
	is(a)
	if s.more != nil {
		t.Fatal("one element kept in a map")
	}
	s.add(b)
	s.add(c)
	is(a, b, c)
	s.remove(a)
	s.remove(a)
	is(b, c)
	s.remove(b)
	is(c)
	if s.more != nil || s.one != c {
		t.Fatalf("one element left, kept as %+v", s)
	}
	s.remove(b)
	is(c)
	s.remove(c)
	is()

	// Removing every element while looping, from one and from many.
	for _, n := range []int{1, 3} {
		for range n {
			s.add(&group{})
		}
		seen := 0
		for g := range s.all() {
			s.remove(g)
			seen++
		}
		if seen != n || s.len() != 0 {
			t.Fatalf("a loop removing %d elements saw %d and left %d", n, seen, s.len())
		}
	}
	// Stopping early stops.
	s.add(a)
	s.add(b)
	for range s.all() {
		break
	}

	ix := make(index[string])
	ix.add("k", a)
	ix.add("k", b)
	ix.remove("k", a)
	if got := slices.Collect(ix.all("k")); len(got) != 1 || got[0] != b {
		t.Fatalf("index: %v under k, want b", got)
	}
	ix.remove("k", b)
	ix.remove("missing", b)
	if len(ix) != 0 {
		t.Fatalf("index: %d keys left", len(ix))
	}
}
