package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	goredis "github.com/redis/go-redis/v9"

	"github.com/restlive/restlive/internal/testenv"
)

// Three todolist processes share one database and one broker, as behind a
// load balancer; 30 WebSocket clients, ten on each, subscribe to the tasks
// of one public list; REST writes go to all three. In turn:
//
//  1. 100 writes (10 tasks, each created and then updated 9 times): every
//     client receives all 100 broadcasts, once each, each task's in order.
//  2. The broker restarts while writes go on: the servers keep their
//     clients, reconnect, and tell every client to resync; the writes
//     after that reach every client, once each and in order.
//  3. The process that reads the outbox is killed (SIGKILL) while writes
//     go on: its clients are disconnected, another process takes over the
//     outbox, and the other clients receive every later write once.
//  4. (Redis, which tells who subscribes to what.) Each process
//     subscribes at the broker to the channels its clients need, and
//     drops them when the last of them leaves.
//
// To count broadcasts exactly, the writes of phases 1 and 3 go in lock
// step: a task's next version is written once every connected client has
// received the last (the hub reads the current state of a changed row, so
// two quick writes of one row may reach a subscriber as one broadcast).
// Ten tasks advance concurrently. Phase 2's writers do not wait: there a
// client must see each task's versions in increasing order, never twice.
//
// The four runs (two brokers, two databases) go at once, whatever
// -parallel says: much of their time is spent waiting (for a SQLite
// outbox lease to expire, for a broker to come back), so together they
// take less time than two at a time.
func TestManyServers(t *testing.T) {
	var wg sync.WaitGroup
	for _, b := range brokers {
		for _, db := range databases {
			wg.Go(func() {
				t.Run(b.name+"/"+db.name, func(t *testing.T) { testManyServers(t, b, db.dsn(t)) })
			})
		}
	}
	wg.Wait()
}

// brokerEnv is a broker the servers share, started for one test.
type brokerEnv struct {
	url         string
	stop, start func(testing.TB)
	// subscribers, if not nil, returns how many connections subscribe
	// to each channel that has any.
	subscribers func(context.Context) (map[string]int64, error)
}

// brokerKind is a kind of broker the command takes.
type brokerKind struct {
	name  string
	flag  string // the command's flag
	lost  string // what a server logs when the broker goes away
	start func(testing.TB) brokerEnv
}

var brokers = []brokerKind{
	{"redis", "-redis", "layer/redis: connection lost", func(t testing.TB) brokerEnv {
		r := testenv.StartRedis(t)
		return brokerEnv{r.URL, r.Stop, r.Start, redisSubscribers(t, r.URL)}
	}},
	{"nats", "-nats", "layer/nats: connection lost", func(t testing.TB) brokerEnv {
		n := testenv.StartNATS(t)
		return brokerEnv{n.URL, n.Stop, n.Start, nil}
	}},
}

var databases = []struct {
	name string
	dsn  func(t *testing.T) string
}{
	{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "todolist.db") }},
	{"postgres", func(t *testing.T) string { return testenv.PostgresDB(t) }},
}

const (
	nServers      = 3
	nClients      = 30
	nChains       = 10 // tasks written concurrently
	deliveryLimit = 20 * time.Second
	// takeoverLimit bounds phase 3's wait for another process to read the
	// outbox: the SQLite lease lasts 5s unless renewed.
	takeoverLimit = 30 * time.Second
)

// cluster is the servers of one test and what the test wrote.
type cluster struct {
	t       testing.TB
	servers []*proc
	dead    []atomic.Bool // servers the writes avoid
	rest    *rest
	obs     *observer
	list    uint

	ids  [nChains]uint // each chain's task
	next [nChains]int  // each chain's next version
	turn atomic.Int64  // spreads the writes over the servers
}

