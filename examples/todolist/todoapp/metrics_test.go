package todoapp

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/restlive/restlive/live"
)

// scrape reads the server's /metrics with the Prometheus text parser, as
// a sample name with its labels ("name{a=b,c=d}") to its value.
func (s *server) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	res, err := http.Get(s.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = value(m)
		}
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// TestMetrics scrapes /metrics around a scripted session (a client
// connects, subscribes, receives broadcasts, sends a bad frame, and a
// second one is closed as too slow) and checks that each metric moved by
// exactly what happened.
func TestMetrics(t *testing.T) {
	s := startWith(t, filepath.Join(t.TempDir(), "todolist.db"), func(c *Config) {
		c.ConfigureLive = func(lc *live.Config) { lc.SendQueueBytes = 64 << 10 }
	})
	alice := s.register(t, "alice")
	var l List
	s.must(t, 201, "POST", "/api/lists/", alice, `{"name":"watched","public":true}`).decode(t, &l)
	// The list's creation published first, so that it counts before.
	before := s.scrape(t)
	for deadline := time.Now().Add(10 * time.Second); before["restlive_capture_lag_rows"] != 0 || before["restlive_capture_published_total"] < 1; before = s.scrape(t) {
		if time.Now().After(deadline) {
			t.Fatalf("the reader does not catch up: %v", before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	delta := func(after map[string]float64, key string) float64 { return after[key] - before[key] }

	c := s.connect(t, nil)
	subscribe(t, c, groupSub("tasks", l.ID, nil))
	for i := range 3 {
		s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"t%d","list":%d}`, i, l.ID))
		if f := receive(t, c); f.Action != "CREATED" {
			t.Fatalf("received %s", f)
		}
	}
	c.Send("{")
	if f := receive(t, c); f.Code != 400 {
		t.Fatalf("received %s", f)
	}
	after := s.scrape(t)
	for key, want := range map[string]float64{
		"restlive_connections_opened_total":                             1,
		"restlive_connections_open":                                     1,
		"restlive_frames_received_total":                                2, // the subscribe, the bad frame
		"restlive_frames_refused_total{code=400}":                       1,
		`restlive_broadcasts_total{action=CREATED,model=todolist.Task}`: 3,
		"restlive_subscriptions{model=todolist.Task}":                   1,
		"restlive_scopes{model=todolist.Task}":                          1,
		"restlive_instances{model=todolist.Task}":                       3,
		"restlive_hub_changes_total":                                    3,
		"restlive_capture_leader":                                       0, // 1 before and after
	} {
		if got := delta(after, key); got != want {
			t.Errorf("%s moved by %v, want %v", key, got, want)
		}
	}
	if after["restlive_capture_leader"] != 1 || after["restlive_capture_published_total"] < 4 || after["restlive_write_bytes_total"] <= before["restlive_write_bytes_total"] {
		t.Errorf("capture and writes: leader %v, published %v, bytes %v → %v", after["restlive_capture_leader"],
			after["restlive_capture_published_total"], before["restlive_write_bytes_total"], after["restlive_write_bytes_total"])
	}

	// A client that does not read, among 64 KiB broadcasts, is closed as
	// a slow consumer.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, s.ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	// Many subscriptions to the list, so that each write sends it many
	// frames and fills the socket's buffers soon.
	for i := range 300 {
		slow.Write(ctx, websocket.MessageText, fmt.Appendf(nil, `{"request_id": %d, "model": "todolist.Task", "group_by": "list_id", "value": %d}`, i, l.ID))
	}
	var task Task
	s.must(t, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"%s","list":%d}`, strings.Repeat("x", 900), l.ID)).decode(t, &task)
	receive(t, c)
	for i := 0; s.app.router.Stats().Connections == 2; i++ {
		if i == 500 {
			t.Fatal("a client that does not read was never closed")
		}
		s.must(t, 200, "PATCH", fmt.Sprintf("/api/tasks/%d/", task.ID), alice, fmt.Sprintf(`{"text":"%d %s"}`, i, strings.Repeat("x", 900)))
		receive(t, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.scrape(t)["restlive_connections_closed_total{reason=slow_consumer}"]-before["restlive_connections_closed_total{reason=slow_consumer}"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("restlive_connections_closed_total{reason=slow_consumer} did not move by 1")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.logs.waitFor(t, "reason=slow_consumer", 10*time.Second)
}

// /healthz answers while the process serves; /readyz checks the database.
func TestHealth(t *testing.T) {
	s := startSQLite(t)
	for _, path := range []string{"/healthz", "/readyz"} {
		if res := s.do(t, "GET", path, nil, ""); res.code != 200 {
			t.Errorf("%s: %d %s", path, res.code, res.body)
		}
	}
	s.app.sqlDB.Close()
	if res := s.do(t, "GET", "/readyz", nil, ""); res.code != 503 || !strings.Contains(res.body, "database") {
		t.Errorf("/readyz with the database closed: %d %s, want 503", res.code, res.body)
	}
}
