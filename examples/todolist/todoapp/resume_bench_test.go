package todoapp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// BenchmarkResume measures what it costs to bring 1,000 clients of a
// 1,000-task list up to date after 100 writes made while they were away:
// resuming their subscriptions from their offsets, against refetching the
// list over REST (and subscribing again), and a first subscription with a
// snapshot against a REST GET of the same list.
//
//	go test -run '^$' -bench Resume -benchtime 1x ./examples/todolist/todoapp/
func BenchmarkResume(b *testing.B) {
	const clients, tasks, writes = 1000, 1000, 100
	s := startWith(b, filepath.Join(b.TempDir(), "todolist.db"), func(c *Config) { c.LoginRate = -1 })
	alice := s.register(b, "alice")
	var list List
	s.must(b, 201, "POST", "/api/lists/", alice, `{"name":"big","public":true}`).decode(b, &list)
	rows := make([]Task, tasks)
	for i := range rows {
		rows[i] = Task{Text: fmt.Sprintf("task %d: %s", i, strings.Repeat("x", 180)), ListID: list.ID}
	}
	if err := s.app.db.CreateInBatches(rows, 200).Error; err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	subscribeMsg := fmt.Sprintf(`{"request_id": 1, "model": "todolist.Task", "group_by": "list_id", "value": %d, "snapshot": true%%s}`, list.ID)

	// subscribeAll opens clients WebSockets, subscribes each with since
	// (none: a snapshot), reads up to "subscribed" and returns the
	// offsets, the bytes received and whether each resumed.
	subscribeAll := func(since []string) (offsets []string, bytes int64, resumed int64, took time.Duration) {
		offsets = make([]string, clients)
		var n atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		sem := make(chan struct{}, 64)
		for i := range clients {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				ws, _, err := websocket.Dial(ctx, s.ws, nil)
				if err != nil {
					b.Error(err)
					return
				}
				defer ws.CloseNow()
				ws.SetReadLimit(-1)
				extra := ""
				if since != nil {
					extra = fmt.Sprintf(`, "since": %q`, since[i])
				}
				ws.Write(ctx, websocket.MessageText, fmt.Appendf(nil, subscribeMsg, extra))
				for {
					_, msg, err := ws.Read(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					n.Add(int64(len(msg)))
					var f frame
					if err := jsonUnmarshal(msg, &f); err != nil {
						b.Error(err)
						return
					}
					if f.Type == "subscribed" {
						offsets[i] = f.Offset
						if f.Resumed != nil && *f.Resumed {
							atomic.AddInt64(&resumed, 1)
						}
						return
					}
				}
			}()
		}
		wg.Wait()
		return offsets, n.Load(), resumed, time.Since(start)
	}
	refetchAll := func() (bytes int64, took time.Duration) {
		var n atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		sem := make(chan struct{}, 64)
		for range clients {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				res, err := http.Get(fmt.Sprintf("%s/api/tasks/?list=%d&limit=%d", s.url, list.ID, tasks))
				if err != nil {
					b.Error(err)
					return
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				n.Add(int64(len(body)))
			}()
		}
		wg.Wait()
		return n.Load(), time.Since(start)
	}

	for b.Loop() {
		offsets, snapBytes, _, snapTook := subscribeAll(nil)
		getBytes, getTook := refetchAll()
		// 100 writes while every client is away: edits, creations,
		// deletions, a bulk update.
		for i := range writes {
			switch i % 4 {
			case 0, 1:
				s.must(b, 200, "PATCH", fmt.Sprintf("/api/tasks/%d/", rows[i].ID), alice, fmt.Sprintf(`{"text":"edit %d"}`, i))
			case 2:
				s.must(b, 201, "POST", "/api/tasks/", alice, fmt.Sprintf(`{"text":"new %d","list":%d}`, i, list.ID))
			case 3:
				s.must(b, 204, "DELETE", fmt.Sprintf("/api/tasks/%d/", rows[i].ID), alice, "")
			}
		}
		_, resumeBytes, resumed, resumeTook := subscribeAll(offsets)
		b.ReportMetric(float64(snapBytes)/clients, "snapshot-B/client")
		b.ReportMetric(float64(getBytes)/clients, "GET-B/client")
		b.ReportMetric(float64(resumeBytes)/clients, "resume-B/client")
		b.ReportMetric(snapTook.Seconds(), "snapshot-s/1000")
		b.ReportMetric(getTook.Seconds(), "GET-s/1000")
		b.ReportMetric(resumeTook.Seconds(), "resume-s/1000")
		b.ReportMetric(float64(resumed), "resumed")
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
