package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one row of the report.
type result struct {
	Scenario      string `json:"scenario"`
	DB            string `json:"db"`
	Connections   int    `json:"connections"`
	Subscriptions int    `json:"subscriptions"`
	// Groups is, for "groups", the lists the connections watch.
	Groups int     `json:"groups,omitempty"`
	Writes int     `json:"writes"`
	Rate   float64 `json:"rate"` // target writes/s; 0: unlimited
	// WriteRate is the writes per second achieved.
	WriteRate float64 `json:"write_rate"`

	Expected    int64 `json:"expected"`
	Received    int64 `json:"received"`
	Missing     int64 `json:"missing"`
	Duplicates  int64 `json:"duplicates"`
	Unexpected  int64 `json:"unexpected"`
	WriteErrors int64 `json:"write_errors"`
	TimedOut    bool  `json:"timed_out"`

	// BroadcastsPerSec is received broadcasts over the time from the
	// first write to the last broadcast.
	BroadcastsPerSec float64 `json:"broadcasts_per_sec"`
	LatencyP50Ms     float64 `json:"latency_p50_ms"`
	LatencyP99Ms     float64 `json:"latency_p99_ms"`
	LatencyMaxMs     float64 `json:"latency_max_ms"`

	// SQL counts the server's statements during the write phase, by who
	// ran them (see sqlcount.go).
	SQL sqlCounts `json:"-"`
	// SQLPerWrite is all of them per write; LiveSQLPerWrite those of the
	// outbox reader and the hub, which the live updates cost on top of
	// the REST request's own, but for the reader's idle polls (reads that
	// found nothing: a cost per second, not per write, CaptureIdleSQL).
	SQLPerWrite     float64 `json:"sql_per_write"`
	RESTSQLPerWrite float64 `json:"rest_sql_per_write"`
	LiveSQLPerWrite float64 `json:"live_sql_per_write"`
	CaptureSQL      int64   `json:"capture_sql"`
	CaptureIdleSQL  int64   `json:"capture_idle_sql"`
	HubSQL          int64   `json:"hub_sql"`
	RESTSQL         int64   `json:"rest_sql"`

	// MemPerConn is the growth of the server process's heap and stacks
	// from before the clients connected to when all were subscribed,
	// divided by the connections.
	MemPerConn float64 `json:"mem_per_conn_bytes"`
	// HeapPerConn and StackPerConn are its two parts: HeapInuse and
	// StackInuse of runtime.MemStats.
	HeapPerConn  float64 `json:"heap_per_conn_bytes"`
	StackPerConn float64 `json:"stack_per_conn_bytes"`
	// ServerCPU and ClientCPU are the CPU seconds (user and system) of
	// the server process and of the client process during the write
	// phase.
	ServerCPU float64 `json:"server_cpu_seconds"`
	// ServerWriteCalls is the write system calls of the server process
	// during the write phase (sockets and database files alike), and
	// ClientReadCalls the read system calls of the client process: how
	// well frames are batched.
	ServerWriteCalls int64   `json:"server_write_syscalls"`
	ClientReadCalls  int64   `json:"client_read_syscalls"`
	ClientCPU        float64 `json:"client_cpu_seconds"`
	WriteSecs        float64 `json:"write_seconds"`
	DeliverSec       float64 `json:"deliver_seconds"`
	// VsLimit is BroadcastsPerSec over that of the limit row with the
	// same connections (watchers only).
	VsLimit float64 `json:"vs_limit,omitempty"`

	// Procs is the server processes (-procs), ClientProcs the client
	// processes, when there are several; then Servers are each server
	// process's figures: SQL, ServerCPU and ServerWriteCalls are their
	// sums, and MemPerConn (with its heap and stack) the largest.
	Procs       int            `json:"procs,omitempty"`
	ClientProcs int            `json:"client_procs,omitempty"`
	Servers     []serverResult `json:"servers,omitempty"`

	Errors []string `json:"errors,omitempty"`
}

func (r *result) fill(c *clientResults) {
	r.Expected, r.Received = c.Expected, c.Received
	r.Missing = max(0, c.Expected-c.Received)
	r.Duplicates, r.Unexpected, r.WriteErrors, r.TimedOut = c.Duplicates, c.Unexpected, c.WriteErrors, c.TimedOut
	r.WriteSecs, r.DeliverSec, r.ClientCPU = c.WriteSeconds, c.DeliverSeconds, c.CPUSeconds
	r.ClientReadCalls = c.ReadCalls
	if c.WriteSeconds > 0 {
		r.WriteRate = float64(r.Writes) / c.WriteSeconds
	}
	if c.DeliverSeconds > 0 {
		r.BroadcastsPerSec = float64(c.Received) / c.DeliverSeconds
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs = ms(c.P50), ms(c.P99), ms(c.Max)
	r.RESTSQL, r.CaptureSQL, r.HubSQL = r.SQL[sqlREST], r.SQL[sqlCapture], r.SQL[sqlLive]
	r.CaptureIdleSQL = r.SQL[sqlCaptureIdle]
	if r.Writes > 0 && r.DB != "none" {
		w := float64(r.Writes)
		r.SQLPerWrite = float64(r.SQL.total()) / w
		r.RESTSQLPerWrite = float64(r.RESTSQL) / w
		r.LiveSQLPerWrite = float64(r.CaptureSQL+r.HubSQL) / w
	}
	if r.Missing > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%d broadcasts missing", r.Missing))
	}
	if r.Duplicates > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%d duplicate broadcasts", r.Duplicates))
	}
	if r.Unexpected > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%d unexpected frames", r.Unexpected))
	}
	if r.WriteErrors > 0 {
		r.Errors = append(r.Errors, fmt.Sprintf("%d writes failed", r.WriteErrors))
	}
	for _, s := range c.Samples {
		r.Errors = append(r.Errors, "e.g. "+s)
	}
}

