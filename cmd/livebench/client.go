package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
)

// clientMain is the client process (see plan): it returns the exit code.
func clientMain() int {
	raiseFileLimit()
	in := bufio.NewReader(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	err := runClient(in, out)
	if err != nil {
		out.Encode(event{Event: "error", Error: err.Error()})
		return 1
	}
	return 0
}

func runClient(in *bufio.Reader, out *json.Encoder) error {
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the plan: %w", err)
	}
	var p plan
	if err := json.Unmarshal(line, &p); err != nil {
		return fmt.Errorf("decode the plan: %w", err)
	}
	// Commands from the parent; stdin closing (the parent is gone) ends
	// the run as a failed one.
	cmds := make(chan string, 2)
	go func() {
		defer close(cmds)
		for {
			l, err := in.ReadString('\n')
			if err != nil {
				return
			}
			cmds <- strings.TrimSpace(l)
		}
	}()
	await := func(want string) error {
		if c, ok := <-cmds; !ok || c != want {
			return fmt.Errorf("expected the command %q from the benchmark, got %q", want, c)
		}
		return nil
	}

	b := newBench(&p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer b.closeAll()

	if err := b.connect(ctx); err != nil {
		return err
	}
	out.Encode(event{Event: "subscribed"})
	if err := await("go"); err != nil {
		return err
	}
	cpu0 := cpuSeconds()
	reads0, _ := procIO()
	if p.Shard == nil {
		b.writeAndReceive(ctx)
	} else {
		// One of several client processes: the writer writes, and all
		// wait for their broadcasts from when the writes are done.
		bar := b.progress()
		if p.Shard.Writer {
			b.writeAll(ctx)
			out.Encode(event{Event: "written"})
		} else if err := await("written"); err != nil {
			bar.end()
			return err
		}
		b.drain(ctx)
		bar.end()
	}
	b.res.CPUSeconds = cpuSeconds() - cpu0
	reads1, _ := procIO()
	b.res.ReadCalls = int64(reads1 - reads0)
	out.Encode(event{Event: "finished"})
	if err := await("close"); err != nil {
		return err
	}
	b.closeAll()
	b.collect()
	return out.Encode(event{Event: "results", Results: &b.res})
}

// bench is the clients of one run.
type bench struct {
	p *plan
	// base is the origin of every timestamp: a monotonic clock reading.
	base time.Time
	// baseMono is base on the system-wide monotonic clock, in
	// nanoseconds: the clock of the writes' stamps (see shardPlan).
	baseMono int64
	// first is the run's number of this process's first connection.
	first int
	// writeAt[i] is when write i started, in nanoseconds since base.
	writeAt []atomic.Int64
	clients []*client
	readers sync.WaitGroup

	expected int64
	got      atomic.Int64 // broadcasts received as expected, first time
	allGot   chan struct{}
	acked    atomic.Int64 // connections whose subscriptions are all acked
	allAcked chan struct{}
	failed   chan error  // a connection that failed to open
	closing  atomic.Bool // closeAll has begun: connections end on purpose

	writesDone  atomic.Int64
	firstWrite  atomic.Int64 // write 0's stamp (see shardPlan)
	writeErrors atomic.Int64
	writeErr    atomic.Pointer[string]

	res clientResults
}

// client is one WebSocket connection. Its fields are its reading
// goroutine's until that has returned.
type client struct {
	idx   int
	group int
	ws    *websocket.Conn
	nsubs int
	acks  int
	// seen has a bit per subscription and write: received already.
	seen       []uint64
	lat        []uint32 // latencies in microseconds
	last       int64    // arrival of the last broadcast, since base
	dups       int64
	unexpected int64
	samples    []string
	// err ended the reading: the connection closed, or broke.
	err error
}

func newBench(p *plan) *bench {
	b := &bench{
		p:        p,
		writeAt:  make([]atomic.Int64, len(p.Writes)),
		clients:  make([]*client, len(p.Conns)),
		allGot:   make(chan struct{}),
		allAcked: make(chan struct{}),
		failed:   make(chan error, 1),
	}
	m0 := monoNow()
	b.base = time.Now()
	b.baseMono = (m0 + monoNow()) / 2
	if p.Shard != nil {
		b.first = p.Shard.Base
	}
	groups := make(map[int]int64) // connections per group
	for _, c := range p.Conns {
		if c.Group > 0 {
			groups[c.Group]++
		}
	}
	for _, w := range p.Writes {
		switch {
		case w.All > 0:
			for _, c := range p.Conns {
				if len(c.Subs) >= w.All {
					b.expected++
				}
			}
		case w.Group > 0:
			b.expected += groups[w.Group]
		case w.RID > 0:
			if w.Conn >= b.first && w.Conn < b.first+len(p.Conns) {
				b.expected++
			}
		}
	}
	b.res.Expected = b.expected
	if b.expected == 0 {
		close(b.allGot)
	}
	return b
}

func (b *bench) since() int64 { return int64(time.Since(b.base)) }

// connect opens every connection and subscribes, and returns once every
// subscription is acked.
func (b *bench) connect(ctx context.Context) error {
	start := time.Now()
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: (&net.Dialer{}).DialContext}}
	ctx, cancel := context.WithTimeout(ctx, b.p.ConnectTimeout)
	defer cancel()
	total := int64(len(b.p.Conns))
	if total == 0 {
		close(b.allAcked)
	}
	bar := startProgress(b.p.Progress, os.Stderr, b.p.Label+" connect", total, b.acked.Load, nil)
	defer bar.end()
	sem := make(chan struct{}, max(1, b.p.DialConcurrency))
	var dials sync.WaitGroup
	spawned := make(chan struct{})
	go func() {
		defer close(spawned)
		for i := range b.p.Conns {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			dials.Add(1)
			go func() {
				defer func() { <-sem; dials.Done() }()
				if err := b.open(ctx, hc, i); err != nil {
					b.fail(fmt.Errorf("connection %d: %w", i, err))
				}
			}()
		}
	}()
	var err error
	select {
	case <-b.allAcked:
		b.res.ConnectSeconds = time.Since(start).Seconds()
	case err = <-b.failed:
		cancel()
	case <-ctx.Done():
		err = fmt.Errorf("connect: %d of %d connections subscribed within %v", b.acked.Load(), total, b.p.ConnectTimeout)
	}
	// The context bounds the handshakes and the subscribe frames: it
	// must not end while one of them is still being written, even if its
	// ack has come already, since ending it would close that connection.
	<-spawned
	dials.Wait()
	return err
}