func testManyServers(t *testing.T, b brokerKind, dsn string) {
	begin := time.Now()
	broker := b.start(t) // first: it skips the test if Redis is missing
	bin := command(t, raceEnabled)

	// The servers start together on an empty database, and race to create
	// the tables: the losers try again.
	c := &cluster{t: t, rest: newREST(t), obs: newObserver(), dead: make([]atomic.Bool, nServers)}
	for i := range nServers {
		c.servers = append(c.servers, spawn(t, fmt.Sprintf("server%d", i), bin, "-addr", "127.0.0.1:0", "-db", dsn, b.flag, broker.url))
	}
	for _, p := range c.servers {
		c.serving(p)
	}
	c.list = setupList(t, c.rest, c.servers[0])
	for i := range nClients {
		s := i % nServers
		c.obs.connect(t, fmt.Sprintf("client%d@server%d", i, s), s, c.servers[s], c.list)
	}
	c.obs.must(t, deliveryLimit, "every subscription's ack", func() bool {
		for _, cl := range c.obs.clients {
			if !cl.acked {
				return false
			}
		}
		return true
	})
	t.Cleanup(func() { c.obs.check(t) })

	t.Logf("built, 3 servers serving, 30 clients subscribed in %v", time.Since(begin).Round(time.Millisecond))

	// 1. 100 writes, every broadcast to every client.
	start := time.Now()
	from := c.next
	c.lockstep(10, nil)
	c.exact("phase 1", from)
	c.obs.mu.Lock()
	for _, cl := range c.obs.clients {
		n := 0
		for _, v := range cl.versions {
			n += len(v)
		}
		if n != 100 || cl.frames != 101 {
			t.Errorf("%s received %d broadcasts in %d frames, want 100 in 101 (with the ack)", cl.name, n, cl.frames)
		}
	}
	c.obs.mu.Unlock()
	t.Logf("phase 1: 100 writes, 3000 broadcasts in %v", time.Since(start).Round(time.Millisecond))
	channels := c.subscribed(broker, nServers, nil)
	if channels != nil {
		t.Logf("each server subscribes to %q", channels)
	}
	if t.Failed() {
		return
	}

	// 2. The broker restarts while writers write.
	start = time.Now()
	from0 := c.next
	stopWriters := c.freeRun()
	c.waitWrites(2)
	broker.stop(t)
	for _, p := range c.servers {
		if err := p.log.waitCount(b.lost, 1, deliveryLimit); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	c.waitWrites(2) // writes while the broker is away
	broker.start(t)
	c.obs.must(t, deliveryLimit, "every client to be told to resync", func() bool {
		for _, cl := range c.obs.clients {
			if cl.resyncs == 0 || cl.closed {
				return false
			}
		}
		return true
	})
	c.waitWrites(2)
	if err := stopWriters(); err != nil {
		t.Fatal(err)
	}
	from = c.next
	c.lockstep(3, nil)
	c.exact("phase 2 (after the broker came back)", from)
	t.Logf("phase 2: broker restarted, every client resynced and received the later writes (%d writes) in %v", sum(c.next)-sum(from0), time.Since(start).Round(time.Millisecond))
	if t.Failed() {
		return
	}

	// 3. The outbox reader is killed while writes go on.
	start = time.Now()
	leader := c.leader()
	victim := c.servers[leader]
	readers := make([]int, nServers)
	for i, p := range c.servers {
		readers[i] = p.log.count("capture: reading the outbox")
	}
	from = c.next
	killAt := from[0] + 2
	c.lockstep(6, func() {
		// Once a third of phase 3 is through: the test goroutine waits
		// for it while the chains write.
		c.obs.must(t, takeoverLimit, "phase 3 to get going", func() bool {
			for _, cl := range c.obs.clients {
				if cl.last(c.ids[0]) < killAt {
					return false
				}
			}
			return true
		})
		c.dead[leader].Store(true)
		victim.cmd.Process.Kill()
	})
	if err := victim.wait(t, deliveryLimit); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("%s: %v, want killed", victim.name, err)
	}
	c.obs.must(t, deliveryLimit, "the clients of the killed server to be disconnected", func() bool {
		for _, cl := range c.obs.clients {
			if cl.server == leader && !cl.closed {
				return false
			}
		}
		return true
	})
	c.obs.mu.Lock()
	for _, cl := range c.obs.clients {
		if cl.server != leader && cl.closed {
			t.Errorf("%s was disconnected: %v", cl.name, cl.closeErr)
		}
	}
	c.obs.mu.Unlock()
	c.exact("phase 3 (a server killed)", from)
	tookOver := false
	for i, p := range c.servers {
		if i != leader && p.log.count("capture: reading the outbox") > readers[i] {
			tookOver = true
		}
	}
	if !tookOver {
		t.Errorf("no other server took over the outbox from %s", victim.name)
	}
	t.Logf("phase 3: %s (the outbox reader) killed, its clients disconnected, the others received every later write; %v",
		victim.name, time.Since(start).Round(time.Millisecond))

	c.subscribed(broker, nServers-1, channels)
	if t.Failed() {
		return
	}

	// 4. The subscribers leave: each process drops its subscriptions at
	// the broker when its last client has gone.
	if broker.subscribers != nil {
		for k, s := range []int{(leader + 1) % nServers, (leader + 2) % nServers} {
			c.obs.mu.Lock()
			clients := slices.Clone(c.obs.clients)
			c.obs.mu.Unlock()
			for _, cl := range clients {
				if cl.server == s {
					cl.conn.Close(websocket.StatusNormalClosure, "")
				}
			}
			c.subscribed(broker, nServers-2-k, channels) // the servers with clients left
		}
		t.Logf("phase 4: each process left the broker's channels with its last client")
	}

	for i, p := range c.servers {
		if i != leader {
			p.stop(t)
		}
	}
}

