package pgwal

import (
	"testing"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/internal/capturetest"
)

// open opens a database for capture from the write-ahead log (testenv
// drops its slot with it).
func open(t testing.TB) *capturetest.DB { return openWith(t, New(Config{})) }

func openWith(t testing.TB, dialect *Dialect) *capturetest.DB {
	d := capturetest.OpenPostgres(t, dialect)
	d.Store = capturetest.Store{Cursor: "restlive_wal_cursor", History: "restlive_wal_log"}
	return d
}

func TestConformance(t *testing.T) { capturetest.Run(t, open) }

func BenchmarkInsert(b *testing.B) { capturetest.BenchInsert(b, open) }

func BenchmarkLatency(b *testing.B) { capturetest.BenchLatency(b, open) }

// BenchmarkLog makes writes one at a time, each published before the
// next, as a reader idle between writes sees them: each is a batch of
// its own, the log's worst case. It reports what the log costs on disk
// per change (table and index, "log-B/change") and the write-ahead log
// written per write, the reader's log and cursor included ("WAL-B/op").
func BenchmarkLog(b *testing.B) {
	d := open(b)
	d.Install(b, capturetest.Tasks)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(b, d, capture.Config{Publisher: rec, Logger: capturetest.Quiet})
	insert := d.Q(`INSERT INTO tasks (id, list_id) VALUES (?, ?)`)
	wal := capturetest.WALPosition(b, d)
	i := 0
	for b.Loop() {
		i++
		if _, err := d.DB.Exec(insert, i, i%100); err != nil {
			b.Fatal(err)
		}
		rec.Wait(b, i)
	}
	b.ReportMetric(float64(capturetest.WALPosition(b, d)-wal)/float64(b.N), "WAL-B/op")
	var bytes, changes float64
	d.Exec(b, `VACUUM restlive_wal_log`)
	if err := d.DB.QueryRow(`SELECT pg_total_relation_size('restlive_wal_log'), (SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM restlive_wal_log)`).
		Scan(&bytes, &changes); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(bytes/max(changes, 1), "log-B/change")
}