// fail ends the connect phase with err, if it is the first.
func (b *bench) fail(err error) {
	select {
	case b.failed <- err:
	default:
	}
}

func (b *bench) open(ctx context.Context, hc *http.Client, i int) error {
	cp := b.p.Conns[i]
	h := http.Header{}
	if cp.Token != "" {
		h.Set("Authorization", "Token "+cp.Token)
	}
	url := b.p.WSURLs[(b.first+i)%len(b.p.WSURLs)]
	var (
		ws  *websocket.Conn
		err error
	)
	// A listen backlog overflowing under thousands of simultaneous dials
	// shows as a reset: try again a few times.
	for attempt := 0; attempt < 5; attempt++ {
		ws, _, err = websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc, HTTPHeader: h})
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 50 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	ws.SetReadLimit(1 << 20)
	words := (len(cp.Subs)*len(b.p.Writes) + 63) / 64
	c := &client{idx: b.first + i, group: cp.Group, ws: ws, nsubs: len(cp.Subs), seen: make([]uint64, words)}
	b.clients[i] = c
	b.readers.Add(1)
	go b.read(c)
	for _, f := range cp.Subs {
		if err := ws.Write(ctx, websocket.MessageText, []byte(f)); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	return nil
}

var (
	prefixBroadcast  = []byte(`{"type":"broadcast",`)
	prefixSubscribed = []byte(`{"type":"subscribed",`)
	prefixError      = []byte(`{"type":"error",`)
	keyRequestID     = []byte(`"request_id":`)
	keyText          = []byte(`"text":"#`)
)

// read reads c's frames until its connection closes. The frames are
// not decoded: the request id and the write's number are found in the
// bytes, so that the clients' work stays small next to the server's.
func (b *bench) read(c *client) {
	defer b.readers.Done()
	buf := make([]byte, 0, 512)
	for {
		_, r, err := c.ws.Reader(context.Background())
		if err == nil {
			buf, err = readAll(buf[:0], r)
		}
		if err != nil {
			c.err = fmt.Errorf("%w (after %.3fs)", err, time.Since(b.base).Seconds())
			if !b.closing.Load() {
				// The server closed it (a limit, say): while connecting,
				// that ends the run at once rather than at the timeout.
				b.fail(fmt.Errorf("connection %d closed: %w", c.idx, c.err))
			}
			return
		}
		b.handle(c, buf)
	}
}

