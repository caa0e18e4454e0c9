// Package layertest is the conformance suite of live.Layer implementations:
// every layer runs the same tests through a factory.
//
//	func TestLayer(t *testing.T) {
//		broker := startBroker(t)
//		layertest.Run(t, func(t testing.TB) live.Layer { return open(t, broker) })
//	}
//
// The factory is called once per simulated process; every Layer it returns
// within one Run must reach the same broker, as server processes sharing a
// Redis or NATS do. Layers that implement io.Closer are closed by the suite
// when the test that made them ends.
package layertest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
)

// Wait bounds every wait for something that must arrive.
var Wait = 10 * time.Second

// Quiet is how long a test waits, after a marker that must arrive, for
// something that must not: enough for a stray message that was sent before
// the marker to overtake it on another topic.
var Quiet = 50 * time.Millisecond

// A Factory returns a new Layer value connected to the suite's broker.
type Factory func(t testing.TB) live.Layer

// Run runs the conformance suite against the layers newLayer makes.
func Run(t *testing.T, newLayer Factory) {
	open := func(t *testing.T) live.Layer { return opener(t, newLayer) }
	t.Run("PublishReceive", func(t *testing.T) { testPublishReceive(t, open(t)) })
	t.Run("NotJoined", func(t *testing.T) { testNotJoined(t, open(t)) })
	t.Run("CountedJoins", func(t *testing.T) { testCountedJoins(t, open(t)) })
	t.Run("Dedupe", func(t *testing.T) { testDedupe(t, open(t)) })
	t.Run("ModelTopic", func(t *testing.T) { testModelTopic(t, open(t)) })
	t.Run("UnknownOldValues", func(t *testing.T) { testUnknownOldValues(t, open(t)) })
	t.Run("Order", func(t *testing.T) { testOrder(t, open(t)) })
	t.Run("OrderAcrossTopics", func(t *testing.T) { testOrderAcrossTopics(t, open(t)) })
	t.Run("TwoProcesses", func(t *testing.T) { testTwoProcesses(t, open(t), open(t)) })
	t.Run("TwoReceivers", func(t *testing.T) { testTwoReceivers(t, open(t)) })
	t.Run("LeaveAll", func(t *testing.T) { testLeaveAll(t, open(t)) })
	t.Run("CloseReceiver", func(t *testing.T) { testCloseReceiver(t, open(t)) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrentPublishers(t, open(t), open(t)) })
	t.Run("StrangeValues", func(t *testing.T) { testStrangeValues(t, open(t)) })
	t.Run("CloseLayer", func(t *testing.T) { testCloseLayer(t, newLayer) })
	t.Run("EmptyPublish", func(t *testing.T) {
		if err := open(t).Publish(context.Background(), nil); err != nil {
			t.Fatalf("Publish(nil) = %v", err)
		}
	})
}

func opener(t testing.TB, newLayer Factory) live.Layer {
	t.Helper()
	l := newLayer(t)
	if c, ok := l.(io.Closer); ok {
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("close layer: %v", err)
			}
		})
	}
	return l
}

// Recover checks that layers survive an outage of their broker: stop must
// take the broker away as a crash would, and start bring it back at the
// same address. Publishing during the outage fails, a join during it
// succeeds, and once the broker is back every receiver is told which of
// its topics may have missed changes, and changes flow again, without a
// new Layer value.
func Recover(t *testing.T, newLayer Factory, stop, start func(t testing.TB)) {
	l1, l2 := opener(t, newLayer), opener(t, newLayer)
	m := model(t)
	r1, c1 := receive(t, l1, "process 1")
	r2, c2 := receive(t, l2, "process 2")
	topic, later := group(m, "list_id", "14"), group(m, "list_id", "15")
	join(t, r1, topic)
	join(t, r2, topic)
	before := insert(m, "before", map[string]string{"list_id": "14"})
	publish(t, l2, before)
	expect(t, "process 1 before the outage", c1.WaitChanges(1), []live.Change{before})

	stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	err := l2.Publish(ctx, []live.Change{insert(m, "during", map[string]string{"list_id": "14"})})
	cancel()
	if err == nil {
		t.Errorf("Publish during the outage succeeded")
	} else {
		t.Logf("Publish during the outage: %v", err)
	}
	join(t, r1, later)
	start(t)

	c1.WaitMissed(topic)
	c1.WaitMissed(later)
	c2.WaitMissed(topic)
	c1.Reset()
	after := []live.Change{
		insert(m, "after", map[string]string{"list_id": "14"}),
		insert(m, "later", map[string]string{"list_id": "15"}),
	}
	publish(t, l2, after...)
	expectPerTopic(t, "process 1 after the outage", c1.WaitChanges(2), after, topic, later)
	publish(t, l1, before)
	c2.WaitFor("a change from process 1 after the outage", func(ch []live.Change, _ [][]live.Topic) bool {
		return len(ch) > 0 && sameChange(ch[len(ch)-1], before)
	})
}

