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
