package live

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
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
				g.subs[s] = struct{}{}
			}
			g.mu.Unlock()
			change := []Change{{Model: "a.B", PK: "1", Op: OpUpdate, New: map[string]string{"list_id": "14"}}}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				h.deliver(Delivery{Changes: change})
				for busy := true; busy; {
					runtime.Gosched()
					g.family.mu.Lock()
					busy = g.family.busy
					g.family.mu.Unlock()
				}
				for _, c := range conns {
					if len(c.queue) != 1 {
						b.Fatalf("%d frames queued, want 1", len(c.queue))
					}
					c.queue = c.queue[:0]
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/broadcast")
		})
	}
}

// An index keeps one group without a set, two or more in one, and goes
// back to one as they leave; all lists exactly the groups under a key.
func TestIndex(t *testing.T) {
	ix := make(index[string])
	a, b, c := &group{}, &group{}, &group{}
	has := func(k string, want ...*group) {
		t.Helper()
		got := slices.Collect(ix.all(k))
		if len(got) != len(want) {
			t.Fatalf("%s: %d groups, want %d", k, len(got), len(want))
		}
		for _, g := range want {
			if !slices.Contains(got, g) {
				t.Fatalf("%s: %p missing", k, g)
			}
		}
	}
	has("k")
	ix.add("k", a)
	ix.add("k", a)
	has("k", a)
	if ix["k"].more != nil {
		t.Fatal("one group kept in a set")
	}
	ix.add("k", b)
	ix.add("k", c)
	has("k", a, b, c)
	ix.remove("k", a)
	ix.remove("k", a)
	has("k", b, c)
	ix.remove("k", b)
	has("k", c)
	if s := ix["k"]; s.more != nil || s.one != c {
		t.Fatalf("one group left, kept as %+v", s)
	}
	ix.remove("k", b)
	has("k", c)
	ix.remove("k", c)
	has("k")
	if len(ix) != 0 {
		t.Fatalf("%d keys left", len(ix))
	}
	// Stopping early stops.
	ix.add("k", a)
	ix.add("k", b)
	for range ix.all("k") {
		break
	}
}