// model returns a model label of the test's own, so that tests sharing a
// broker never see each other's changes.
func model(t testing.TB) string {
	return "layertest." + strconv.FormatInt(time.Now().UnixNano(), 36) + "." + t.Name()
}

func pk(m, v string) live.Topic       { return live.Topic{Model: m, Field: live.PK, Value: v} }
func group(m, f, v string) live.Topic { return live.Topic{Model: m, Field: f, Value: v} }
func insert(m, id string, groups map[string]string) live.Change {
	return live.Change{Model: m, PK: id, Op: live.OpInsert, New: groups}
}

// A Collector receives the deliveries of one receiver and checks that they
// never overlap.
type Collector struct {
	t      testing.TB
	name   string
	inside atomic.Bool

	mu      sync.Mutex
	changes []live.Change
	missed  [][]live.Topic
	signal  chan struct{}
}

// NewCollector returns an empty Collector; name labels its failures.
func NewCollector(t testing.TB, name string) *Collector {
	return &Collector{t: t, name: name, signal: make(chan struct{}, 1)}
}

// Deliver is the receiver's deliver func.
func (c *Collector) Deliver(d live.Delivery) {
	if c.inside.Swap(true) {
		c.t.Errorf("%s: deliver called while another call is running", c.name)
	}
	defer c.inside.Store(false)
	c.mu.Lock()
	c.changes = append(c.changes, d.Changes...)
	if len(d.Missed) > 0 {
		c.missed = append(c.missed, d.Missed)
	}
	c.mu.Unlock()
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// WaitFor waits until done holds for the changes and missed topics
// received so far, and fails the test at the deadline.
func (c *Collector) WaitFor(what string, done func(changes []live.Change, missed [][]live.Topic) bool) {
	c.t.Helper()
	if !c.Await(Wait, done) {
		c.t.Fatalf("%s: waited %v for %s; have %d changes", c.name, Wait, what, len(c.Changes()))
	}
}

// Await waits up to d until done holds for the changes and missed topics
// received so far, and reports whether it did.
func (c *Collector) Await(d time.Duration, done func(changes []live.Change, missed [][]live.Topic) bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		ok := done(c.changes, c.missed)
		c.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-c.signal:
		case <-deadline.C:
			return false
		}
	}
}

// WaitChanges waits until at least n changes arrived and returns all.
func (c *Collector) WaitChanges(n int) []live.Change {
	c.t.Helper()
	c.WaitFor(fmt.Sprintf("%d changes", n), func(ch []live.Change, _ [][]live.Topic) bool { return len(ch) >= n })
	return c.Changes()
}

// WaitMissed waits until a Delivery with Missed containing topic arrived.
func (c *Collector) WaitMissed(topic live.Topic) {
	c.t.Helper()
	c.WaitFor("missed "+topic.String(), func(_ []live.Change, missed [][]live.Topic) bool {
		for _, m := range missed {
			if slices.Contains(m, topic) {
				return true
			}
		}
		return false
	})
}

// Changes returns the changes received so far.
func (c *Collector) Changes() []live.Change {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.changes)
}

// Reset forgets what was received.
func (c *Collector) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes, c.missed = nil, nil
}

// Settle waits until marker (a change published last, to a joined topic)
// arrived, then a little longer, and returns every change received:
// whatever had to arrive before the marker has, and what must not arrive
// would have by then.
func (c *Collector) Settle(marker live.Change) []live.Change {
	c.t.Helper()
	c.WaitFor("marker "+marker.PK, func(ch []live.Change, _ [][]live.Topic) bool {
		return slices.ContainsFunc(ch, func(x live.Change) bool { return sameChange(x, marker) })
	})
	quiet := time.NewTimer(Quiet)
	defer quiet.Stop()
	<-quiet.C
	return c.Changes()
}

func sameChange(a, b live.Change) bool {
	return a.Seq == b.Seq && a.Model == b.Model && a.PK == b.PK && a.Op == b.Op &&
		equalMap(a.Old, b.Old) && equalMap(a.New, b.New)
}

