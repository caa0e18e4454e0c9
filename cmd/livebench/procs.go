package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/restlive/restlive/layer/nats"
	"github.com/restlive/restlive/layer/redis"
	"github.com/restlive/restlive/live"
)

// With -procs K > 1 a row runs in several processes, so that more
// connections fit than one process may open files for: K server
// processes, each a todoapp over the same database (the run's SQLite
// file, or its PostgreSQL schema) with a layer over the broker (-redis
// or -nats), and client processes, K or one per maxConnsPerClient
// connections if that takes more. All are this binary, re-executed: a
// server process with envServer set, a client process with envClient.
//
// The parent only orchestrates: it makes the database and the run's
// data, starts the children, steps them through the phases, and merges
// what they report. Commands go down (stdin), events come up (stdout),
// one JSON line each; nothing else flows between the processes.
//
// Connection i dials server process i % K (on one of its -addrs
// loopback addresses); client process k holds a contiguous share of the
// connections. Write i goes to server process i % K, all made by client
// process 0 with -writers HTTP clients as with one process: spreading
// them is what a load balancer would do, and through one process's
// writers the rate and order of the writes are those of one process's
// run. Every write goes through the outbox, which one server process
// reads (the one holding its lease: the first started, in practice),
// whichever process answered it.
//
// A server process answers each command with an event of the same name:
//
//	server: {"event":"ready","addrs":[...]}     serving
//	parent: mark        server: {"event":"mark"}         memory before the clients connect
//	parent: subscribed  server: {"event":"subscribed",...} its memory's growth since mark
//	parent: go          server: {"event":"go"}           CPU, statements and system calls from now
//	parent: stop        server: {"event":"stop",...}     ... until now
//	parent: close       the server stops and exits
//
// Client processes follow the one-process protocol (plan.go) with a
// shard, where the writer says {"event":"written"} once its writes are
// answered and the parent then sends "written" to the others.
const envServer = "LIVEBENCH_SERVER"

// maxConnsPerClient bounds a client process's connections, below the
// 20,000 open files a process may have on the machine the figures were
// measured on.
const maxConnsPerClient = 19000

// serverPlan is what a server process serves.
type serverPlan struct {
	Index int `json:"index"`
	// DB is the run's database: a SQLite path, or a postgres:// URL
	// whose search_path is the run's schema.
	DB string `json:"db"`
	// Redis or NATS is the broker's URL; Prefix names the run's
	// channels, so that runs sharing a broker do not hear each other.
	Redis  string `json:"redis,omitempty"`
	NATS   string `json:"nats,omitempty"`
	Prefix string `json:"prefix"`
	Addrs  int    `json:"addrs"`
	// MaxOpenConns is the process's database connections: the example's
	// 64 shared out, so that K processes open no more than one does (on
	// PostgreSQL, 64 each made 2 cores run 192 backends, and subscribing
	// at 50,000 lists timed out).
	MaxOpenConns int    `json:"max_open_conns"`
	Metrics      bool   `json:"metrics"`
	Verbose      bool   `json:"verbose"`
	CPUProfile   string `json:"cpu_profile,omitempty"`
	MemProfile   string `json:"mem_profile,omitempty"`
}

// serverEvent is one line of a server process's stdout.
type serverEvent struct {
	Event string   `json:"event"`
	Error string   `json:"error,omitempty"`
	Addrs []string `json:"addrs,omitempty"`
	// Heap and Stack are the growth of HeapInuse and StackInuse from
	// mark to subscribed.
	Heap  int64 `json:"heap,omitempty"`
	Stack int64 `json:"stack,omitempty"`
	// CPU, WriteCalls and SQL are from go to stop.
	CPU        float64   `json:"cpu,omitempty"`
	WriteCalls int64     `json:"write_calls,omitempty"`
	SQL        sqlCounts `json:"sql"`
}

// serverResult is one server process's part of a row.
type serverResult struct {
	Connections  int     `json:"connections"`
	MemPerConn   float64 `json:"mem_per_conn_bytes"`
	HeapPerConn  float64 `json:"heap_per_conn_bytes"`
	StackPerConn float64 `json:"stack_per_conn_bytes"`
	CPU          float64 `json:"cpu_seconds"`
	WriteCalls   int64   `json:"write_syscalls"`
	// The statements of the write phase, as in result. Only the process
	// holding the outbox reader's lease reads the outbox; the others'
	// capture statements are their tries to take the lease (one a
	// second on SQLite and PostgreSQL alike).
	RESTSQL        int64 `json:"rest_sql"`
	CaptureSQL     int64 `json:"capture_sql"`
	CaptureIdleSQL int64 `json:"capture_idle_sql"`
	HubSQL         int64 `json:"hub_sql"`
}