// subscribed waits until each channel of the broker that has subscribers
// has n (none has any if n is 0), and returns the channels. If want is not
// nil, the channels must be those. It does nothing if the broker cannot
// tell.
func (c *cluster) subscribed(b brokerEnv, n int, want []string) []string {
	c.t.Helper()
	if b.subscribers == nil {
		return nil
	}
	deadline := time.Now().Add(deliveryLimit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		subs, err := b.subscribers(ctx)
		cancel()
		var channels []string
		ok := err == nil && len(subs) > 0 == (n > 0)
		for ch, k := range subs {
			channels = append(channels, ch)
			ok = ok && k == int64(n)
		}
		slices.Sort(channels)
		if ok && n > 0 && want != nil && !slices.Equal(channels, want) {
			c.t.Fatalf("the servers subscribe to %v, want %v", channels, want)
		}
		if ok {
			return channels
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("subscribers per channel: %v (%v), want %d each", subs, err, n)
		}
		// The broker changes on its own when a process acts: there is
		// nothing to wait on but the broker itself.
		<-tick.C
	}
}

// redisSubscribers asks Redis how many connections subscribe to each
// channel.
func redisSubscribers(t testing.TB, url string) func(context.Context) (map[string]int64, error) {
	opt, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rc := goredis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	return func(ctx context.Context) (map[string]int64, error) {
		channels, err := rc.PubSubChannels(ctx, "*").Result()
		if err != nil || len(channels) == 0 {
			return nil, err
		}
		return rc.PubSubNumSub(ctx, channels...).Result()
	}
}

// serving waits until p serves and notes its URLs.
func (c *cluster) serving(p *proc) {
	c.t.Helper()
	m, err := p.log.waitMatch(servingRE, 60*time.Second, p.exited)
	if err != nil {
		c.t.Fatalf("%s does not serve: %v", p.name, err)
	}
	p.url, p.ws = "http://"+m[1], "ws://"+m[1]+"/ws/subscribe/"
}

// write writes version of chain's task (creating it at version 0) through
// the next server in turn that is not dead. A request that fails without
// an answer is sent again to another server: writing a version twice
// changes nothing the second time.
func (c *cluster) write(ctx context.Context, chain, version int) error {
	body := map[string]any{"text": taskText(chain, version), "list": c.list}
	for attempt := 0; ; attempt++ {
		var s int
		for {
			s = int(c.turn.Add(1) % int64(len(c.servers)))
			if !c.dead[s].Load() {
				break
			}
		}
		srv := c.servers[s]
		var err error
		if version == 0 {
			var task struct{ ID uint }
			err = c.rest.do(ctx, "POST", srv.url+"/api/tasks/", nil, body, &task)
			if err == nil {
				c.ids[chain] = task.ID
			}
		} else {
			err = c.rest.do(ctx, "PUT", fmt.Sprintf("%s/api/tasks/%d/", srv.url, c.ids[chain]), nil, body, nil)
		}
		var status *statusError
		if err == nil || errors.As(err, &status) || !c.dead[s].Load() || attempt == 3 || version == 0 {
			return err
		}
	}
}