func equalMap(a, b map[string]string) bool {
	return (a == nil) == (b == nil) && maps.Equal(a, b)
}

// expect fails the test unless got holds want, in order.
func expect(t testing.TB, who string, got, want []live.Change) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d changes, want %d\ngot  %s\nwant %s", who, len(got), len(want), pks(got), pks(want))
	}
	for i := range got {
		if !sameChange(got[i], want[i]) {
			t.Fatalf("%s: change %d is %+v, want %+v\ngot  %s\nwant %s", who, i, got[i], want[i], pks(got), pks(want))
		}
	}
}

// expectPerTopic fails the test unless got holds each change of want once
// and, for each of topics, the changes that have it in want's order. That
// is the order a layer promises: changes with no joined topic in common
// may arrive in another order than they were published in.
func expectPerTopic(t testing.TB, who string, got, want []live.Change, topics ...live.Topic) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d changes, want %d\ngot  %s\nwant %s", who, len(got), len(want), pks(got), pks(want))
	}
	used := make([]bool, len(want))
	for _, g := range got {
		i := slices.IndexFunc(want, func(w live.Change) bool { return sameChange(g, w) })
		for i >= 0 && used[i] {
			j := slices.IndexFunc(want[i+1:], func(w live.Change) bool { return sameChange(g, w) })
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		if i < 0 {
			t.Fatalf("%s: got %+v, which is not due (or twice)\ngot  %s\nwant %s", who, g, pks(got), pks(want))
		}
		used[i] = true
	}
	for _, topic := range topics {
		has := func(c live.Change) bool { return slices.Contains(c.Topics(), topic) }
		var g, w []live.Change
		for _, c := range got {
			if has(c) {
				g = append(g, c)
			}
		}
		for _, c := range want {
			if has(c) {
				w = append(w, c)
			}
		}
		expect(t, who+", topic "+topic.String(), g, w)
	}
}

func pks(cs []live.Change) string {
	s := ""
	for i, c := range cs {
		if i == 20 {
			return s + " ..."
		}
		s += " " + c.PK
	}
	return s
}

func receive(t testing.TB, l live.Layer, name string) (live.Receiver, *Collector) {
	t.Helper()
	c := NewCollector(t, name)
	r, err := l.Receive(context.Background(), c.Deliver)
	if err != nil {
		t.Fatalf("Receive: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r, c
}

func join(t testing.TB, r live.Receiver, topics ...live.Topic) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := r.Join(ctx, topics...); err != nil {
		t.Fatalf("Join(%v): %v", topics, err)
	}
}

func leave(t testing.TB, r live.Receiver, topics ...live.Topic) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := r.Leave(ctx, topics...); err != nil {
		t.Fatalf("Leave(%v): %v", topics, err)
	}
}

func publish(t testing.TB, l live.Layer, changes ...live.Change) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Wait)
	defer cancel()
	if err := l.Publish(ctx, changes); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

func testPublishReceive(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	join(t, r, pk(m, "1"))
	want := []live.Change{
		{Seq: 7, Model: m, PK: "1", Op: live.OpInsert, New: map[string]string{"list_id": "14", "empty": ""}},
		{Seq: 8, Model: m, PK: "1", Op: live.OpUpdate, Old: map[string]string{"list_id": "14", "empty": ""}, New: map[string]string{"list_id": "15", "empty": ""}},
		{Model: m, PK: "1", Op: live.OpDelete, Old: map[string]string{"list_id": "15", "empty": ""}},
		{Seq: 1 << 62, Model: m, PK: "1", Op: live.OpUpdate, Old: map[string]string{}, New: map[string]string{}},
	}
	publish(t, l, want[:2]...)
	publish(t, l, want[2:]...)
	expect(t, "receiver", c.WaitChanges(len(want)), want)
}

func testNotJoined(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	join(t, r, pk(m, "marker"))
	marker := insert(m, "marker", nil)
	publish(t, l, insert(m, "other", map[string]string{"list_id": "1"}))
	publish(t, l, insert(m+"x", "marker", nil), marker)
	expect(t, "receiver", c.Settle(marker), []live.Change{marker})
}

