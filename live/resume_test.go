package live_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
)

// logHistory is a History over every change published through it: it
// numbers them (Seq 1, 2, ...) and passes them on to a layer. While held,
// Since answers with the changes published before it was asked, once
// released.
type logHistory struct {
	next live.Publisher

	mu      sync.Mutex
	log     []live.Change
	held    chan struct{} // Since waits for it to close, when not nil
	waiting chan struct{} // closed when a held Since has read the log
}

func (h *logHistory) Publish(ctx context.Context, changes []live.Change) error {
	h.mu.Lock()
	for i := range changes {
		changes[i].Seq = uint64(len(h.log) + 1)
		h.log = append(h.log, changes[i])
	}
	h.mu.Unlock()
	return h.next.Publish(ctx, changes)
}

func (h *logHistory) Head(context.Context) (live.Position, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return live.Position{Epoch: "t", Seq: uint64(len(h.log))}, nil
}

func (h *logHistory) Since(ctx context.Context, pos live.Position, models []string, _ int) ([]live.Change, error) {
	h.mu.Lock()
	var out []live.Change
	for _, c := range h.log[min(pos.Seq, uint64(len(h.log))):] {
		if slices.Contains(models, c.Model) {
			out = append(out, c)
		}
	}
	held, waiting := h.held, h.waiting
	h.mu.Unlock()
	if held != nil {
		close(waiting)
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// hold makes the next Since wait until the returned release is called;
// the channel returned closes once it has read the log.
func (h *logHistory) hold() (asked <-chan struct{}, release func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held, h.waiting = make(chan struct{}), make(chan struct{})
	return h.waiting, sync.OnceFunc(func() { close(h.held) })
}

// A change that reaches the hub while a resume reads the history, too late
// for the history's answer, is still part of the resume: the client gets
// every change it missed, the one while away and the one during the
// resume, at their current state, then "subscribed" with resumed true.
func TestResumeIncludesChangesDuringTheRead(t *testing.T) {
	hist := &logHistory{}
	f := newFixture(t, live.Config{History: hist})
	hist.next = f.router.Layer()
	f.table.layer = hist
	away := f.table.create("away", 2)
	during := f.table.create("during", 2)

	c := f.connect(t, "")
	c.Send(map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2, "snapshot": true})
	var offset string
	for offset == "" {
		m := c.Receive()
		if m["type"] == "subscribed" {
			offset = fmt.Sprint(m["offset"])
		}
	}
	c.Close()
	// w watches all along: once it has a change, the hub has it.
	w := f.connect(t, "")
	subscribe(t, w, map[string]any{"request_id": 2, "model": "app.Todo", "group_by": "list_id", "value": 2})
	updated := func(r todo) {
		t.Helper()
		f.table.update(r)
		for {
			m := w.Receive()
			if in, _ := m["instance"].(map[string]any); m["action"] == "UPDATED" && in["text"] == r.Text {
				return
			}
		}
	}

	away.Text = "changed while away"
	updated(away)

	asked, release := hist.hold()
	defer release()
	c = f.connect(t, "")
	c.Send(map[string]any{"request_id": 1, "model": "app.Todo", "group_by": "list_id", "value": 2, "since": offset})
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the resume did not read the history")
	}
	during.Text = "changed during the resume"
	updated(during)
	release()

	got := map[string]string{}
	for {
		m := c.Receive()
		if m["type"] == "subscribed" {
			if m["resumed"] != true {
				t.Fatalf("resumed = %v, want true: %v", m["resumed"], m)
			}
			break
		}
		if m["type"] != "broadcast" {
			t.Fatalf("unexpected frame %v", m)
		}
		in, _ := m["instance"].(map[string]any)
		got[fmt.Sprint(in["id"])] = fmt.Sprint(in["text"])
	}
	want := map[string]string{fmt.Sprint(away.ID): "changed while away", fmt.Sprint(during.ID): "changed during the resume"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the resume sent %v, want %v", got, want)
	}
}
