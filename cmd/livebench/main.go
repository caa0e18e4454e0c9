// Command livebench measures the live server of restlive: it starts the
// example to-do app in-process (on a temporary SQLite database, or on
// PostgreSQL with -db), opens WebSocket clients on loopback in a second
// process, subscribes them, makes writes through the REST API, and prints
// what the clients received and what it cost the server.
//
//	go run ./cmd/livebench                  # every scenario, full size
//	go run ./cmd/livebench -quick           # every scenario, small
//	go run ./cmd/livebench -scenario watchers -n 10000 -m 200
//	go run ./cmd/livebench -db postgres://user@127.0.0.1:5432/db -json
//
// A missing or duplicate broadcast, or one sent to a subscription that
// should not see it, is an error: the command then exits with status 1.
// See README.md for the scenarios and the columns.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stderr is where progress and warnings go.
var stderr io.Writer = os.Stderr

func main() {
	if os.Getenv(envClient) != "" {
		os.Exit(clientMain())
	}
	if os.Getenv(envServer) != "" {
		os.Exit(serverMain())
	}
	var o options
	fs := flag.NewFlagSet("livebench", flag.ExitOnError)
	o.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: livebench [flags]\n\nScenarios: %s, or all.\n\n", strings.Join(scenarios, ", "))
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := run(ctx, o, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "livebench:", err)
		os.Exit(1)
	}
	if !report.OK {
		os.Exit(1)
	}
}

var scenarios = []string{"watchers", "users", "instances", "groups", "idle", "limit"}

// options are the command's flags.
type options struct {
	Scenario   string
	N, M       int
	Rate       float64
	Writers    int
	DB         string
	JSON       bool
	Progress   bool
	Quick      bool
	Addrs      int
	CPUProfile string
	MemProfile string
	Drain      time.Duration
	Verbose    bool
	NoMetrics  bool
	// Procs server processes, and as many client processes or more,
	// over the broker at Redis or NATS (procs.go).
	Procs       int
	Redis, NATS string
}

func (o *options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.Scenario, "scenario", "all", "scenario to run: "+strings.Join(scenarios, ", ")+", or all")
	fs.IntVar(&o.N, "n", 0, "connections (users for users, subscriptions for instances), instead of the scenario's defaults")
	fs.IntVar(&o.M, "m", 0, "writes, instead of the scenario's defaults")
	fs.Float64Var(&o.Rate, "rate", 0, "writes per second (default: as fast as the writers go)")
	fs.IntVar(&o.Writers, "writers", 4, "concurrent HTTP clients making the writes")
	fs.StringVar(&o.DB, "db", "", "postgres:// URL of a database to run on (a new schema per run, dropped after); default: a SQLite file in a temporary directory")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON instead of a table")
	fs.BoolVar(&o.Progress, "progress", false, "draw progress bars on stderr even when it is not a terminal")
	fs.BoolVar(&o.Quick, "quick", false, "small sizes: a check that everything works, in seconds")
	fs.IntVar(&o.Addrs, "addrs", 4, "loopback addresses to listen on (127.0.0.1, 127.0.0.2, ...), for more client ports")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the server process's write phase to this file (one per run: .N added when there are several)")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile of the server process to this file once the clients are subscribed (.N added as for -cpuprofile)")
	fs.DurationVar(&o.Drain, "drain", 2*time.Minute, "how long broadcasts may take to arrive after the last write")
	fs.BoolVar(&o.Verbose, "v", false, "log the server's info lines too (a line per request and connection); warnings and errors always are")
	fs.BoolVar(&o.NoMetrics, "nometrics", false, "run the server without its Prometheus metrics, to measure what they cost")
	fs.IntVar(&o.Procs, "procs", 1, "server processes sharing the database through a broker (-redis or -nats), and client processes (as many, or one per 19,000 connections); 1: the server in this process")
	fs.StringVar(&o.Redis, "redis", "", "with -procs: the Redis server `URL` (redis://host:port/db) that joins the server processes")
	fs.StringVar(&o.NATS, "nats", "", "with -procs: the NATS server `URL` (nats://host:port) that joins the server processes")
}