func testCountedJoins(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	x := group(m, "list_id", "14")
	join(t, r, pk(m, "marker"))
	join(t, r, x)
	join(t, r, x, x)
	leave(t, r, x, x)
	first := insert(m, "1", map[string]string{"list_id": "14"})
	publish(t, l, first)
	expect(t, "after 3 joins and 2 leaves", c.WaitChanges(1), []live.Change{first})

	leave(t, r, x)
	// A leave of a topic not joined is ignored, and does not make a later
	// join count less.
	leave(t, r, x, group(m, "list_id", "99"))
	c.Reset()
	marker := insert(m, "marker", nil)
	publish(t, l, insert(m, "2", map[string]string{"list_id": "14"}), marker)
	expect(t, "after the last leave", c.Settle(marker), []live.Change{marker})

	join(t, r, x)
	c.Reset()
	third := insert(m, "3", map[string]string{"list_id": "14"})
	publish(t, l, third)
	expect(t, "joined again", c.WaitChanges(1), []live.Change{third})
}

func testDedupe(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	join(t, r, pk(m, "5"), group(m, "list_id", "14"), group(m, "list_id", "15"), pk(m, "marker"))
	move := live.Change{Model: m, PK: "5", Op: live.OpUpdate, Old: map[string]string{"list_id": "14"}, New: map[string]string{"list_id": "15"}}
	marker := insert(m, "marker", nil)
	publish(t, l, move)
	publish(t, l, marker)
	expect(t, "receiver", c.Settle(marker), []live.Change{move, marker})
}

func testModelTopic(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	join(t, r, live.Topic{Model: m}, pk(m, "1"))
	want := []live.Change{insert(m, "1", map[string]string{"list_id": "1"}), insert(m, "2", nil)}
	publish(t, l, want...)
	marker := insert(m, "marker", nil)
	publish(t, l, marker)
	expect(t, "receiver", c.Settle(marker), append(want, marker))
}

// testUnknownOldValues checks that a change whose old group values are
// unknown reaches a receiver that joined its model's AnyGroup topic, and
// only then: the hub joins it so that the scopes holding the row learn
// that it left.
func testUnknownOldValues(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	join(t, r, live.Topic{Model: m, Field: live.AnyGroup}, group(m, "list_id", "9"))
	moved := live.Change{Model: m, PK: "1", Op: live.OpUpdate, New: map[string]string{"list_id": "2"}}
	known := live.Change{Model: m, PK: "2", Op: live.OpUpdate, Old: map[string]string{"list_id": "1"}, New: map[string]string{"list_id": "2"}}
	deleted := live.Change{Model: m, PK: "3", Op: live.OpDelete}
	publish(t, l, moved, known, deleted)
	marker := insert(m, "marker", map[string]string{"list_id": "9"})
	publish(t, l, marker)
	expect(t, "receiver", c.Settle(marker), []live.Change{moved, deleted, marker})
}

// testOrder publishes 1,000 changes in batches of varied sizes, some to
// topics joined, some not, some moving between groups, and expects exactly
// the joined ones in order.
func testOrder(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	joined := []live.Topic{group(m, "list_id", "0"), group(m, "list_id", "1"), pk(m, "3"), pk(m, "10")}
	join(t, r, joined...)
	var all, want []live.Change
	for i := range 1000 {
		ch := live.Change{Seq: uint64(i + 1), Model: m, PK: strconv.Itoa(i % 17), Op: live.OpUpdate,
			Old: map[string]string{"list_id": strconv.Itoa(i % 5)},
			New: map[string]string{"list_id": strconv.Itoa((i + i/7) % 5)}}
		all = append(all, ch)
		for _, tp := range ch.Topics() {
			if slices.Contains(joined, tp) {
				want = append(want, ch)
				break
			}
		}
	}
	for start, size := 0, 1; start < len(all); start, size = start+size, size%97+13 {
		publish(t, l, all[start:min(start+size, len(all))]...)
	}
	got := c.WaitChanges(len(want))
	expectPerTopic(t, "receiver", got, want, joined...)
	marker := insert(m, "marker", map[string]string{"list_id": "0"})
	publish(t, l, marker)
	expectPerTopic(t, "receiver", c.Settle(marker), append(want, marker), joined...)
}

