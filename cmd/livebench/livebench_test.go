package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/restlive/restlive/internal/testenv"
)

// The test binary is also the client and server processes the benchmark
// starts: it re-executes itself with envClient or envServer set.
func TestMain(m *testing.M) {
	if os.Getenv(envClient) != "" {
		os.Exit(clientMain())
	}
	if os.Getenv(envServer) != "" {
		os.Exit(serverMain())
	}
	os.Exit(m.Run())
}

// TestQuick runs every scenario at -quick size on SQLite, as CI would run
// the command, and checks that each received exactly the broadcasts it
// expected and that the table and the JSON say so.
func TestQuick(t *testing.T) {
	rep := runQuick(t, options{Scenario: "all"})
	want := map[string]int{"watchers": 3, "limit": 2, "users": 1, "instances": 1, "groups": 4, "idle": 1}
	got := map[string]int{}
	for _, r := range rep.Results {
		got[r.Scenario]++
	}
	for s, n := range want {
		if got[s] != n {
			t.Errorf("%d rows of %s, want %d", got[s], s, n)
		}
	}
}

// TestQuickPostgres runs the scenarios that use the database on
// PostgreSQL, where the outbox reader is woken by NOTIFY and the queries
// are counted by pgx's tracer.
func TestQuickPostgres(t *testing.T) {
	db := testenv.PostgresDB(t)
	for _, s := range []string{"watchers", "users"} {
		t.Run(s, func(t *testing.T) {
			rep := runQuick(t, options{Scenario: s, DB: db, N: 10})
			for _, r := range rep.Results {
				if r.DB != "postgres" {
					t.Errorf("%s ran on %q", s, r.DB)
				}
			}
		})
	}
}

// TestProcs runs with two server processes over one SQLite file, joined
// by a real broker, and two client processes: groups over Redis, where
// the connections of every list are spread over both servers and both
// client processes, and users over NATS, where a write may be for one
// connection, held by either client process. Every broadcast must
// arrive once (runQuick), and each server process must report its
// share.
func TestProcs(t *testing.T) {
	for _, tc := range []struct {
		broker, scenario string
		n                int
		start            func(testing.TB) string
	}{
		{"redis", "groups", 200, func(t testing.TB) string { return testenv.StartRedis(t).URL }},
		{"nats", "users", 10, func(t testing.TB) string { return testenv.StartNATS(t).URL }},
	} {
		t.Run(tc.broker, func(t *testing.T) {
			o := options{Scenario: tc.scenario, N: tc.n, Procs: 2}
			url := tc.start(t) // first: it skips the test if the broker is missing
			if tc.broker == "redis" {
				o.Redis = url
			} else {
				o.NATS = url
			}
			rep := runQuick(t, o)
			if len(rep.Results) == 0 {
				t.Fatal("no rows")
			}
			for _, r := range rep.Results {
				if r.Scenario != tc.scenario || r.Procs != 2 || r.ClientProcs != 2 || len(r.Servers) != 2 {
					t.Errorf("%s: %d server processes (%d reported), %d client processes, want 2 and 2", r.Scenario, r.Procs, len(r.Servers), r.ClientProcs)
					continue
				}
				var (
					rest int64
					cpu  float64
				)
				for i, s := range r.Servers {
					// Each server process serves half the connections, and
					// answers half the writes.
					if s.Connections != tc.n/2 || s.RESTSQL < int64(r.Writes/2) || s.CPU <= 0 {
						t.Errorf("%s/%d server %d: %d connections (want %d), %d REST statements for %d writes, %.3f s CPU", r.Scenario, r.Groups, i, s.Connections, tc.n/2, s.RESTSQL, r.Writes, s.CPU)
					}
					rest += s.RESTSQL
					cpu += s.CPU
				}
				if rest != r.RESTSQL || math.Abs(cpu-r.ServerCPU) > 1e-6 {
					t.Errorf("%s/%d: the row's REST statements %d and CPU %.3f s are not the servers' sums (%d, %.3f s)", r.Scenario, r.Groups, r.RESTSQL, r.ServerCPU, rest, cpu)
				}
			}
		})
	}
}