// checkProcs checks the flags of several processes.
func (o *options) checkProcs() error {
	if o.Procs < 1 {
		o.Procs = 1
	}
	switch {
	case o.Redis != "" && o.NATS != "":
		return errors.New("-redis and -nats cannot be used together: choose one broker")
	case o.Procs == 1 && (o.Redis != "" || o.NATS != ""):
		return errors.New("-redis and -nats join several server processes: use them with -procs K, K > 1")
	case o.Procs > 1 && o.Redis == "" && o.NATS == "":
		return fmt.Errorf("-procs %d: the server processes need a broker: -redis URL or -nats URL", o.Procs)
	case o.Procs > 1 && o.Scenario == "limit":
		return errors.New("-procs: the limit scenario is the bare fan-out, in one process; choose another -scenario")
	}
	return nil
}

func (o options) broker() string {
	switch {
	case o.Redis != "":
		return "redis"
	case o.NATS != "":
		return "nats"
	}
	return ""
}

// clientProcs is how many client processes hold conns connections.
func (o options) clientProcs(conns int) int {
	n := max(o.Procs, (conns+maxConnsPerClient-1)/maxConnsPerClient)
	return max(1, min(n, conns))
}

// runRowProcs measures one row with o.Procs server processes: see the
// top of this file.
func runRowProcs(ctx context.Context, o options, r row, dir string, profile, memProfile string) (res *result, err error) {
	k := o.Procs
	res = &result{
		Scenario: r.Scenario, DB: "sqlite", Connections: r.Conns, Writes: r.Writes, Rate: r.Rate,
		Procs: k, ClientProcs: o.clientProcs(r.Conns),
	}
	if o.DB != "" {
		res.DB = "postgres"
	}
	db, err := newDatabase(ctx, o.DB, dir)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, db.drop()) }()
	f := newFamily(ctx)
	defer func() {
		f.close()
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
	}()

	// The servers. The first creates the tables and takes the outbox
	// reader's lease; the others then start together.
	sp := serverPlan{
		DB: db.dsn, Redis: o.Redis, NATS: o.NATS, Prefix: "livebench-" + randomName(),
		Addrs: max(1, o.Addrs), Metrics: !o.NoMetrics, Verbose: o.Verbose,
		MaxOpenConns: max(8, 64/k),
	}
	servers := make([]*child, k)
	addrs := make([][]string, k)
	startServer := func(i int) error {
		p := sp
		p.Index, p.CPUProfile, p.MemProfile = i, perServer(profile, i), perServer(memProfile, i)
		c, err := f.start(fmt.Sprintf("server process %d", i), envServer+"="+strconv.Itoa(i), p)
		if err != nil {
			return err
		}
		servers[i] = c
		var ev serverEvent
		if err := c.next("ready", &ev); err != nil {
			return err
		}
		if len(ev.Addrs) != sp.Addrs {
			return fmt.Errorf("%s listens on %d addresses, want %d", c.name, len(ev.Addrs), sp.Addrs)
		}
		addrs[i] = ev.Addrs
		return nil
	}
	if err := startServer(0); err != nil {
		return nil, err
	}
	if err := parallel(ctx, k, k-1, func(i int) error { return startServer(i + 1) }); err != nil {
		return nil, err
	}

	setupDB, err := db.openSetup()
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, closeGorm(setupDB)) }()
	hubs := make([]string, k)
	for i := range k {
		hubs[i] = addrs[i][0]
	}
	p, err := setup(ctx, dataTarget{db: setupDB, api: hubs[0], hubs: hubs}, r, o.Progress)
	if err != nil {
		return nil, err
	}
	// Address a of server s is WSURLs[a*k + s]: connection i dials
	// server i % k.
	for a := range sp.Addrs {
		for s := range k {
			p.WSURLs = append(p.WSURLs, "ws://"+addrs[s][a]+"/ws/subscribe/")
		}
	}
	for s := range k {
		p.WriteURLs = append(p.WriteURLs, "http://"+hubs[s])
	}
	p.configure(o, r)
	for _, c := range p.Conns {
		res.Subscriptions += len(c.Subs)
	}
	if r.Scenario == "groups" {
		res.Groups = r.Subs
	}

	each := func(kids []*child, cmd string, got func(i int, line []byte) error) error {
		for _, c := range kids {
			if err := c.send(cmd); err != nil {
				return err
			}
		}
		for i, c := range kids {
			var raw json.RawMessage
			if err := c.next(cmd, &raw); err != nil {
				return err
			}
			if got != nil {
				if err := got(i, raw); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := each(servers, "mark", nil); err != nil {
		return nil, err
	}

	// The clients: a contiguous share of the connections each, client 0
	// the writer.
	nc := res.ClientProcs
	clients := make([]*child, nc)
	for c := range nc {
		lo, hi := c*len(p.Conns)/nc, (c+1)*len(p.Conns)/nc
		cp := *p
		cp.Conns = p.Conns[lo:hi]
		cp.Shard = &shardPlan{Base: lo, Writer: c == 0}
		cp.Progress = p.Progress && c == 0
		// As many connections opening at once, in all, as with one
		// client process: more made subscriptions' reads wait past the
		// hub's read timeout on PostgreSQL, on 2 cores.
		cp.DialConcurrency = max(1, p.DialConcurrency/nc)
		if clients[c], err = f.start(fmt.Sprintf("client process %d", c), envClient+"=1", &cp); err != nil {
			return nil, err
		}
	}
	for _, c := range clients {
		if err := c.next("subscribed", nil); err != nil {
			return nil, err
		}
	}

	res.Servers = make([]serverResult, k)
	err = each(servers, "subscribed", func(s int, line []byte) error {
		var ev serverEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return err
		}
		sr := &res.Servers[s]
		sr.Connections = r.Conns / k
		if s < r.Conns%k {
			sr.Connections++
		}
		if sr.Connections > 0 {
			sr.HeapPerConn = float64(ev.Heap) / float64(sr.Connections)
			sr.StackPerConn = float64(ev.Stack) / float64(sr.Connections)
			sr.MemPerConn = sr.HeapPerConn + sr.StackPerConn
		}
		// The table shows the largest.
		if s == 0 || sr.MemPerConn > res.MemPerConn {
			res.MemPerConn, res.HeapPerConn, res.StackPerConn = sr.MemPerConn, sr.HeapPerConn, sr.StackPerConn
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	if err := each(servers, "go", nil); err != nil {
		return nil, err
	}
	for _, c := range clients {
		if err := c.send("go"); err != nil {
			return nil, err
		}
	}
	if err := clients[0].next("written", nil); err != nil {
		return nil, err
	}
	for _, c := range clients[1:] {
		if err := c.send("written"); err != nil {
			return nil, err
		}
	}
	for _, c := range clients {
		if err := c.next("finished", nil); err != nil {
			return nil, err
		}
	}
	err = each(servers, "stop", func(s int, line []byte) error {
		var ev serverEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return err
		}
		sr := &res.Servers[s]
		sr.CPU, sr.WriteCalls = ev.CPU, ev.WriteCalls
		sr.RESTSQL, sr.CaptureSQL, sr.CaptureIdleSQL, sr.HubSQL = ev.SQL[sqlREST], ev.SQL[sqlCapture], ev.SQL[sqlCaptureIdle], ev.SQL[sqlLive]
		res.ServerCPU += ev.CPU
		res.ServerWriteCalls += ev.WriteCalls
		for i, n := range ev.SQL {
			res.SQL[i] += n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	parts := make([]*clientResults, nc)
	for i, c := range clients {
		c.ending.Store(true)
		if err := c.send("close"); err != nil {
			return nil, err
		}
		var ev event
		if err := c.next("results", &ev); err != nil {
			return nil, err
		}
		if ev.Results == nil {
			return nil, fmt.Errorf("%s sent no results", c.name)
		}
		parts[i] = ev.Results
	}
	for _, c := range clients {
		if err := c.wait(); err != nil {
			return nil, err
		}
	}
	for _, c := range servers {
		c.ending.Store(true)
		if err := c.send("close"); err != nil {
			return nil, err
		}
		if err := c.wait(); err != nil {
			return nil, err
		}
	}
	res.fill(mergeClients(parts))
	return res, nil
}

// perServer names server process i's profile file.
func perServer(path string, i int) string {
	if path == "" {
		return ""
	}
	return path + ".s" + strconv.Itoa(i)
}

// mergeClients sums what the client processes saw; parts[0] is the
// writer's.
func mergeClients(parts []*clientResults) *clientResults {
	m := &clientResults{WriteSeconds: parts[0].WriteSeconds}
	var (
		lats []uint32
		last int64
	)
	for _, c := range parts {
		m.Expected += c.Expected
		m.Received += c.Received
		m.Duplicates += c.Duplicates
		m.Unexpected += c.Unexpected
		m.WriteErrors += c.WriteErrors
		m.CPUSeconds += c.CPUSeconds
		m.ReadCalls += c.ReadCalls
		m.ConnectSeconds = max(m.ConnectSeconds, c.ConnectSeconds)
		m.TimedOut = m.TimedOut || c.TimedOut
		if len(m.Samples) < 10 {
			m.Samples = append(m.Samples, c.Samples...)
		}
		lats = append(lats, c.Latencies...)
		last = max(last, c.LastBroadcast)
	}
	if first := parts[0].FirstWriteAt; first > 0 && last > first {
		m.DeliverSeconds = float64(last-first) / 1e9
	}
	slices.Sort(lats)
	m.P50, m.P99, m.Max = latencyRanks(lats)
	return m
}

// serverMain is a server process: it returns the exit code.
func serverMain() int {
	raiseFileLimit()
	out := json.NewEncoder(os.Stdout)
	if err := runServer(bufio.NewReader(os.Stdin), out); err != nil {
		out.Encode(serverEvent{Event: "error", Error: err.Error()})
		return 1
	}
	return 0
}

func runServer(in *bufio.Reader, out *json.Encoder) (err error) {
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("read the plan: %w", err)
	}
	var sp serverPlan
	if err := json.Unmarshal(line, &sp); err != nil {
		return fmt.Errorf("decode the plan: %w", err)
	}
	if sp.MemProfile != "" {
		runtime.MemProfileRate = 1 // as in the one-process run
	}
	level := slog.LevelWarn
	if sp.Verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("server", sp.Index)
	ctx := context.Background()

	layer, err := openBroker(ctx, sp, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, layer.Close()) }()
	s, err := openApp(ctx, sp.DB, appLayer{layer: layer, name: sp.broker()}, sp.MaxOpenConns, sp.Addrs, sp.Metrics, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.close()) }()
	if err := out.Encode(serverEvent{Event: "ready", Addrs: s.addrs}); err != nil {
		return err
	}

	var (
		heap0, stack0 uint64
		sql0          sqlCounts
		cpu0          float64
		sysw0         uint64
	)
	for {
		cmd, err := in.ReadString('\n')
		if err != nil {
			return fmt.Errorf("waiting for a command: %w", err)
		}
		ev := serverEvent{Event: strings.TrimSpace(cmd)}
		switch ev.Event {
		case "mark":
			heap0, stack0 = heapAndStacks()
		case "subscribed":
			heap1, stack1 := heapAndStacks()
			ev.Heap, ev.Stack = int64(heap1)-int64(heap0), int64(stack1)-int64(stack0)
			if sp.MemProfile != "" {
				if err := writeHeapProfile(sp.MemProfile); err != nil {
					return err
				}
			}
		case "go":
			if sp.CPUProfile != "" {
				f, err := os.Create(sp.CPUProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
			}
			sql0 = s.counter.snapshot()
			cpu0 = cpuSeconds()
			_, sysw0 = procIO()
		case "stop":
			ev.CPU = cpuSeconds() - cpu0
			_, sysw1 := procIO()
			ev.WriteCalls = int64(sysw1 - sysw0)
			ev.SQL = s.counter.snapshot().sub(sql0)
			if sp.CPUProfile != "" {
				pprof.StopCPUProfile()
			}
		case "close":
			return nil
		default:
			return fmt.Errorf("unknown command %q", ev.Event)
		}
		if err := out.Encode(ev); err != nil {
			return err
		}
	}
}

func (sp serverPlan) broker() string {
	if sp.Redis != "" {
		return "redis"
	}
	return "nats"
}

// brokerLayer is a layer over a broker, which its opener closes.
type brokerLayer interface {
	live.Layer
	Close() error
}

func openBroker(ctx context.Context, sp serverPlan, log *slog.Logger) (brokerLayer, error) {
	switch {
	case sp.Redis != "":
		l, err := redis.New(ctx, redis.Config{URL: sp.Redis, Prefix: sp.Prefix, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		return l, nil
	case sp.NATS != "":
		l, err := nats.New(ctx, nats.Config{URL: sp.NATS, Prefix: sp.Prefix, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("-nats: %w", err)
		}
		return l, nil
	}
	return nil, errors.New("no broker: -redis or -nats")
}

// family is the child processes of one row. The parent starts and drives
// them, and ends them: at the end of the row, or all at once (killed)
// when the row fails, when ctx ends, or when one of them dies unasked.
// Such a death ends the row: every wait then returns its error.
type family struct {
	ctx  context.Context
	mu   sync.Mutex
	kids []*child

	dead      chan struct{} // closed at the first unasked death
	deadOnce  sync.Once
	cause     error
	stopAfter func() bool
}

func newFamily(ctx context.Context) *family {
	f := &family{ctx: ctx, dead: make(chan struct{})}
	f.stopAfter = context.AfterFunc(ctx, f.kill)
	return f
}

// close kills the children still running and waits for them.
func (f *family) close() {
	f.stopAfter()
	f.kill()
}

func (f *family) kill() {
	f.mu.Lock()
	kids := slices.Clone(f.kids)
	f.mu.Unlock()
	for _, c := range kids {
		c.cmd.Process.Kill() // an error: it has exited already
	}
	for _, c := range kids {
		<-c.exited
	}
}

func (f *family) fail(err error) {
	f.deadOnce.Do(func() {
		f.cause = err
		close(f.dead)
	})
}

// child is a process of the family.
type child struct {
	f      *family
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tail
	// lines are its stdout's, closed at its end. The protocol's few
	// events fit in the buffer, so reading never waits for the parent.
	lines chan []byte
	// exited is closed once it has exited, with err and errEvent set.
	exited   chan struct{}
	err      error
	errEvent string // the message of an "error" event it sent
	// ending says it was told to exit: its exit is no failure.
	ending atomic.Bool
}

// start starts a child with env (NAME=value) set and sends it plan, one
// JSON line.
func (f *family) start(name, env string, plan any) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the benchmark's executable: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env)
	dieWithParent(cmd)
	c := &child{f: f, name: name, cmd: cmd, stderr: &tail{}, lines: make(chan []byte, 64), exited: make(chan struct{})}
	cmd.Stderr = io.MultiWriter(stderr, c.stderr)
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// Under the lock, so that a kill either comes before (and the
	// context has ended) or knows the child.
	f.mu.Lock()
	if err := f.ctx.Err(); err != nil {
		f.mu.Unlock()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		f.mu.Unlock()
		return nil, fmt.Errorf("start the %s: %w", name, err)
	}
	f.kids = append(f.kids, c)
	f.mu.Unlock()
	go c.read(stdout)
	b, err := json.Marshal(plan)
	if err != nil {
		return nil, err
	}
	if err := c.send(string(b)); err != nil {
		return nil, err
	}
	return c, nil
}

// read passes the child's stdout on, line by line, then waits for its
// exit.
func (c *child) read(stdout io.Reader) {
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			var head struct {
				Event, Error string
			}
			if json.Unmarshal(line, &head) == nil && head.Event == "error" {
				c.errEvent = head.Error
			}
			c.lines <- line
		}
		if err != nil {
			break
		}
	}
	close(c.lines)
	c.err = c.cmd.Wait()
	close(c.exited)
	if !c.ending.Load() {
		c.f.fail(fmt.Errorf("%s exited: %s", c.name, c.describe()))
	}
}

// describe says why the child exited, once it has.
func (c *child) describe() string {
	msg := fmt.Sprint(c.err)
	if c.err == nil {
		msg = "exit status 0"
	}
	if c.errEvent != "" {
		msg = c.errEvent + " (" + msg + ")"
	}
	if t := strings.TrimSpace(c.stderr.String()); t != "" {
		msg += "; its stderr ended with:\n" + t
	}
	return msg
}

// next waits for the child's next event, which must be want, and
// decodes it into v (if not nil).
func (c *child) next(want string, v any) error {
	select {
	case line, ok := <-c.lines:
		if !ok {
			<-c.exited
			return fmt.Errorf("%s: waiting for %q: it exited: %s", c.name, want, c.describe())
		}
		var head struct {
			Event, Error string
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return fmt.Errorf("%s: bad event %q: %w", c.name, line, err)
		}
		switch head.Event {
		case "error":
			return fmt.Errorf("%s: %s", c.name, head.Error)
		case want:
		default:
			return fmt.Errorf("%s: got %q, want %q", c.name, head.Event, want)
		}
		if v != nil {
			if err := json.Unmarshal(line, v); err != nil {
				return fmt.Errorf("%s: bad %q event: %w", c.name, want, err)
			}
		}
		return nil
	case <-c.f.dead:
		return c.f.cause
	case <-c.f.ctx.Done():
		return c.f.ctx.Err()
	}
}

func (c *child) send(line string) error {
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	return nil
}

// wait closes the child's stdin and waits for it to exit, which it must
// have been told to (ending).
func (c *child) wait() error {
	c.stdin.Close()
	select {
	case <-c.exited:
	case <-c.f.ctx.Done():
		return c.f.ctx.Err()
	}
	if c.err != nil {
		return fmt.Errorf("%s: %s", c.name, c.describe())
	}
	return nil
}

// tail keeps the last 4 KiB written to it: a child's stderr, for the
// error that reports its death.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 4096; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