// testOrderAcrossTopics: within one batch topic A holds changes 1, 3 and
// 5, topic B changes 2 to 5. A process that joined both must deliver 1
// before 3 and 2 before 3, whichever topic's message comes first.
func testOrderAcrossTopics(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	a, b := group(m, "a", "x"), group(m, "b", "x")
	join(t, r, a, b)
	var want []live.Change
	for round := range 50 {
		batch := []live.Change{
			{Seq: 1, Model: m, PK: "1-" + strconv.Itoa(round), Op: live.OpInsert, New: map[string]string{"a": "x"}},
			{Seq: 2, Model: m, PK: "2-" + strconv.Itoa(round), Op: live.OpInsert, New: map[string]string{"b": "x"}},
			{Seq: 3, Model: m, PK: "3-" + strconv.Itoa(round), Op: live.OpInsert, New: map[string]string{"a": "x", "b": "x"}},
			{Seq: 4, Model: m, PK: "4-" + strconv.Itoa(round), Op: live.OpInsert, New: map[string]string{"b": "x"}},
			{Seq: 5, Model: m, PK: "5-" + strconv.Itoa(round), Op: live.OpUpdate, Old: map[string]string{"a": "x"}, New: map[string]string{"b": "x"}},
		}
		publish(t, l, batch...)
		want = append(want, batch...)
	}
	expectPerTopic(t, "receiver", c.WaitChanges(len(want)), want, a, b)
}

// testTwoProcesses: two Layer values on one broker, as two server
// processes; each receives every change once, whichever published it.
func testTwoProcesses(t *testing.T, l1, l2 live.Layer) {
	m := model(t)
	r1, c1 := receive(t, l1, "process 1")
	r2, c2 := receive(t, l2, "process 2")
	all := group(m, "list_id", "14")
	join(t, r1, all, pk(m, "1"))
	join(t, r2, all)
	var want []live.Change
	for i := range 20 {
		ch := insert(m, strconv.Itoa(i), map[string]string{"list_id": "14"})
		want = append(want, ch)
		publish(t, []live.Layer{l1, l2}[i/10], ch)
	}
	marker := insert(m, "marker", map[string]string{"list_id": "14"})
	publish(t, l2, marker)
	want = append(want, marker)
	expect(t, "process 1", c1.Settle(marker), want)
	expect(t, "process 2", c2.Settle(marker), want)
}

// testTwoReceivers: receivers of one Layer value get the changes of their
// own topics, each once.
func testTwoReceivers(t *testing.T, l live.Layer) {
	m := model(t)
	r1, c1 := receive(t, l, "receiver 1")
	r2, c2 := receive(t, l, "receiver 2")
	join(t, r1, group(m, "list_id", "1"), pk(m, "marker"))
	join(t, r2, group(m, "list_id", "2"), pk(m, "a"), pk(m, "marker"))
	a := insert(m, "a", map[string]string{"list_id": "1"})
	b := insert(m, "b", map[string]string{"list_id": "2"})
	cc := insert(m, "c", map[string]string{"list_id": "3"})
	marker := insert(m, "marker", nil)
	publish(t, l, a, b, cc, marker)
	expectPerTopic(t, "receiver 1", c1.Settle(marker), []live.Change{a, marker})
	expectPerTopic(t, "receiver 2", c2.Settle(marker), []live.Change{a, b, marker}, group(m, "list_id", "2"), pk(m, "a"))
	// One receiver leaving a topic the other still holds changes nothing
	// for the other.
	leave(t, r1, pk(m, "marker"))
	c1.Reset()
	c2.Reset()
	publish(t, l, a, marker)
	expectPerTopic(t, "receiver 2", c2.Settle(marker), []live.Change{a, marker})
	expect(t, "receiver 1", c1.Changes(), []live.Change{a})
}

func testLeaveAll(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	r2, c2 := receive(t, l, "marker receiver")
	topics := []live.Topic{pk(m, "1"), group(m, "list_id", "1"), {Model: m}}
	join(t, r, topics...)
	join(t, r2, pk(m, "marker"))
	leave(t, r, topics...)
	marker := insert(m, "marker", nil)
	publish(t, l, insert(m, "1", map[string]string{"list_id": "1"}), marker)
	c2.Settle(marker)
	expect(t, "receiver", c.Changes(), nil)
}

func testCloseReceiver(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "closed receiver")
	r2, c2 := receive(t, l, "open receiver")
	join(t, r, pk(m, "1"), pk(m, "marker"))
	join(t, r2, pk(m, "marker"))
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	marker := insert(m, "marker", nil)
	publish(t, l, insert(m, "1", nil), marker)
	expect(t, "open receiver", c2.Settle(marker), []live.Change{marker})
	expect(t, "closed receiver", c.Changes(), nil)
}