// TestProcsFlags: -procs without a broker, or a broker without -procs,
// is an error that says what is missing, before anything starts.
func TestProcsFlags(t *testing.T) {
	for _, tc := range []struct {
		o    options
		want string
	}{
		{options{Scenario: "groups", Procs: 3}, "need a broker"},
		{options{Scenario: "groups", Redis: "redis://127.0.0.1:1/0"}, "with -procs"},
		{options{Scenario: "groups", Procs: 2, Redis: "redis://x", NATS: "nats://x"}, "cannot be used together"},
		{options{Scenario: "limit", Procs: 2, NATS: "nats://x"}, "limit"},
	} {
		_, err := run(t.Context(), tc.o, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one that says %q", tc.o, err, tc.want)
		}
	}
}

// runQuick runs o at -quick size, and checks every row, the table and the
// JSON.
func runQuick(t *testing.T, o options) *report {
	t.Helper()
	o.Quick, o.Writers, o.Addrs, o.Drain = true, 4, 2, 10*time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	var table bytes.Buffer
	rep, err := run(ctx, o, &table)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())
	if !rep.OK {
		t.Errorf("the report is not OK")
	}
	for _, r := range rep.Results {
		name := r.Scenario
		if len(r.Errors) > 0 {
			t.Errorf("%s n=%d: %s", name, r.Connections, strings.Join(r.Errors, "; "))
		}
		if r.Received != r.Expected || r.Missing != 0 || r.Duplicates != 0 || r.Unexpected != 0 {
			t.Errorf("%s n=%d: received %d of %d, %d duplicates, %d unexpected", name, r.Connections, r.Received, r.Expected, r.Duplicates, r.Unexpected)
		}
		if r.Subscriptions < r.Connections {
			t.Errorf("%s: %d subscriptions for %d connections", name, r.Subscriptions, r.Connections)
		}
		if name == "idle" {
			if r.Writes != 0 || r.Expected != 0 {
				t.Errorf("idle: %d writes, %d broadcasts expected", r.Writes, r.Expected)
			}
			continue
		}
		if r.Writes == 0 || r.Expected < int64(r.Writes) {
			t.Errorf("%s: %d writes, %d broadcasts expected", name, r.Writes, r.Expected)
		}
		if r.BroadcastsPerSec <= 0 || r.LatencyP50Ms <= 0 || r.LatencyP50Ms > r.LatencyP99Ms || r.LatencyP99Ms > r.LatencyMaxMs {
			t.Errorf("%s: %.0f broadcasts/s, latency p50 %.2f p99 %.2f max %.2f ms", name, r.BroadcastsPerSec, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyMaxMs)
		}
		if name != "limit" {
			// At least the REST write itself and the hub's check of the
			// scope; the barrier before the write phase keeps the setup's
			// queries out.
			if r.RESTSQL < int64(r.Writes) || r.HubSQL < 1 || r.CaptureSQL < 1 {
				t.Errorf("%s: SQL during the writes: rest %d, capture %d, hub %d for %d writes", name, r.RESTSQL, r.CaptureSQL, r.HubSQL, r.Writes)
			}
		}
		if r.ServerCPU <= 0 && name != "limit" {
			t.Errorf("%s: server CPU %.3f s", name, r.ServerCPU)
		}
	}

	// The table has a header and a line per row; the JSON decodes back.
	lines := strings.Split(table.String(), "\n")
	if !strings.Contains(lines[0], "bcast/s") || !strings.Contains(lines[0], "p99 ms") || !strings.Contains(lines[0], "sql/w") {
		t.Errorf("table header: %q", lines[0])
	}
	for i, r := range rep.Results {
		scenario := r.Scenario
		if r.Groups > 0 {
			scenario = fmt.Sprintf("%s/%d", r.Scenario, r.Groups)
		}
		if f := strings.Fields(lines[i+1]); len(f) < 10 || f[0] != scenario {
			t.Errorf("table line %d: %q, want the %s row", i+1, lines[i+1], r.Scenario)
		}
	}
	var js bytes.Buffer
	if err := rep.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON: %v\n%s", err, js.String())
	}
	if len(back.Results) != len(rep.Results) || !back.OK {
		t.Errorf("JSON: %d results, ok %v", len(back.Results), back.OK)
	}
	return rep
}