// report is the command's output.
type report struct {
	Env     map[string]string `json:"environment"`
	Results []*result         `json:"results"`
	Targets []target          `json:"targets"`
	// OK is false when a row has an error: a missing, duplicate or
	// unexpected broadcast, or a failed write.
	OK bool `json:"ok"`
}

// target is one of the targets, as measured.
type target struct {
	Name     string `json:"name"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

func environment(o options, fdLimit uint64) map[string]string {
	db := "sqlite (temporary file)"
	if o.DB != "" {
		db = "postgres"
	}
	env := map[string]string{
		"go":         runtime.Version(),
		"gomaxprocs": fmt.Sprint(runtime.GOMAXPROCS(0)),
		"cpus":       fmt.Sprint(runtime.NumCPU()),
		"db":         db,
		"fd_limit":   fmt.Sprint(fdLimit),
		"writers":    fmt.Sprint(o.Writers),
		"clients":    "a separate process on the same machine: its CPU is client_cpu_seconds, the server's server_cpu_seconds",
	}
	if o.Procs > 1 {
		env["procs"] = fmt.Sprint(o.Procs)
		env["broker"] = o.broker()
		env["clients"] = fmt.Sprintf("client processes on the same machine, %d or one per %d connections if that is more: client_cpu_seconds is their sum", o.Procs, maxConnsPerClient)
	}
	return env
}

// finish compares watchers with limit and checks the targets.
func (rep *report) finish() {
	rep.OK = true
	limit := map[int]float64{}
	for _, r := range rep.Results {
		if r.Scenario == "limit" && r.Rate == 0 {
			limit[r.Connections] = r.BroadcastsPerSec
		}
		if len(r.Errors) > 0 {
			rep.OK = false
		}
	}
	for _, r := range rep.Results {
		if l := limit[r.Connections]; r.Scenario == "watchers" && r.Rate == 0 && l > 0 {
			r.VsLimit = r.BroadcastsPerSec / l
		}
	}
	for _, r := range rep.Results {
		switch {
		case r.Scenario == "watchers" && r.Rate == 0 && r.Connections == 10000 && r.VsLimit > 0:
			rep.Targets = append(rep.Targets, target{
				Name:     "watchers n=10000: broadcasts/s >= 0.5 x limit, none lost",
				Measured: fmt.Sprintf("%.0f/s = %.2f x limit (%.0f/s), %d missing", r.BroadcastsPerSec, r.VsLimit, limit[10000], r.Missing),
				Met:      r.VsLimit >= 0.5 && r.Missing == 0,
			})
		case r.Scenario == "watchers" && r.Rate == 0 && (r.Connections == 100 || r.Connections == 1000) && r.VsLimit > 0:
			rep.Targets = append(rep.Targets, target{
				Name:     fmt.Sprintf("watchers n=%d: broadcasts/s >= 0.8 x limit, none lost", r.Connections),
				Measured: fmt.Sprintf("%.0f/s = %.2f x limit (%.0f/s), %d missing", r.BroadcastsPerSec, r.VsLimit, limit[r.Connections], r.Missing),
				Met:      r.VsLimit >= 0.8 && r.Missing == 0,
			})
		case r.Scenario == "groups" && r.Connections >= 10000:
			rep.Targets = append(rep.Targets, target{
				Name:     fmt.Sprintf("groups n=%d over %d lists: every broadcast, memory <= 16 KiB per connection", r.Connections, r.Groups),
				Measured: fmt.Sprintf("%d of %d received, %.1f KiB", r.Received, r.Expected, r.MemPerConn/1024),
				Met:      r.Missing == 0 && r.Received == r.Expected && r.MemPerConn <= 16*1024,
			})
		case r.Scenario == "watchers" && r.Connections == 1000 && r.Rate == 500:
			rep.Targets = append(rep.Targets, target{
				Name:     "watchers n=1000 @500 writes/s: p99 < 25 ms",
				Measured: fmt.Sprintf("p99 %.1f ms (%.0f writes/s achieved)", r.LatencyP99Ms, r.WriteRate),
				Met:      r.LatencyP99Ms < 25 && r.WriteRate >= 0.95*500,
			})
		case r.Scenario == "idle" && r.Connections >= 1000:
			rep.Targets = append(rep.Targets, target{
				Name:     fmt.Sprintf("idle n=%d: memory < 20 KiB per connection", r.Connections),
				Measured: fmt.Sprintf("%.1f KiB", r.MemPerConn/1024),
				Met:      r.MemPerConn < 20*1024,
			})
		}
	}
	sqlTarget := func(scenario string, most float64) {
		worst, which, found := 0.0, "", false
		for _, r := range rep.Results {
			if r.Scenario == scenario && r.Writes > 0 {
				found = true
				if r.LiveSQLPerWrite >= worst {
					worst, which = r.LiveSQLPerWrite, fmt.Sprintf("n=%d, %.2f with the REST request's own", r.Connections, r.SQLPerWrite)
				}
			}
		}
		if found {
			rep.Targets = append(rep.Targets, target{
				Name:     fmt.Sprintf("%s: SQL queries per write <= %g (outbox reader + hub)", scenario, most),
				Measured: fmt.Sprintf("%.2f at worst (%s)", worst, which),
				Met:      worst <= most,
			})
		}
	}
	sqlTarget("watchers", 2)
	sqlTarget("users", 5)
}

func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

func (rep *report) writeTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tdb\tconns\tsubs\twrites\twrites/s\texpected\treceived\tmissing\tdup\tbcast/s\tp50 ms\tp99 ms\tmax ms\tsql/w\tlive sql/w\tmem/conn\tcpu srv s\tcpu cli s\tbcast/wsys\tvs limit\t")
	for _, r := range rep.Results {
		rate := "max"
		if r.Rate > 0 {
			rate = fmt.Sprintf("%g", r.Rate)
		}
		rate = fmt.Sprintf("%.0f (%s)", r.WriteRate, rate)
		sql, live := "-", "-"
		if r.DB != "none" && r.Writes > 0 {
			sql, live = fmt.Sprintf("%.2f", r.SQLPerWrite), fmt.Sprintf("%.2f", r.LiveSQLPerWrite)
		}
		vs := "-"
		if r.VsLimit > 0 {
			vs = fmt.Sprintf("%.2f", r.VsLimit)
		}
		if r.Writes == 0 {
			rate = "-"
		}
		perCall := "-"
		if r.ServerWriteCalls > 0 && r.Received > 0 {
			perCall = fmt.Sprintf("%.1f", float64(r.Received)/float64(r.ServerWriteCalls))
		}
		scenario := r.Scenario
		if r.Groups > 0 {
			scenario = fmt.Sprintf("%s/%d", r.Scenario, r.Groups)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%.1f KiB\t%.2f\t%.2f\t%s\t%s\t\n",
			scenario, r.DB, r.Connections, r.Subscriptions, r.Writes, rate, r.Expected, r.Received, r.Missing, r.Duplicates,
			r.BroadcastsPerSec, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs, sql, live, r.MemPerConn/1024, r.ServerCPU, r.ClientCPU, perCall, vs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s, GOMAXPROCS %s on %s CPUs, %s, %s writers; clients in a separate process (cpu cli s).\n",
		rep.Env["go"], rep.Env["gomaxprocs"], rep.Env["cpus"], rep.Env["db"], rep.Env["writers"])
	if procs := rep.Env["procs"]; procs != "" {
		fmt.Fprintf(&b, "%s server processes sharing the database over %s, the connections and the writes spread over them;\n"+
			"client processes: %s. cpu srv s, sql/w and bcast/wsys are summed over the server processes,\n"+
			"cpu cli s over the client processes; mem/conn is the largest server process's (its growth ÷ its connections).\n",
			procs, rep.Env["broker"], clientProcsNote(rep.Results))
	}
	b.WriteString("sql/w: the server's SQL statements per write, all of them; live sql/w: those of the outbox reader and\n" +
		"the hub, without the reader's idle polls (reads that found nothing: a cost per second, not per write).\n" +
		"mem/conn: growth of the server's heap and stacks per connection, once all are subscribed.\n" +
		"bcast/wsys: broadcasts received per write system call of the server process (all of them).\n")
	for _, r := range rep.Results {
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "ERROR %s n=%d: %s\n", r.Scenario, r.Connections, e)
		}
	}
	if len(rep.Targets) > 0 {
		b.WriteString("\ntargets:\n")
		for _, t := range rep.Targets {
			mark := "met   "
			if !t.Met {
				mark = "MISSED"
			}
			fmt.Fprintf(&b, "  %s %s: %s\n", mark, t.Name, t.Measured)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// clientProcsNote says how many client processes the rows had.
func clientProcsNote(results []*result) string {
	var counts []string
	for _, r := range results {
		if n := fmt.Sprint(r.ClientProcs); !slices.Contains(counts, n) {
			counts = append(counts, n)
		}
	}
	return strings.Join(counts, ", ")
}