// testCloseLayer: a layer that is an io.Closer refuses work once closed,
// and closing it twice is harmless.
func testCloseLayer(t *testing.T, newLayer Factory) {
	l := newLayer(t)
	c, ok := l.(io.Closer)
	if !ok {
		t.Skip("the layer has no Close method")
	}
	m := model(t)
	r, _ := receive(t, l, "receiver")
	join(t, r, pk(m, "1"))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Publish(context.Background(), []live.Change{insert(m, "1", nil)}); err == nil {
		t.Error("Publish after Close succeeded")
	}
	if _, err := l.Receive(context.Background(), func(live.Delivery) {}); err == nil {
		t.Error("Receive after Close succeeded")
	}
	if err := r.Join(context.Background(), pk(m, "2")); err == nil {
		t.Error("Join after Close succeeded")
	}
	if err := r.Close(); err != nil {
		t.Errorf("receiver Close after the layer's: %v", err)
	}
}

// testConcurrentPublishers: four publishers at once, over two Layer
// values; every change arrives once and each publisher's in its order.
func testConcurrentPublishers(t *testing.T, l1, l2 live.Layer) {
	m := model(t)
	r, c := receive(t, l1, "receiver")
	join(t, r, live.Topic{Model: m})
	const publishers, each = 4, 100
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := []live.Layer{l1, l2}[p%2]
			for i := 0; i < each; i += 5 {
				var batch []live.Change
				for j := i; j < i+5; j++ {
					batch = append(batch, live.Change{Seq: uint64(j), Model: m, PK: fmt.Sprintf("%d-%d", p, j), Op: live.OpInsert,
						New: map[string]string{"publisher": strconv.Itoa(p)}})
				}
				ctx, cancel := context.WithTimeout(context.Background(), Wait)
				err := l.Publish(ctx, batch)
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Publish: %v", err)
	}
	got := c.WaitChanges(publishers * each)
	next := make(map[string]uint64)
	seen := make(map[string]bool)
	for _, ch := range got {
		if seen[ch.PK] {
			t.Fatalf("change %s delivered twice", ch.PK)
		}
		seen[ch.PK] = true
		p := ch.New["publisher"]
		if ch.Seq != next[p] {
			t.Fatalf("publisher %s: change %d arrived when %d was due", p, ch.Seq, next[p])
		}
		next[p]++
	}
	if len(got) != publishers*each {
		t.Fatalf("got %d changes, want %d", len(got), publishers*each)
	}
}

// testStrangeValues: topic values that no broker would take as names.
func testStrangeValues(t *testing.T, l live.Layer) {
	m := model(t)
	r, c := receive(t, l, "receiver")
	long := string(make([]byte, 300)) + "x"
	values := []string{"", " ", "a.b", "*", ">", "a b\tc\n", "%41", "%", "ü", "日本", long, "~", "a:b", "\x00"}
	var want []live.Change
	var joined []live.Topic
	for _, v := range values {
		joined = append(joined, pk(m, v), group(m, "weird field.*>", v))
	}
	join(t, r, joined...)
	for _, v := range values {
		want = append(want,
			insert(m, v, nil),
			insert(m+"other", v, nil), // another model: not joined
			insert(m, "other", map[string]string{"weird field.*>": v}),
		)
	}
	marker := insert(m, "marker", map[string]string{"weird field.*>": "%"})
	publish(t, l, append(want, marker)...)
	var joinedOnly []live.Change
	for _, ch := range want {
		if ch.Model == m {
			joinedOnly = append(joinedOnly, ch)
		}
	}
	expectPerTopic(t, "receiver", c.Settle(marker), append(joinedOnly, marker), joined...)
}

// CheckGoroutines fails t when it ends if goroutines whose stacks mention
// any of funcs (e.g. "restlive/layer/") are still running once the
// cleanups registered after it have run. Call it first in a test.
func CheckGoroutines(t testing.TB, funcs ...string) {
	t.Helper()
	t.Cleanup(func() {
		deadline := time.Now().Add(Wait)
		for {
			left := goroutinesWith(funcs)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines left running:\n\n%s", len(left), strings.Join(left, "\n\n"))
				return
			}
			// Goroutines that were told to stop do so on their own
			// schedule; nothing to wait on but their absence.
			runtime.Gosched()
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func goroutinesWith(funcs []string) []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var left []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 {
			continue // this goroutine
		}
		for _, f := range funcs {
			if strings.Contains(g, f) {
				left = append(left, g)
				break
			}
		}
	}
	return left
}