func (b *bench) handle(c *client, m []byte) {
	now := b.since()
	switch {
	case bytes.HasPrefix(m, prefixBroadcast):
		rid, ok1 := intAfter(m, keyRequestID)
		seq, ok2 := intAfter(m, keyText)
		if !ok1 || !ok2 || rid < 1 || rid > c.nsubs || seq >= len(b.p.Writes) {
			b.unexpected(c, m)
			return
		}
		w := &b.p.Writes[seq]
		if !w.reaches(c.idx, c.group, rid) {
			b.unexpected(c, m)
			return
		}
		start := b.writeAt[seq].Load()
		if b.p.Shard != nil {
			t, ok := stampAfter(m, keyText)
			if !ok {
				b.unexpected(c, m)
				return
			}
			start = t - b.baseMono
		}
		bit := (rid-1)*len(b.p.Writes) + seq
		if c.seen[bit/64]&(1<<(bit%64)) != 0 {
			c.dups++
			return
		}
		c.seen[bit/64] |= 1 << (bit % 64)
		lat := (now - start) / 1000
		c.lat = append(c.lat, uint32(min(max(lat, 0), math.MaxUint32)))
		c.last = now
		if b.got.Add(1) == b.expected {
			close(b.allGot)
		}
	case bytes.HasPrefix(m, prefixSubscribed):
		c.acks++
		if c.acks == c.nsubs && b.acked.Add(1) == int64(len(b.p.Conns)) {
			close(b.allAcked)
		}
	default:
		b.unexpected(c, m)
		if bytes.HasPrefix(m, prefixError) && c.acks < c.nsubs {
			b.fail(fmt.Errorf("connection %d: subscription refused: %s", c.idx, m))
		}
	}
}

func (b *bench) unexpected(c *client, m []byte) {
	c.unexpected++
	if len(c.samples) < 3 {
		c.samples = append(c.samples, string(m))
	}
}

// writeAndReceive makes the writes at the plan's rate and waits for their
// broadcasts, within DrainTimeout of the last write, then for Grace.
func (b *bench) writeAndReceive(ctx context.Context) {
	if len(b.p.Writes) == 0 {
		return
	}
	defer b.progress().end()
	b.writeAll(ctx)
	b.drain(ctx)
}

// progress draws the broadcasts received and the writes made.
func (b *bench) progress() *progress {
	return startProgress(b.p.Progress, os.Stderr, b.p.Label+" broadcasts", b.expected, b.got.Load,
		func() string { return fmt.Sprintf("(writes %d/%d)", b.writesDone.Load(), len(b.p.Writes)) })
}

// writeAll makes the writes at the plan's rate.
func (b *bench) writeAll(ctx context.Context) {
	n := len(b.p.Writes)
	if n == 0 {
		return
	}
	hc := &http.Client{Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: b.p.Writers, DisableCompression: true,
	}}
	defer hc.CloseIdleConnections()

	tickets := make(chan int, n)
	start := time.Now()
	go func() {
		defer close(tickets)
		for i := range n {
			if b.p.Rate > 0 {
				at := start.Add(time.Duration(float64(i) / b.p.Rate * float64(time.Second)))
				if d := time.Until(at); d > 0 {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return
					}
				}
			}
			tickets <- i
		}
	}()
	var writers sync.WaitGroup
	for range max(1, b.p.Writers) {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range tickets {
				b.write(ctx, hc, i)
				b.writesDone.Add(1)
			}
		}()
	}
	writers.Wait()
	writesEnd := b.since()
	b.res.WriteSeconds = time.Duration(writesEnd - b.writeAt[0].Load()).Seconds()
}

// drain waits for the broadcasts, within DrainTimeout, then for Grace.
func (b *bench) drain(ctx context.Context) {
	drain := time.NewTimer(b.p.DrainTimeout)
	defer drain.Stop()
	select {
	case <-b.allGot:
	case <-drain.C:
		b.res.TimedOut = true
	case <-ctx.Done():
	}
	// Listen a little longer: a duplicate would come now.
	select {
	case <-time.After(b.p.Grace):
	case <-ctx.Done():
	}
}