// lockstep advances every chain by steps versions, each written once
// every connected client has received the last. meanwhile, if not nil,
// runs on the test goroutine while the chains write.
func (c *cluster) lockstep(steps int, meanwhile func()) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make([]error, nChains)
	var wg sync.WaitGroup
	for chain := range nChains {
		wg.Go(func() {
			for range steps {
				v := c.next[chain]
				if err := c.write(ctx, chain, v); err != nil {
					errs[chain] = err
					return
				}
				c.next[chain]++
				if err := c.obs.seenByAll(takeoverLimit, c.ids[chain], v); err != nil {
					errs[chain] = err
					return
				}
			}
		})
	}
	if meanwhile != nil {
		meanwhile()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
}

// freeRun starts a writer per chain that writes versions one after the
// other without waiting for broadcasts, until the returned function
// stops them.
func (c *cluster) freeRun() (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	errs := make([]error, nChains)
	var wg sync.WaitGroup
	for chain := range nChains {
		wg.Go(func() {
			for ctx.Err() == nil {
				c.obs.mu.Lock()
				v := c.next[chain]
				c.obs.mu.Unlock()
				if err := c.write(ctx, chain, v); err != nil {
					if ctx.Err() == nil {
						errs[chain] = err
					}
					return
				}
				c.obs.mu.Lock()
				c.next[chain]++
				c.obs.notify()
				c.obs.mu.Unlock()
			}
		})
	}
	return func() error {
		cancel()
		wg.Wait()
		return errors.Join(errs...)
	}
}

// waitWrites waits until every free-running writer has written n more
// versions.
func (c *cluster) waitWrites(n int) {
	c.t.Helper()
	c.obs.mu.Lock()
	target := c.next
	c.obs.mu.Unlock()
	c.obs.must(c.t, deliveryLimit, fmt.Sprintf("%d more writes of each task", n), func() bool {
		for chain := range nChains {
			if c.next[chain] < target[chain]+n {
				return false
			}
		}
		return true
	})
}

// exact checks that every connected client received each version written
// since from once, in order, and nothing later.
func (c *cluster) exact(phase string, from [nChains]int) {
	c.t.Helper()
	c.obs.mu.Lock()
	defer c.obs.mu.Unlock()
	for _, cl := range c.obs.clients {
		if cl.closed {
			continue
		}
		for chain := range nChains {
			var got []int
			for _, v := range cl.versions[c.ids[chain]] {
				if v >= from[chain] {
					got = append(got, v)
				}
			}
			want := make([]int, 0, c.next[chain]-from[chain])
			for v := from[chain]; v < c.next[chain]; v++ {
				want = append(want, v)
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				c.t.Errorf("%s: %s received versions %v of task %d, want %v", phase, cl.name, got, c.ids[chain], want)
			}
		}
	}
}

// leader returns the index of the server that reads the outbox: the one
// whose last word about it is that it reads it. It waits for there to be
// exactly one.
// readsOutbox says whether a server's last word on its capture role is
// that it reads the outbox. Publish failures and recoveries leave the
// role as it was.
func readsOutbox(log string) bool {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		at := strings.Index(lines[i], `msg="capture: `)
		if at < 0 || strings.HasPrefix(lines[i][at:], `msg="capture: publish`) {
			continue
		}
		return strings.HasPrefix(lines[i][at:], `msg="capture: reading the outbox"`)
	}
	return false
}

func (c *cluster) leader() int {
	c.t.Helper()
	deadline := time.Now().Add(deliveryLimit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var leaders []int
		for i, p := range c.servers {
			if readsOutbox(p.log.String()) {
				leaders = append(leaders, i)
			}
		}
		if len(leaders) == 1 {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("servers %v say that they read the outbox, want one", leaders)
		}
		// The servers write their logs on their own: there is nothing
		// to wait on but the logs themselves.
		<-tick.C
	}
}

func sum(a [nChains]int) (n int) {
	for _, v := range a {
		n += v
	}
	return n
}
