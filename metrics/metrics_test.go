package metrics_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/glebarez/go-sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/metrics"
)

// The capture reader's lag grows while it is stopped and writes go on,
// and falls to zero once it runs again; the leader gauge and the
// published counter follow it.
func TestReaderLag(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "lag.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := db.Exec(`CREATE TABLE tasks (id INTEGER PRIMARY KEY, list_id INTEGER)`); err != nil {
		t.Fatal(err)
	}
	table := capture.Table{Model: "todolist.Task", Table: "tasks", PK: "id", Fields: []string{"list_id"}}
	if err := capture.Install(ctx, db, capture.SQLite, table); err != nil {
		t.Fatal(err)
	}
	reader, err := capture.NewReader(db, capture.SQLite, capture.Config{Publisher: live.NewMemoryLayer()})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchReader(reader); err != nil {
		t.Fatal(err)
	}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			if _, err := db.Exec(`INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The reader is stopped: the lag grows with the writes.
	write(0, 5)
	if got := testenv.Gather(t, reg); got["restlive_capture_lag_rows"] != 5 || got["restlive_capture_leader"] != 0 {
		t.Fatalf("after 5 writes, stopped: %v", got)
	}
	write(5, 12)
	if got := testenv.Gather(t, reg)["restlive_capture_lag_rows"]; got != 12 {
		t.Fatalf("lag %v after 12 writes, want 12", got)
	}
	// Running, it catches up.
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); reader.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := testenv.Gather(t, reg)
		if got["restlive_capture_lag_rows"] == 0 && got["restlive_capture_lag_seconds"] == 0 &&
			got["restlive_capture_published_total"] == 12 && got["restlive_capture_leader"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader runs, and still: %v", got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	<-done
	if got := testenv.Gather(t, reg)["restlive_capture_leader"]; got != 0 {
		t.Fatalf("leader %v after the reader stopped", got)
	}

	// With the database gone, the lag cannot be read: /metrics answers
	// with everything else.
	db.Close()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).
		ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, "restlive_capture_published_total 12") || strings.Contains(body, "restlive_capture_lag_rows") {
		t.Fatalf("/metrics with the database closed: %d\n%s", rec.Code, body)
	}
}

// Events become counters and histograms with bounded labels.
func TestObserve(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []live.Event{
		{Kind: live.EventConnected},
		{Kind: live.EventDisconnected, Reason: live.ReasonSlowConsumer},
		{Kind: live.EventFrameRefused, Code: 429},
		{Kind: live.EventBroadcast, Model: "a.B", Action: "UPDATED", N: 7},
		{Kind: live.EventRead, Model: "a.B", Read: live.ReadFetch, Duration: time.Millisecond, Failed: true},
		{Kind: live.EventResync, Cause: live.CauseBroker, N: 3},
	} {
		m.Observe(e)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, s := range f.Metric {
			key := f.GetName()
			for _, l := range s.Label {
				key += fmt.Sprintf(",%s=%s", l.GetName(), l.GetValue())
			}
			switch {
			case s.Counter != nil:
				got[key] = s.Counter.GetValue()
			case s.Histogram != nil:
				got[key] = float64(s.Histogram.GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"restlive_connections_opened_total":                          1,
		"restlive_connections_closed_total,reason=slow_consumer":     1,
		"restlive_frames_refused_total,code=429":                     1,
		"restlive_broadcasts_total,action=UPDATED,model=a.B":         7,
		"restlive_hub_reads_total,model=a.B,read=fetch,result=error": 1,
		"restlive_hub_read_seconds,read=fetch":                       1,
		"restlive_hub_resyncs_total,cause=broker":                    3,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}
