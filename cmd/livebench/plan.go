package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// The clients run in a process of their own, the same binary started with
// envClient set, so that the server's CPU time and memory are measured
// apart from theirs. The benchmark (the parent) prepares the server, then
// sends the client process a plan, one JSON line on its stdin; the two
// then step through the phases in lock step:
//
//	client: {"event":"subscribed"}  every connection is open and acked
//	parent: go                      (after measuring memory)
//	client: {"event":"finished"}    every broadcast arrived, or time ran out
//	parent: close                   (after measuring CPU and queries)
//	client: {"event":"results",...} then closes its connections and exits
const envClient = "LIVEBENCH_CLIENT"

// plan is what the client process does.
type plan struct {
	// WSURLs are the server's WebSocket URLs, one per loopback address;
	// connection i dials WSURLs[i % len].
	WSURLs []string `json:"ws_urls"`
	// WriteURLs are the servers' base URLs: write i goes to
	// WriteURLs[i % len].
	WriteURLs []string   `json:"write_urls"`
	Conns     []connPlan `json:"conns"`
	// Writes are made in order, Rate per second (0: as fast as Writers
	// allow), by Writers concurrent HTTP clients. Write i is the i-th;
	// its body carries "#i", which the broadcasts it causes show.
	Writes  []writePlan `json:"writes"`
	Rate    float64     `json:"rate"`
	Writers int         `json:"writers"`
	// DialConcurrency bounds the connections being opened at once.
	DialConcurrency int `json:"dial_concurrency"`
	// ConnectTimeout bounds the connect phase; DrainTimeout how long
	// broadcasts may take to arrive after the last write; Grace how long
	// the clients keep listening for duplicates once all have arrived.
	ConnectTimeout time.Duration `json:"connect_timeout"`
	DrainTimeout   time.Duration `json:"drain_timeout"`
	Grace          time.Duration `json:"grace"`
	Progress       bool          `json:"progress"`
	Label          string        `json:"label"`
	// Shard, when set, makes this process one of several client
	// processes (-procs): see shardPlan.
	Shard *shardPlan `json:"shard,omitempty"`
}

// shardPlan is one client process's part when there are several. Conns
// is then its share of the run's connections, which start at Base in the
// run's numbering (the one Writes and WSURLs use); Writes are all the
// run's. One process, the Writer, makes the writes: it says "written"
// once they are answered, and the parent passes that on to the others,
// which start waiting for their broadcasts (DrainTimeout) then.
//
// Each write carries its start time in its text, "#i@t" (t: the
// system-wide monotonic clock, in nanoseconds), so that a process that
// did not make it knows its latency; each process sends its latencies,
// and the time of its last broadcast, for the parent to merge.
type shardPlan struct {
	Base   int  `json:"base"`
	Writer bool `json:"writer,omitempty"`
}

// connPlan is one WebSocket connection: its token (none: anonymous) and
// its subscribe frames; the request_id of Subs[k] is k+1.
type connPlan struct {
	Token string   `json:"t,omitempty"`
	Subs  []string `json:"s"`
	// Group, when not 0, is the group the connection's subscription 1
	// watches.
	Group int `json:"g,omitempty"`
}

// writePlan is one HTTP write and who must receive its broadcast: the
// subscription with request_id All of every connection; or, when Group
// is not 0, subscription 1 of the connections watching that group; or,
// when RID is not 0, the subscription RID of connection Conn.
type writePlan struct {
	Method string `json:"m"`
	Path   string `json:"p"`
	Body   string `json:"b"`
	Token  string `json:"t,omitempty"`
	Status int    `json:"st"`
	All    int    `json:"a,omitempty"`
	Group  int    `json:"g,omitempty"`
	Conn   int    `json:"c,omitempty"`
	RID    int    `json:"r,omitempty"`
}

// reaches reports whether the write's broadcast is for the subscription
// rid of connection conn, which watches group.
func (w *writePlan) reaches(conn, group, rid int) bool {
	switch {
	case w.All > 0:
		return w.All == rid
	case w.Group > 0:
		return rid == 1 && w.Group == group
	}
	return w.RID == rid && w.Conn == conn
}

// event is one line of the client process's stdout.
type event struct {
	Event   string         `json:"event"`
	Error   string         `json:"error,omitempty"`
	Results *clientResults `json:"results,omitempty"`
}

// clientResults is what the clients saw.
type clientResults struct {
	Expected   int64 `json:"expected"`
	Received   int64 `json:"received"`
	Duplicates int64 `json:"duplicates"`
	// Unexpected counts frames no subscription should have received:
	// a broadcast of a write it does not see, an error, a resync.
	Unexpected  int64    `json:"unexpected"`
	Samples     []string `json:"samples,omitempty"`
	WriteErrors int64    `json:"write_errors"`
	// WriteSeconds is from the first write's start to the last write's
	// answer; DeliverSeconds from the first write's start to the last
	// broadcast's arrival.
	WriteSeconds   float64 `json:"write_seconds"`
	DeliverSeconds float64 `json:"deliver_seconds"`
	// Latencies from a write's start to a broadcast's arrival.
	P50 time.Duration `json:"p50"`
	P99 time.Duration `json:"p99"`
	Max time.Duration `json:"max"`
	// CPUSeconds is the client process's CPU time during the write phase.
	CPUSeconds float64 `json:"cpu_seconds"`
	// ReadCalls is the read system calls of the client process during
	// the write phase.
	ReadCalls      int64   `json:"read_calls"`
	ConnectSeconds float64 `json:"connect_seconds"`
	TimedOut       bool    `json:"timed_out"`

	// With a Shard only: every latency, in microseconds; the first
	// write's start (the writer's) and the last broadcast's arrival, on
	// the system-wide monotonic clock, in nanoseconds.
	Latencies     []uint32 `json:"latencies,omitempty"`
	FirstWriteAt  int64    `json:"first_write_at,omitempty"`
	LastBroadcast int64    `json:"last_broadcast_at,omitempty"`
}

// clientProc is the client process as the parent drives it.
type clientProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events *bufio.Reader
}

func startClient(p *plan) (*clientProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the benchmark's executable: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envClient+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the client process: %w", err)
	}
	c := &clientProc{cmd: cmd, stdin: stdin, events: bufio.NewReader(stdout)}
	b, err := json.Marshal(p)
	if err == nil {
		_, err = c.stdin.Write(append(b, '\n'))
	}
	if err != nil {
		c.kill()
		return nil, fmt.Errorf("send the plan to the client process: %w", err)
	}
	return c, nil
}

// next returns the client's next event, which must be want.
func (c *clientProc) next(want string) (*event, error) {
	line, err := c.events.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("client process: waiting for %q: %w", want, errors.Join(err, c.cmd.Wait()))
	}
	var ev event
	if err := json.Unmarshal(line, &ev); err != nil {
		return nil, fmt.Errorf("client process: bad event %q: %w", line, err)
	}
	if ev.Event == "error" {
		return nil, fmt.Errorf("client process: %s", ev.Error)
	}
	if ev.Event != want {
		return nil, fmt.Errorf("client process: got %q, want %q", ev.Event, want)
	}
	return &ev, nil
}

func (c *clientProc) send(cmd string) error {
	_, err := io.WriteString(c.stdin, cmd+"\n")
	return err
}

func (c *clientProc) wait() error {
	c.stdin.Close()
	return c.cmd.Wait()
}

func (c *clientProc) kill() {
	c.stdin.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}
