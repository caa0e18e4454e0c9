package capture

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// discard is a Publisher that counts and drops.
type discard struct {
	mu sync.Mutex
	n  int
}

func (d *discard) Publish(_ context.Context, changes []live.Change) error {
	d.mu.Lock()
	d.n += len(changes)
	d.mu.Unlock()
	return nil
}

// BenchmarkInsert measures single-row autocommit inserts as fast as one
// connection can make them: without capture ("plain"), with the triggers
// installed ("triggers"), and with a reader publishing what they record
// as well ("reader"), which on a 2-core machine competes with the writer.
func BenchmarkInsert(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) *testDB
	}{{"sqlite", openSQLite}, {"postgres", openPostgres}} {
		for _, mode := range []string{"plain", "triggers", "reader"} {
			b.Run(db.name+"/"+mode, func(b *testing.B) {
				d := db.open(b)
				if mode != "plain" {
					d.install(b, tasks)
				}
				if mode == "reader" {
					startReader(b, d, Config{Publisher: &discard{}, Logger: quiet})
				}
				insert := d.q(`INSERT INTO tasks (list_id, title) VALUES (?, 'benchmark')`)
				wal := walPosition(b, d)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					if _, err := d.db.Exec(insert, i%100); err != nil {
						b.Fatal(err)
					}
				}
				if d.dialect == Postgres {
					b.ReportMetric(float64(walPosition(b, d)-wal)/float64(b.N), "WAL-B/op")
				}
			})
		}
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

// BenchmarkLatency writes at a steady 1,000 inserts per second and
// reports the time from the start of each write to its publication, p50,
// p99 and max. On SQLite, "poll" relies on the reader's 5ms poll alone
// and "nudge" nudges it after each write, as an application does after
// its own writes.
func BenchmarkLatency(b *testing.B) {
	for _, tc := range []struct {
		name  string
		open  func(testing.TB) *testDB
		nudge bool
	}{
		{"sqlite/poll", openSQLite, false},
		{"sqlite/nudge", openSQLite, true},
		{"postgres", openPostgres, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := tc.open(b)
			d.install(b, tasks)
			// Space for the ids is allocated before the clock runs.
			const rate = 1000
			n := max(b.N, 1)
			lat := &latencies{start: make([]time.Time, n+1), all: make(chan struct{})}
			r, _ := startReader(b, d, Config{Publisher: lat, Logger: quiet, PollInterval: defaultPoll(d.dialect)})
			insert := d.q(`INSERT INTO tasks (id, list_id) VALUES (?, ?)`)
			tick := time.NewTicker(time.Second / rate)
			defer tick.Stop()
			b.ResetTimer()
			began := time.Now()
			for i := 1; i <= n; i++ {
				<-tick.C
				lat.mu.Lock()
				lat.start[i] = time.Now()
				lat.mu.Unlock()
				if _, err := d.db.Exec(insert, i, i%100); err != nil {
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

func defaultPoll(d Dialect) time.Duration {
	var c Config
	c.setDefaults(d)
	return c.PollInterval
}

// walPosition is PostgreSQL's write-ahead log position in bytes, and 0 on
// SQLite. The log written per insert is what capture adds to replication
// and disk traffic.
func walPosition(b *testing.B, d *testDB) int64 {
	if d.dialect != Postgres {
		return 0
	}
	var n int64
	if err := d.db.QueryRow(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkPrune measures how long pruning takes per deleted row, on a
// SQLite outbox of 10,000 published rows pruned to the newest one.
func BenchmarkPrune(b *testing.B) {
	const rows = 10000
	d := openSQLite(b)
	d.install(b, tasks)
	cfg := Config{Publisher: &discard{}, Logger: quiet}
	cfg.setDefaults(SQLite)
	ctx := context.Background()
	s, err := (&sqliteBackend{db: d.db, cfg: &cfg, owner: "bench"}).lead(ctx)
	if err != nil || s == nil {
		b.Fatalf("lead: %v, %v", s, err)
	}
	defer s.close()
	ss := s.(*sqliteSession)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		d.exec(b, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO restlive_outbox (model, pk, op, new) SELECT 'todolist.Task', i, 'I', '{"list_id":14}' FROM n`, rows)
		d.exec(b, `UPDATE restlive_cursor SET published = (SELECT max(seq) FROM restlive_outbox)`)
		if err := d.db.QueryRow(`SELECT published FROM restlive_cursor`).Scan(&ss.published); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		n, err := s.prune(ctx, time.Hour, 1)
		if err != nil || n < rows-1 {
			b.Fatalf("pruned %d rows: %v", n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
}

// BenchmarkPostgresReadLog makes reads of one change each, as a reader
// idle between writes does, and reports what restlive_reads costs per
// read on disk (table and index, "log-B/read"), next to what the outbox
// costs per change ("outbox-B/change"), and the write-ahead log written
// per read: the write's, and the reader's cursor and log ("WAL-B/op").
func BenchmarkPostgresReadLog(b *testing.B) {
	d := openPostgres(b)
	d.install(b, tasks)
	cfg := Config{Publisher: &discard{}, Logger: quiet}
	cfg.setDefaults(Postgres)
	ctx := context.Background()
	s, err := (&postgresBackend{db: d.db, cfg: &cfg, owner: "bench"}).lead(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	insert := d.q(`INSERT INTO tasks (list_id) VALUES (?)`)
	wal := walPosition(b, d)
	i := 0
	for b.Loop() {
		i++
		if _, err := d.db.Exec(insert, i%100); err != nil {
			b.Fatal(err)
		}
		for {
			rows, err := s.next(ctx, 100)
			if err != nil {
				b.Fatal(err)
			}
			if len(rows) == 0 {
				break
			}
			if err := s.commit(ctx, rows[len(rows)-1].seq); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(walPosition(b, d)-wal)/float64(b.N), "WAL-B/op")
	for _, t := range []struct{ table, metric string }{
		{"restlive_reads", "log-B/read"},
		{"restlive_outbox", "outbox-B/change"},
	} {
		var bytes, rows float64
		d.exec(b, `VACUUM `+t.table)
		if err := d.db.QueryRow(`SELECT pg_total_relation_size('`+t.table+`'), (SELECT count(*) FROM `+t.table+`)`).
			Scan(&bytes, &rows); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(bytes/max(rows, 1), t.metric)
	}
}