// rows returns the runs o asks for.
func (o options) rows() ([]row, error) {
	want := func(s string) bool { return o.Scenario == "all" || o.Scenario == s }
	if o.Scenario != "all" && !slices.Contains(scenarios, o.Scenario) {
		return nil, fmt.Errorf("unknown scenario %q: want one of %s, or all", o.Scenario, strings.Join(scenarios, ", "))
	}
	pick := func(def int, override int) int {
		if override > 0 {
			return override
		}
		return def
	}
	// Sizes: the issue's, or small ones with -quick.
	watchers := []int{1, 100, 1000, 10000}
	writesFor := func(n int) int { // about two million broadcasts at most
		return min(2000, max(200, 2_000_000/n))
	}
	latencyN, latencyRate, latencyM := 1000, 500.0, 2500
	users, usersM := 1000, 200
	instSubs, instConns, instM := 10000, 500, 2000
	idle := 10000
	// Many small groups: 50,000 connections, 10 per list at 5,000 lists
	// (at 200 writes/s and then flat out), and the same connections over
	// 500 and 50,000 lists to show the hub's work does not grow with them.
	groupConns, groupM, groupRate := 50000, 2000, 200.0
	groupSizes := []int{500, 5000, 50000}
	if o.Quick {
		watchers = []int{1, 20}
		writesFor = func(int) int { return 20 }
		latencyN, latencyRate, latencyM = 20, 200, 20
		users, usersM = 5, 20
		instSubs, instConns, instM = 50, 5, 20
		idle = 20
		groupConns, groupM, groupRate = 200, 40, 200
		groupSizes = []int{3, 30, 200} // 40 writes: some lists get 2, some 1, some none
	}
	if o.N > 0 {
		watchers = []int{o.N}
	}
	var rows []row
	for _, s := range []string{"watchers", "limit"} {
		if !want(s) || s == "limit" && o.Procs > 1 {
			continue
		}
		for _, n := range watchers {
			rows = append(rows, row{Scenario: s, Conns: n, Writes: pick(writesFor(n), o.M), Rate: o.Rate})
		}
		// The latency target's case: 1,000 subscribers at 500 writes/s.
		if s == "watchers" && o.N == 0 && o.Rate == 0 {
			rows = append(rows, row{Scenario: s, Conns: latencyN, Writes: pick(latencyM, o.M), Rate: latencyRate})
		}
	}
	if want("users") {
		rows = append(rows, row{Scenario: "users", Conns: pick(users, o.N), Writes: pick(usersM, o.M), Rate: o.Rate})
	}
	if want("instances") {
		subs := pick(instSubs, o.N)
		conns := min(instConns, subs)
		if o.N > 0 {
			conns = max(1, min(subs, subs/20))
		}
		rows = append(rows, row{Scenario: "instances", Conns: conns, Subs: subs, Writes: min(pick(instM, o.M), subs), Rate: o.Rate})
	}
	if want("groups") {
		conns := pick(groupConns, o.N)
		sizes := groupSizes
		if o.N > 0 {
			sizes = []int{max(1, conns/100), max(1, conns/10), conns}
		}
		for _, g := range sizes {
			g = min(g, conns)
			if g == sizes[len(sizes)/2] && o.Rate == 0 {
				rows = append(rows, row{Scenario: "groups", Conns: conns, Subs: g, Writes: pick(groupM, o.M), Rate: groupRate})
			}
			rows = append(rows, row{Scenario: "groups", Conns: conns, Subs: g, Writes: pick(groupM, o.M), Rate: o.Rate})
		}
	}
	if want("idle") {
		rows = append(rows, row{Scenario: "idle", Conns: pick(idle, o.N)})
	}
	return rows, nil
}

// run runs the rows o asks for and writes the report to out.
func run(ctx context.Context, o options, out io.Writer) (*report, error) {
	if err := o.checkProcs(); err != nil {
		return nil, err
	}
	rows, err := o.rows()
	if err != nil {
		return nil, err
	}
	if o.Writers < 1 {
		o.Writers = 1
	}
	o.Progress = o.Progress || isTerminal(os.Stderr)
	if o.MemProfile != "" {
		// Every allocation, so that the profile's bytes per connection
		// are exact rather than sampled.
		runtime.MemProfileRate = 1
	}
	limit, raised := raiseFileLimit()
	need := 0
	for _, r := range rows {
		need = max(need, r.Conns)
	}
	need = (need + o.Procs - 1) / o.Procs // each process's share
	if limit < uint64(need+1000) {
		fmt.Fprintf(stderr, "livebench: the open file limit is %d (raised: %v), below the %d this run needs for its %d connections: raise the hard limit (ulimit -Hn) or lower -n\n",
			limit, raised, need+1000, need)
	}
	dir, err := os.MkdirTemp("", "livebench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	level := slog.LevelWarn
	if o.Verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	rep := &report{Env: environment(o, limit)}
	for i, r := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := func(path string) string {
			if path != "" && len(rows) > 1 {
				path += "." + strconv.Itoa(i+1)
			}
			return path
		}
		var res *result
		if o.Procs > 1 {
			res, err = runRowProcs(ctx, o, r, dir, name(o.CPUProfile), name(o.MemProfile))
		} else {
			res, err = runRow(ctx, o, r, dir, log, name(o.CPUProfile), name(o.MemProfile))
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.label(), err)
		}
		rep.Results = append(rep.Results, res)
	}
	rep.finish()
	if o.JSON {
		err = rep.writeJSON(out)
	} else {
		err = rep.writeTable(out)
	}
	return rep, err
}