func (b *bench) write(ctx context.Context, hc *http.Client, i int) {
	w := &b.p.Writes[i]
	fail := func(err error) {
		b.writeErrors.Add(1)
		msg := fmt.Sprintf("write %d (%s %s): %v", i, w.Method, w.Path, err)
		b.writeErr.CompareAndSwap(nil, &msg)
	}
	body := w.Body
	if b.p.Shard != nil {
		t := b.baseMono + b.since()
		if i == 0 {
			b.firstWrite.Store(t)
		}
		body = stamped(body, i, t)
	}
	req, err := http.NewRequestWithContext(ctx, w.Method, b.p.WriteURLs[i%len(b.p.WriteURLs)]+w.Path, strings.NewReader(body))
	if err != nil {
		fail(err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if w.Token != "" {
		req.Header.Set("Authorization", "Token "+w.Token)
	}
	b.writeAt[i].Store(b.since())
	res, err := hc.Do(req)
	if err != nil {
		fail(err)
		return
	}
	answer, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	res.Body.Close()
	if res.StatusCode != w.Status {
		fail(fmt.Errorf("status %d, want %d: %s", res.StatusCode, w.Status, answer))
	}
}

// closeAll closes every connection and waits for the readers.
func (b *bench) closeAll() {
	b.closing.Store(true)
	for _, c := range b.clients {
		if c != nil {
			c.ws.CloseNow()
		}
	}
	b.readers.Wait()
}

// collect sums what the clients saw, once their readers have returned.
func (b *bench) collect() {
	r := &b.res
	var lats []uint32
	var last int64
	for _, c := range b.clients {
		if c == nil {
			continue
		}
		r.Duplicates += c.dups
		r.Unexpected += c.unexpected
		if len(r.Samples) < 5 {
			r.Samples = append(r.Samples, c.samples...)
		}
		lats = append(lats, c.lat...)
		last = max(last, c.last)
	}
	r.Received = int64(len(lats))
	if r.Received < r.Expected {
		r.Samples = append(r.Samples, b.missing(5)...)
	}
	r.WriteErrors = b.writeErrors.Load()
	if msg := b.writeErr.Load(); msg != nil {
		r.Samples = append(r.Samples, *msg)
	}
	if len(b.writeAt) > 0 && len(lats) > 0 {
		r.DeliverSeconds = time.Duration(last - b.writeAt[0].Load()).Seconds()
	}
	slices.Sort(lats)
	r.P50, r.P99, r.Max = latencyRanks(lats)
	if b.p.Shard != nil {
		r.Latencies = lats
		r.FirstWriteAt = b.firstWrite.Load()
		if len(lats) > 0 {
			r.LastBroadcast = b.baseMono + last
		}
	}
}

// latencyRanks returns the median, the 99th percentile and the largest
// of sorted latencies in microseconds (zeros for none).
func latencyRanks(sorted []uint32) (p50, p99, most time.Duration) {
	if len(sorted) == 0 {
		return 0, 0, 0
	}
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(sorted)))) - 1
		return time.Duration(sorted[max(i, 0)]) * time.Microsecond
	}
	return rank(0.50), rank(0.99), rank(1)
}

// missing describes up to n writes whose broadcasts did not all arrive.
func (b *bench) missing(n int) []string {
	var out []string
	for i, w := range b.p.Writes {
		want, got := 0, 0
		var conns []string
		for _, c := range b.clients {
			if c == nil {
				continue
			}
			for rid := 1; rid <= c.nsubs; rid++ {
				if !w.reaches(c.idx, c.group, rid) {
					continue
				}
				want++
				bit := (rid-1)*len(b.p.Writes) + i
				if c.seen[bit/64]&(1<<(bit%64)) != 0 {
					got++
				} else if len(conns) < 3 {
					conns = append(conns, fmt.Sprintf("%d (%v)", c.idx, c.err))
				}
			}
		}
		if got < want {
			out = append(out, fmt.Sprintf("write %d (%s %s %s): %d of %d broadcasts arrived; not on connections %v", i, w.Method, w.Path, w.Body, got, want, conns))
			if len(out) == n {
				break
			}
		}
	}
	return out
}

// readAll appends what r holds to buf.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 512)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// intAfter returns the decimal integer that follows key in m.
func intAfter(m, key []byte) (int, bool) {
	i := bytes.Index(m, key)
	if i < 0 {
		return 0, false
	}
	n, digits := 0, 0
	for _, ch := range m[i+len(key):] {
		if ch < '0' || ch > '9' || digits > 9 {
			break
		}
		n = n*10 + int(ch-'0')
		digits++
	}
	return n, digits > 0
}

// stamped returns a write's body with t after its mark "#i": "#i@t".
func stamped(body string, i int, t int64) string {
	mark := "#" + strconv.Itoa(i)
	k := strings.Index(body, mark)
	if k < 0 {
		return body
	}
	k += len(mark)
	return body[:k] + "@" + strconv.FormatInt(t, 10) + body[k:]
}

// stampAfter returns the stamp t of "#i@t" where key ends just before
// the i.
func stampAfter(m, key []byte) (int64, bool) {
	i := bytes.Index(m, key)
	if i < 0 {
		return 0, false
	}
	rest := m[i+len(key):]
	j := bytes.IndexByte(rest, '@')
	if j < 0 {
		return 0, false
	}
	var t int64
	digits := 0
	for _, ch := range rest[j+1:] {
		if ch < '0' || ch > '9' || digits > 18 {
			break
		}
		t = t*10 + int64(ch-'0')
		digits++
	}
	return t, digits > 0
}

// monoNow reads the system-wide monotonic clock (CLOCK_MONOTONIC), which
// every process on the machine shares, in nanoseconds. (Go's monotonic
// readings count from the process's start.)
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Now().UnixNano()
	}
	return ts.Nano()
}
