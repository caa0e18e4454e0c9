package fanout

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
)

// nopBroker stands for the connection: these tests drive the inbound
// events themselves, in the orders a broker may produce them.
type nopBroker struct{}

func (nopBroker) Subscribe(context.Context, []string) error   { return nil }
func (nopBroker) Unsubscribe(context.Context, []string) error { return nil }
func (nopBroker) Sync(context.Context, []string) error        { return nil }

var naming = Naming{Prefix: "t", Sep: '.'}

type harness struct {
	t   *testing.T
	f   *Fanout
	r   live.Receiver
	got chan live.Delivery
}

func newHarness(t *testing.T, topics ...live.Topic) *harness {
	f := New(Config{Name: "test", Naming: naming, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Broker: nopBroker{}}, 1)
	t.Cleanup(f.Close)
	h := &harness{t: t, f: f, got: make(chan live.Delivery, 100)}
	r, err := f.Receive(func(d live.Delivery) { h.got <- d })
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	if err := r.Join(context.Background(), topics...); err != nil {
		t.Fatal(err)
	}
	for _, tp := range topics {
		f.Confirm(naming.Channel(tp))
	}
	return h
}

// send delivers the message of topic for the given changes of a batch, as
// publisher 7.
func (h *harness) send(batch uint64, all []live.Change, topic live.Topic) {
	var xs []indexed
	for i, c := range all {
		if slices.Contains(c.Topics(), topic) {
			xs = append(xs, indexed{i, c})
		}
	}
	ch := naming.Channel(topic)
	h.f.Message(ch, string(encodeMessage(7, batch, len(all), xs)))
}

// expect waits for deliveries whose changes, concatenated, are want (by
// PK), then checks that nothing else is queued.
func (h *harness) expect(want ...string) {
	h.t.Helper()
	var got []string
	deadline := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case d := <-h.got:
			for _, c := range d.Changes {
				got = append(got, c.PK)
			}
		case <-deadline:
			h.t.Fatalf("got %v, want %v", got, want)
		}
	}
	if !slices.Equal(got, want) {
		h.t.Fatalf("got %v, want %v", got, want)
	}
	h.expectNothing()
}

// expectNothing checks that no delivery is queued. Deliveries are queued
// before the inbound event returns, and an empty queue with an idle
// delivery goroutine means nothing is in flight.
func (h *harness) expectNothing() {
	h.t.Helper()
	for {
		h.f.mu.Lock()
		queued := len(h.f.queue)
		h.f.mu.Unlock()
		select {
		case d := <-h.got:
			h.t.Fatalf("unexpected delivery %+v", d)
		default:
		}
		if queued == 0 {
			// The delivery goroutine may hold a taken queue: a sentinel
			// through the same queue shows when it is done.
			done := make(chan struct{})
			h.f.mu.Lock()
			h.f.push([]delivery{{r: &receiver{deliver: func(live.Delivery) { close(done) }}}})
			h.f.mu.Unlock()
			<-done
			select {
			case d := <-h.got:
				h.t.Fatalf("unexpected delivery %+v", d)
			default:
			}
			return
		}
	}
}

func change(pk string, old, new map[string]string) live.Change {
	return live.Change{Model: "m", PK: pk, Op: live.OpUpdate, Old: old, New: new}
}

var (
	topicA = live.Topic{Model: "m", Field: "a", Value: "x"}
	topicB = live.Topic{Model: "m", Field: "b", Value: "x"}
	topicC = live.Topic{Model: "m", Field: "c", Value: "x"}
)

// batchAB: A holds 0, 2, 4; B holds 1, 2, 3, 4.
var batchAB = []live.Change{
	change("0", nil, map[string]string{"a": "x"}),
	change("1", nil, map[string]string{"b": "x"}),
	change("2", nil, map[string]string{"a": "x", "b": "x"}),
	change("3", nil, map[string]string{"b": "x"}),
	change("4", map[string]string{"a": "x"}, map[string]string{"b": "x"}),
}