// runRow measures one row: it starts the server (the app, or the bare
// fan-out for "limit"), prepares its data, and drives a client process
// through the phases.
func runRow(ctx context.Context, o options, r row, dir string, log *slog.Logger, profile, memProfile string) (res *result, err error) {
	res = &result{
		Scenario: r.Scenario, DB: "sqlite", Connections: r.Conns, Writes: r.Writes, Rate: r.Rate,
	}
	var (
		p       *plan
		counter *sqlCounter
		closeFn func() error
	)
	defer func() {
		if closeFn != nil {
			err = errors.Join(err, closeFn())
		}
	}()
	if r.Scenario == "limit" {
		res.DB = "none"
		f, err := startFanout(o.Addrs)
		if err != nil {
			return nil, err
		}
		closeFn = f.close
		p = &plan{WriteURLs: []string{"http://" + f.addrs[0]}}
		for _, a := range f.addrs {
			p.WSURLs = append(p.WSURLs, "ws://"+a+"/ws")
		}
		sub := []string{`{"request_id":1,"model":"todolist.Task","group_by":"list_id","value":1,"ack":true}`}
		p.Conns = make([]connPlan, r.Conns)
		for i := range p.Conns {
			p.Conns[i] = connPlan{Subs: sub}
		}
		for i := range r.Writes {
			p.Writes = append(p.Writes, writePlan{Method: "POST", Path: "/write", Body: strconv.Itoa(i), Status: 204, All: 1})
		}
	} else {
		if o.DB != "" {
			res.DB = "postgres"
		}
		s, err := startApp(ctx, o.DB, dir, o.Addrs, !o.NoMetrics, log)
		if err != nil {
			return nil, err
		}
		closeFn = s.close
		counter = s.counter
		if p, err = setup(ctx, dataTarget{db: s.setup, api: s.addrs[0], hubs: s.addrs[:1]}, r, o.Progress); err != nil {
			return nil, err
		}
		p.WriteURLs = []string{"http://" + s.addrs[0]}
		for _, a := range s.addrs {
			p.WSURLs = append(p.WSURLs, "ws://"+a+"/ws/subscribe/")
		}
	}
	for _, c := range p.Conns {
		res.Subscriptions += len(c.Subs)
	}
	if r.Scenario == "groups" {
		res.Groups = r.Subs
	}
	p.configure(o, r)

	heap0, stack0 := heapAndStacks()
	client, err := startClient(p)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			client.kill()
		}
	}()
	if _, err := client.next("subscribed"); err != nil {
		return nil, err
	}
	heap1, stack1 := heapAndStacks()
	if r.Conns > 0 {
		perConn := func(a, b uint64) float64 { return float64(int64(b)-int64(a)) / float64(r.Conns) }
		res.HeapPerConn, res.StackPerConn = perConn(heap0, heap1), perConn(stack0, stack1)
		res.MemPerConn = res.HeapPerConn + res.StackPerConn
	}
	if memProfile != "" {
		if err := writeHeapProfile(memProfile); err != nil {
			return nil, err
		}
	}

	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
	}
	var sql0 sqlCounts
	if counter != nil {
		sql0 = counter.snapshot()
	}
	cpu0 := cpuSeconds()
	_, sysw0 := procIO()
	if err := client.send("go"); err != nil {
		return nil, err
	}
	if _, err := client.next("finished"); err != nil {
		return nil, err
	}
	res.ServerCPU = cpuSeconds() - cpu0
	_, sysw1 := procIO()
	res.ServerWriteCalls = int64(sysw1 - sysw0)
	if counter != nil {
		res.SQL = counter.snapshot().sub(sql0)
	}
	if profile != "" {
		pprof.StopCPUProfile()
	}
	if err := client.send("close"); err != nil {
		return nil, err
	}
	ev, err := client.next("results")
	if err != nil {
		return nil, err
	}
	if err := client.wait(); err != nil {
		return nil, fmt.Errorf("client process: %w", err)
	}
	res.fill(ev.Results)
	return res, nil
}

// configure sets the run's settings of the clients' plan.
func (p *plan) configure(o options, r row) {
	p.Rate, p.Writers = r.Rate, o.Writers
	p.DialConcurrency = 64
	p.ConnectTimeout = 5 * time.Minute
	p.DrainTimeout = o.Drain
	p.Grace = 200 * time.Millisecond
	p.Progress = o.Progress
	p.Label = r.label()
}

// heapAndStacks is the memory the process's heap and goroutine stacks
// hold, after two collections (the second frees what finalizers of the
// first released).
func heapAndStacks() (heap, stacks uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.StackInuse
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// cpuSeconds is the process's user and system CPU time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// procIO returns how many read and write system calls the process has
// made (of every kind: sockets, files), from /proc/self/io; zeros where
// there is no such file.
func procIO() (reads, writes uint64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// raiseFileLimit raises the open file limit to its hard limit (the
// server and the clients each hold a descriptor per connection) and
// returns the limit in force.
func raiseFileLimit() (limit uint64, raised bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, false
	}
	if rl.Cur < rl.Max {
		old := rl.Cur
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return old, false
		}
		return rl.Cur, true
	}
	return rl.Cur, false
}
