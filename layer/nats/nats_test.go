package nats_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/layer/nats"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/layertest"
)

func open(t testing.TB, url string) *nats.Layer {
	t.Helper()
	l, err := nats.New(context.Background(), nats.Config{
		URL:           url,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		ReconnectWait: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("nats.New: %v", err)
	}
	return l
}

func TestLayer(t *testing.T) {
	layertest.CheckGoroutines(t, "restlive/layer/")
	srv := testenv.StartNATS(t)
	layertest.Run(t, func(t testing.TB) live.Layer { return open(t, srv.URL) })
}

func TestRecover(t *testing.T) {
	layertest.CheckGoroutines(t, "restlive/layer/")
	srv := testenv.StartNATS(t)
	layertest.Recover(t, func(t testing.TB) live.Layer { return open(t, srv.URL) }, srv.Stop, srv.Start)
}

func TestNewFails(t *testing.T) {
	port := strconv.Itoa(testenv.FreePort(t))
	for _, tc := range []struct {
		url, want string
	}{
		{"nats://127.0.0.1:" + port, "layer/nats: connect to nats://127.0.0.1:" + port + ": "},
		{"nats://user:secret@127.0.0.1:" + port, "layer/nats: connect to nats://user:xxxxx@127.0.0.1:" + port + ": "},
		{"nats://tok3n@127.0.0.1:" + port, "layer/nats: connect to nats://xxxxx@127.0.0.1:" + port + ": "},
		{"nats://127.0.0.1:" + port + ",nats://127.0.0.1:" + port, "layer/nats: connect to nats://127.0.0.1:" + port + ",nats://127.0.0.1:" + port + ": "},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l, err := nats.New(ctx, nats.Config{URL: tc.url})
		cancel()
		if err == nil {
			l.Close()
			t.Errorf("New(%q) succeeded", tc.url)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "tok3n") {
			t.Errorf("New(%q) = %q, want it to start with %q", tc.url, err, tc.want)
		}
	}
	if _, err := nats.New(context.Background(), nats.Config{Prefix: "a.*"}); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("New with a bad prefix = %v", err)
	}
}

func BenchmarkLayer(b *testing.B) {
	srv := testenv.StartNATS(b)
	layertest.Benchmark(b, func(t testing.TB) live.Layer { return open(t, srv.URL) })
}

// TestSlowReceiver: a receiver that falls far behind makes NATS drop
// messages; its topic is then reported Missed, and delivery goes on.
func TestSlowReceiver(t *testing.T) {
	layertest.CheckGoroutines(t, "restlive/layer/")
	srv := testenv.StartNATS(t)
	l, err := nats.New(context.Background(), nats.Config{
		URL:        srv.URL,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		BufferSize: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c := layertest.NewCollector(t, "receiver")
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)
	r, err := l.Receive(context.Background(), func(d live.Delivery) {
		<-release
		c.Deliver(d)
	})
	if err != nil {
		t.Fatal(err)
	}
	topic := live.Topic{Model: "m", Field: "list_id", Value: "1"}
	if err := r.Join(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	// More single-change batches than the layer queues for its receivers
	// plus the one message NATS may buffer.
	for i := range 1200 {
		change := live.Change{Seq: uint64(i), Model: "m", PK: strconv.Itoa(i), Op: live.OpInsert, New: map[string]string{"list_id": "1"}}
		if err := l.Publish(context.Background(), []live.Change{change}); err != nil {
			t.Fatal(err)
		}
	}
	unblock()
	c.WaitMissed(topic)
	if n := len(c.Changes()); n >= 1200 {
		t.Fatalf("all %d changes arrived: nothing was dropped", n)
	}
	// Delivery goes on: while the backlog drains, a new message may be
	// dropped too, so publish markers until one gets through.
	deadline := time.Now().Add(layertest.Wait)
	for i := 0; ; i++ {
		marker := live.Change{Model: "m", PK: "marker" + strconv.Itoa(i), Op: live.OpInsert, New: map[string]string{"list_id": "1"}}
		if err := l.Publish(context.Background(), []live.Change{marker}); err != nil {
			t.Fatal(err)
		}
		if c.Await(100*time.Millisecond, func(ch []live.Change, _ [][]live.Topic) bool {
			return len(ch) > 0 && ch[len(ch)-1].PK == marker.PK
		}) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no marker arrived in %v after the drop", layertest.Wait)
		}
	}
}
