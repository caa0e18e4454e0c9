package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/restlive/restlive/internal/testenv"
)

// BenchmarkFanout measures what a broker costs: the todolist command
// without the race detector on a SQLite file, 20 WebSocket clients
// subscribed to one list, and writes through the REST API of the process
// that reads the outbox. The memory layer is one process with all the
// clients; with Redis or NATS, one process (1proc: what the broker's hop
// costs) or two that share the clients (2procs: each reads the changed
// rows from the database for its own clients). Every change goes through
// the broker, to the writing process's own clients too.
//
//	go test -run '^$' -bench Fanout -benchtime 2000x ./examples/todolist/
//
// latency: one write at a time, each a new version of one task, the next
// once every client has it: p50-ms and p99-ms are from the start of the
// PUT to a client's receipt of the broadcast, over all the clients.
// throughput: 8 writers create tasks as fast as the server takes them:
// broadcasts/s is how many the clients receive per second together.
func BenchmarkFanout(b *testing.B) {
	for _, layer := range []struct {
		name    string
		servers int
		broker  func(testing.TB) []string // the command's flags
	}{
		{"memory/1proc", 1, func(testing.TB) []string { return nil }},
		{"redis/1proc", 1, redisFlags},
		{"redis/2procs", 2, redisFlags},
		{"nats/1proc", 1, natsFlags},
		{"nats/2procs", 2, natsFlags},
	} {
		b.Run(layer.name, func(b *testing.B) {
			flags := layer.broker(b)
			bin := command(b, false)
			db := filepath.Join(b.TempDir(), "todolist.db")
			c := &cluster{t: b, rest: newREST(b), obs: newObserver(), dead: make([]atomic.Bool, layer.servers)}
			for i := range layer.servers {
				c.servers = append(c.servers, startServer(b, fmt.Sprintf("server%d", i), bin, append([]string{"-db", db}, flags...)...))
			}
			c.list = setupList(b, c.rest, c.servers[0])
			const nClients = 20
			for i := range nClients {
				s := i % layer.servers
				c.obs.connect(b, fmt.Sprintf("client%d@server%d", i, s), s, c.servers[s], c.list)
			}
			c.obs.must(b, deliveryLimit, "every subscription's ack", func() bool {
				for _, cl := range c.obs.clients {
					if !cl.acked {
						return false
					}
				}
				return true
			})
			writer := c.servers[c.leader()]
			// Every write goes to the reader's process: on SQLite, it
			// wakes the reader at once (others wait for its next poll).
			for i := range c.dead {
				c.dead[i].Store(c.servers[i] != writer)
			}
			b.Run("latency", func(b *testing.B) { benchLatency(b, c) })
			b.Run("throughput", func(b *testing.B) { benchThroughput(b, c, nClients) })
			c.obs.check(b)
		})
	}
}

func redisFlags(tb testing.TB) []string { return []string{"-redis", testenv.StartRedis(tb).URL} }
func natsFlags(tb testing.TB) []string  { return []string{"-nats", testenv.StartNATS(tb).URL} }

func benchLatency(b *testing.B, c *cluster) {
	ctx := context.Background()
	if c.ids[0] == 0 {
		if err := c.write(ctx, 0, 0); err != nil {
			b.Fatal(err)
		}
		c.next[0] = 1
		if err := c.obs.seenByAll(deliveryLimit, c.ids[0], 0); err != nil {
			b.Fatal(err)
		}
	}
	var (
		sent      = map[int]time.Time{} // by version
		latencies []time.Duration
	)
	c.obs.mu.Lock()
	c.obs.onBroadcast = func(_ *client, id uint, version int, at time.Time) {
		if start, ok := sent[version]; ok && id == c.ids[0] {
			latencies = append(latencies, at.Sub(start))
		}
	}
	c.obs.mu.Unlock()
	b.ResetTimer()
	for range b.N {
		v := c.next[0]
		c.obs.mu.Lock()
		sent[v] = time.Now()
		c.obs.mu.Unlock()
		if err := c.write(ctx, 0, v); err != nil {
			b.Fatal(err)
		}
		c.next[0]++
		if err := c.obs.seenByAll(deliveryLimit, c.ids[0], v); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	c.obs.mu.Lock()
	c.obs.onBroadcast = nil
	slices.Sort(latencies)
	c.obs.mu.Unlock()
	ms := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

func benchThroughput(b *testing.B, c *cluster, clients int) {
	const writers = 8
	c.obs.mu.Lock()
	base := make(map[*client]int, len(c.obs.clients))
	for _, cl := range c.obs.clients {
		base[cl] = cl.frames
	}
	c.obs.mu.Unlock()
	ctx := context.Background()
	b.ResetTimer()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < b.N; i += writers {
				body := map[string]any{"text": taskText(1000+w, 0), "list": c.list}
				var task struct{ ID uint }
				srv := c.servers[0]
				for j := range c.servers {
					if !c.dead[j].Load() {
						srv = c.servers[j]
					}
				}
				if err := c.rest.do(ctx, "POST", srv.url+"/api/tasks/", nil, body, &task); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	c.obs.must(b, time.Minute, fmt.Sprintf("every client to receive %d broadcasts", b.N), func() bool {
		for _, cl := range c.obs.clients {
			if cl.frames < base[cl]+b.N {
				return false
			}
		}
		return true
	})
	b.StopTimer()
	b.ReportMetric(float64(clients*b.N)/b.Elapsed().Seconds(), "broadcasts/s")
	b.ReportMetric(0, "ns/op")
}
