package redis_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/layer/redis"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/layertest"
)

func open(t testing.TB, url string) *redis.Layer {
	t.Helper()
	l, err := redis.New(context.Background(), redis.Config{
		URL:              url,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		MaxReconnectWait: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	return l
}

func TestLayer(t *testing.T) {
	layertest.CheckGoroutines(t, "restlive/layer/")
	srv := testenv.StartRedis(t)
	layertest.Run(t, func(t testing.TB) live.Layer { return open(t, srv.URL) })
}

func TestRecover(t *testing.T) {
	layertest.CheckGoroutines(t, "restlive/layer/")
	srv := testenv.StartRedis(t)
	layertest.Recover(t, func(t testing.TB) live.Layer { return open(t, srv.URL) }, srv.Stop, srv.Start)
}

func TestNewFails(t *testing.T) {
	port := testenv.FreePort(t)
	for _, tc := range []struct {
		url, want string
	}{
		{"redis://127.0.0.1:" + itoa(port) + "/0", "layer/redis: connect to redis://127.0.0.1:" + itoa(port) + "/0: "},
		{"http://127.0.0.1/0", "layer/redis: parse URL http://127.0.0.1/0: "},
		{"redis://user:secret@127.0.0.1:" + itoa(port) + "/0", "layer/redis: connect to redis://user:xxxxx@127.0.0.1:"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l, err := redis.New(ctx, redis.Config{URL: tc.url})
		cancel()
		if err == nil {
			l.Close()
			t.Errorf("New(%q) succeeded", tc.url)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%q) = %q, want it to start with %q", tc.url, err, tc.want)
		}
	}
	if _, err := redis.New(context.Background(), redis.Config{Prefix: "a b"}); err == nil || !strings.Contains(err.Error(), "prefix") {
		t.Errorf("New with a bad prefix = %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSilentServer: a server that stops answering without closing the
// connection is found out by the health ping, and the layer recovers when
// it answers again.
func TestSilentServer(t *testing.T) {
	layertest.CheckGoroutines(t, "restlive/layer/")
	srv := testenv.StartRedis(t)
	logs := make(chan string, 100)
	l, err := redis.New(context.Background(), redis.Config{
		URL:              srv.URL,
		Logger:           slog.New(chanHandler(logs)),
		HealthInterval:   200 * time.Millisecond,
		MaxReconnectWait: 200 * time.Millisecond,
		Timeout:          500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	c := layertest.NewCollector(t, "receiver")
	r, err := l.Receive(context.Background(), c.Deliver)
	if err != nil {
		t.Fatal(err)
	}
	topic := live.Topic{Model: "m", Field: live.PK, Value: "1"}
	if err := r.Join(context.Background(), topic); err != nil {
		t.Fatal(err)
	}

	srv.Pause(t)
	deadline := time.After(layertest.Wait)
	for waiting := true; waiting; {
		select {
		case msg := <-logs:
			waiting = !strings.Contains(msg, "connection lost")
		case <-deadline:
			srv.Resume(t)
			t.Fatal("the layer did not notice that the server fell silent")
		}
	}
	srv.Resume(t)
	c.WaitMissed(topic)
	change := live.Change{Model: "m", PK: "1", Op: live.OpInsert}
	if err := l.Publish(context.Background(), []live.Change{change}); err != nil {
		t.Fatal(err)
	}
	c.WaitChanges(1)
}

// chanHandler sends log messages to a channel, dropping them when full.
type chanHandler chan string

func (h chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h chanHandler) WithGroup(string) slog.Handler            { return h }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h <- r.Message:
	default:
	}
	return nil
}

func BenchmarkLayer(b *testing.B) {
	srv := testenv.StartRedis(b)
	layertest.Benchmark(b, func(t testing.TB) live.Layer { return open(t, srv.URL) })
}
