package capturetest

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/live"
)

// Discard is a live.Publisher that counts and drops.
type Discard struct {
	mu sync.Mutex
	n  int
}

func (d *Discard) Publish(_ context.Context, changes []live.Change) error {
	d.mu.Lock()
	d.n += len(changes)
	d.mu.Unlock()
	return nil
}

// BenchInsert measures single-row autocommit inserts as fast as one
// connection can make them: without capture ("plain"), with capture
// installed ("installed": the triggers, or the publication and the slot),
// and with a reader publishing what it captures as well ("reader"),
// which on a 2-core machine competes with the writer.
func BenchInsert(b *testing.B, open Opener) {
	for _, mode := range []string{"plain", "installed", "reader"} {
		b.Run(mode, func(b *testing.B) {
			d := open(b)
			if mode != "plain" {
				d.Install(b, Tasks)
			}
			if mode == "reader" {
				StartReader(b, d, capture.Config{Publisher: &Discard{}, Logger: Quiet})
			}
			insert := d.Q(`INSERT INTO tasks (list_id, title) VALUES (?, 'benchmark')`)
			wal := WALPosition(b, d)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if _, err := d.DB.Exec(insert, i%100); err != nil {
					b.Fatal(err)
				}
			}
			if d.Postgres() {
				b.ReportMetric(float64(WALPosition(b, d)-wal)/float64(b.N), "WAL-B/op")
			}
		})
	}
}

// latencies is a Publisher that records how long after its write began
// each change was published.
type latencies struct {
	mu    sync.Mutex
	start []time.Time
	took  []time.Duration
	all   chan struct{}
}

func (l *latencies) Publish(_ context.Context, changes []live.Change) error {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range changes {
		i, _ := strconv.Atoi(c.PK)
		l.took = append(l.took, now.Sub(l.start[i]))
		if len(l.took) == len(l.start)-1 {
			close(l.all)
		}
	}
	return nil
}

// BenchLatency writes at a steady 1,000 inserts per second and
// reports the time from the start of each write to its publication, p50,
// p99 and max. "poll" relies on the reader being woken by the database
// alone (on SQLite, its 5ms poll), and "nudge" nudges it after each
// write, as an application on SQLite does after its own writes.
func BenchLatency(b *testing.B, open Opener) {
	for _, tc := range []struct {
		name  string
		nudge bool
	}{{"poll", false}, {"nudge", true}} {
		b.Run(tc.name, func(b *testing.B) {
			d := open(b)
			if tc.nudge && d.Postgres() {
				b.Skip("PostgreSQL's triggers wake the reader themselves")
			}
			d.Install(b, Tasks)
			// Space for the ids is allocated before the clock runs.
			const rate = 1000
			n := max(b.N, 1)
			lat := &latencies{start: make([]time.Time, n+1), all: make(chan struct{})}
			r, _ := StartReader(b, d, capture.Config{Publisher: lat, Logger: Quiet, PollInterval: defaultPoll(d.Dialect)})
			insert := d.Q(`INSERT INTO tasks (id, list_id) VALUES (?, ?)`)
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			b.ResetTimer()
			began := time.Now()
			for i := 1; i <= n; i++ {
				<-tick.C
				lat.mu.Lock()
				lat.start[i] = time.Now()
				lat.mu.Unlock()
				if _, err := d.DB.Exec(insert, i, i%100); err != nil {
					b.Fatal(err)
				}
				if tc.nudge {
					r.Nudge()
				}
			}
			select {
			case <-lat.all:
			case <-time.After(30 * time.Second):
				b.Fatalf("only %d of %d changes published", len(lat.took), n)
			}
			elapsed := time.Since(began)
			b.StopTimer()
			lat.mu.Lock()
			took := slices.Clone(lat.took)
			lat.mu.Unlock()
			slices.Sort(took)
			pct := func(p float64) float64 {
				return float64(took[min(len(took)-1, int(p*float64(len(took))))]) / float64(time.Millisecond)
			}
			b.ReportMetric(float64(n)/elapsed.Seconds(), "writes/s")
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(pct(1), "max-ms")
		})
	}
}

func defaultPoll(d capture.Dialect) time.Duration { return d.Defaults().PollInterval }

// WALPosition is PostgreSQL's write-ahead log position in bytes, and 0 on
// SQLite. The log written per insert is what capture adds to replication
// and disk traffic.
func WALPosition(b *testing.B, d *DB) int64 {
	if !d.Postgres() {
		return 0
	}
	var n int64
	if err := d.DB.QueryRow(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
