package pgcapture

import (
	"context"
	"testing"

	"github.com/restlive/restlive/capture/internal/capturetest"
)

func TestConformance(t *testing.T) { capturetest.Run(t, open) }

func BenchmarkInsert(b *testing.B) { capturetest.BenchInsert(b, open) }

func BenchmarkLatency(b *testing.B) { capturetest.BenchLatency(b, open) }

// BenchmarkReadLog makes reads of one change each, as a reader
// idle between writes does, and reports what restlive_reads costs per
// read on disk (table and index, "log-B/read"), next to what the outbox
// costs per change ("outbox-B/change"), and the write-ahead log written
// per read: the write's, and the reader's cursor and log ("WAL-B/op").
func BenchmarkReadLog(b *testing.B) {
	d := open(b)
	d.Install(b, capturetest.Tasks)
	ctx := context.Background()
	s := d.Lead(b, "bench")
	insert := d.Q(`INSERT INTO tasks (list_id) VALUES (?)`)
	wal := capturetest.WALPosition(b, d)
	i := 0
	for b.Loop() {
		i++
		if _, err := d.DB.Exec(insert, i%100); err != nil {
			b.Fatal(err)
		}
		for {
			rows, err := s.Next(ctx, 100)
			if err != nil {
				b.Fatal(err)
			}
			if len(rows) == 0 {
				break
			}
			if err := s.Commit(ctx, rows[len(rows)-1].Seq); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(capturetest.WALPosition(b, d)-wal)/float64(b.N), "WAL-B/op")
	for _, t := range []struct{ table, metric string }{
		{"restlive_reads", "log-B/read"},
		{"restlive_outbox", "outbox-B/change"},
	} {
		var bytes, rows float64
		d.Exec(b, `VACUUM `+t.table)
		if err := d.DB.QueryRow(`SELECT pg_total_relation_size('`+t.table+`'), (SELECT count(*) FROM `+t.table+`)`).
			Scan(&bytes, &rows); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(bytes/max(rows, 1), t.metric)
	}
}
