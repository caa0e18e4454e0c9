package nats_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
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
