package layertest

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restlive/restlive/live"
)

// Benchmark measures a layer with two Layer values, as two processes: one
// publishes, the other receives.
//
//   - latency: one change at a time, from the start of Publish to its
//     delivery; reports p50-µs and p99-µs.
//   - throughput: batches of 100 changes to one list, pk and model topics,
//     as fast as they go; reports changes/s.
func Benchmark(b *testing.B, newLayer Factory) {
	b.Run("latency", func(b *testing.B) {
		pub, sub := opener(b, newLayer), opener(b, newLayer)
		m := model(b)
		got := make(chan struct{}, 1)
		r, err := sub.Receive(context.Background(), func(d live.Delivery) {
			for range d.Changes {
				got <- struct{}{}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		join(b, r, group(m, "list_id", "1"))
		change := insert(m, "1", map[string]string{"list_id": "1"})
		ctx := context.Background()
		samples := make([]time.Duration, 0, 1024)
		b.ReportAllocs()
		for b.Loop() {
			start := time.Now()
			if err := pub.Publish(ctx, []live.Change{change}); err != nil {
				b.Fatal(err)
			}
			wait(b, got)
			samples = append(samples, time.Since(start))
		}
		slices.Sort(samples)
		b.ReportMetric(float64(samples[len(samples)/2].Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(samples[len(samples)*99/100].Nanoseconds())/1e3, "p99-µs")
	})
	b.Run("throughput", func(b *testing.B) {
		pub, sub := opener(b, newLayer), opener(b, newLayer)
		m := model(b)
		got := make(chan struct{}, 1)
		var received int // only deliver touches it: its calls never overlap
		var want atomic.Int64
		r, err := sub.Receive(context.Background(), func(d live.Delivery) {
			received += len(d.Changes)
			if int64(received) >= want.Load() {
				select {
				case got <- struct{}{}:
				default:
				}
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		join(b, r, group(m, "list_id", "1"))
		const size = 100
		batch := make([]live.Change, size)
		for i := range batch {
			batch[i] = live.Change{Seq: uint64(i), Model: m, PK: strconv.Itoa(i), Op: live.OpUpdate,
				Old: map[string]string{"list_id": "1"}, New: map[string]string{"list_id": "1"}}
		}
		ctx := context.Background()
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			want.Store(int64((n + 1) * size))
			if err := pub.Publish(ctx, batch); err != nil {
				b.Fatal(err)
			}
			n++
			if n%10 == 0 {
				// Bounded in flight: wait for the receiver every ten
				// batches, as a capture that publishes on commit would be
				// paced by its database.
				wait(b, got)
			}
		}
		if n%10 != 0 {
			wait(b, got)
		}
		b.ReportMetric(float64(n*size)/b.Elapsed().Seconds(), "changes/s")
	})
}

func wait(b *testing.B, got chan struct{}) {
	select {
	case <-got:
	case <-time.After(Wait):
		b.Fatal("no delivery")
	}
}