func TestReassemblyAThenB(t *testing.T) {
	h := newHarness(t, topicA, topicB)
	h.send(1, batchAB, topicA)
	h.expect("0") // 2 waits for B's message
	h.send(1, batchAB, topicB)
	h.expect("1", "2", "3", "4")
}

func TestReassemblyBThenA(t *testing.T) {
	h := newHarness(t, topicA, topicB)
	h.send(1, batchAB, topicB)
	h.expect("1")
	h.send(1, batchAB, topicA)
	h.expect("0", "2", "3", "4")
	// The same batch again (a topic's message duplicated): nothing new.
	h.send(1, batchAB, topicB)
	h.expectNothing()
}

func TestReassemblyUnconfirmedTopicNotAwaited(t *testing.T) {
	h := newHarness(t, topicA)
	// Joined but not confirmed: its message may not come.
	if err := h.r.Join(context.Background(), topicB); err != nil {
		t.Fatal(err)
	}
	h.send(1, batchAB, topicA)
	h.expect("0", "2", "4")
}

func TestReassemblyNewerBatchEndsWait(t *testing.T) {
	h := newHarness(t, topicA, topicB)
	h.send(1, batchAB, topicA)
	h.expect("0")
	// B's message of batch 1 was lost; batch 2 shows it will not come.
	h.send(2, batchAB, topicA)
	h.expect("2", "4", "0")
	// A late message of batch 1 is dropped.
	h.send(1, batchAB, topicB)
	h.send(2, batchAB, topicB)
	h.expect("1", "2", "3", "4")
}

func TestReassemblyExpire(t *testing.T) {
	h := newHarness(t, topicA, topicB)
	h.send(1, batchAB, topicA)
	h.expect("0")
	if wait := h.f.Expire(time.Now()); wait > staleAfter {
		t.Errorf("Expire asks to wait %v, more than %v", wait, staleAfter)
	}
	h.expectNothing()
	h.f.Expire(time.Now().Add(staleAfter))
	h.expect("2", "4")
}

func TestReassemblyLeaveEndsWait(t *testing.T) {
	h := newHarness(t, topicA, topicB)
	h.send(1, batchAB, topicA)
	h.expect("0")
	if err := h.r.Leave(context.Background(), topicB); err != nil {
		t.Fatal(err)
	}
	h.expect("2", "4")
}

func TestReassemblyLostFlushes(t *testing.T) {
	h := newHarness(t, topicA, topicB, topicC)
	h.send(1, batchAB, topicA)
	h.expect("0")
	h.f.Lost()
	h.expect("2", "4")
	h.f.Restored()
	select {
	case d := <-h.got:
		if want := []live.Topic{topicA, topicB, topicC}; !slices.Equal(d.Missed, want) {
			t.Fatalf("Missed = %v, want %v", d.Missed, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no Missed after Restored")
	}
	// Subscriptions are unconfirmed until the broker says again.
	h.send(2, batchAB, topicA)
	h.expect("0", "2", "4")
}

func TestReassemblyDropped(t *testing.T) {
	h := newHarness(t, topicA, topicB)
	h.send(1, batchAB, topicA)
	h.expect("0")
	h.f.Dropped(naming.Channel(topicB))
	// The changes assembled so far, then the topic whose messages may
	// have been lost.
	for _, want := range []live.Delivery{
		{Changes: []live.Change{batchAB[2], batchAB[4]}},
		{Missed: []live.Topic{topicB}},
	} {
		select {
		case d := <-h.got:
			if len(d.Changes) != len(want.Changes) || !slices.Equal(d.Missed, want.Missed) {
				t.Fatalf("got %+v, want %+v", d, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no delivery; want %+v", want)
		}
	}
	h.expectNothing()
}

func TestReceiverClosed(t *testing.T) {
	h := newHarness(t, topicA)
	if err := h.r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.r.Join(context.Background(), topicA); err == nil {
		t.Error("Join after Close succeeded")
	}
	h.send(1, batchAB, topicA)
	h.expectNothing()
	if len(h.f.channels) != 0 || len(h.f.topics) != 0 {
		t.Errorf("closed receiver left %d channels, %d topics", len(h.f.channels), len(h.f.topics))
	}
}
