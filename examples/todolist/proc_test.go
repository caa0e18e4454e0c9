package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The tests of this package run the todolist command as real processes:
// several servers on loopback ports sharing one database and one broker,
// with WebSocket clients and REST writes spread over them.

// binDir holds the commands the tests build, for the whole run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "todolist-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildMu sync.Mutex
	built   = map[bool]string{} // by race: the binary's path
)

// command builds the todolist command once per test run and returns its
// path. With race, the command runs under the race detector, as the tests
// do; the benchmarks measure a command without it.
func command(tb testing.TB, race bool) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[race]; ok {
		return bin
	}
	bin := filepath.Join(binDir, "todolist")
	args := []string{"build", "-o"}
	if race {
		bin += "-race"
		args = append(args, bin, "-race", ".")
	} else {
		args = append(args, bin, ".")
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	built[race] = bin
	return bin
}

// proc is a todolist process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *logBuffer
	url  string // http://127.0.0.1:port, once serving
	ws   string // ws://127.0.0.1:port/ws/subscribe/

	exited  chan struct{} // closed when the process has exited
	waitErr error         // what Wait returned, once exited
}

// spawn starts bin with args and returns at once; the process is killed
// when the test ends if it still runs. Its stderr goes to a file in the
// test's directory, whose tail the test log shows if the test fails, and
// the process must not report a data race.
func spawn(t testing.TB, name, bin string, args ...string) *proc {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, log: &logBuffer{file: f}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		f.Close()
		if strings.Contains(p.log.String(), "WARNING: DATA RACE") {
			t.Errorf("%s reported a data race", name)
		}
		if t.Failed() {
			t.Logf("%s (%s), last lines of its log (%s):\n%s", name, strings.Join(args, " "), f.Name(), p.log.tail(40))
		}
	})
	return p
}

var servingRE = regexp.MustCompile(`msg="todolist: serving" url=http://([0-9.:]+)/`)

// startServer runs a todolist server on a free loopback port and returns
// when it serves.
func startServer(t testing.TB, name, bin string, args ...string) *proc {
	t.Helper()
	p := spawn(t, name, bin, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	m, err := p.log.waitMatch(servingRE, 60*time.Second, p.exited)
	if err != nil {
		t.Fatalf("%s does not serve: %v\n%s", name, err, p.log.tail(40))
	}
	p.url = "http://" + m[1]
	p.ws = "ws://" + m[1] + "/ws/subscribe/"
	return p
}

// wait waits until the process exits, failing the test after timeout.
func (p *proc) wait(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(timeout):
		t.Fatalf("%s still runs after %v", p.name, timeout)
		return nil
	}
}

// stop asks the process to stop (SIGTERM) and expects a clean exit.
func (p *proc) stop(t testing.TB) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("signal %s: %v", p.name, err)
		return
	}
	if err := p.wait(t, 20*time.Second); err != nil {
		t.Errorf("%s after SIGTERM: %v", p.name, err)
	}
}

// logBuffer keeps a process's output, in a file and in memory, and
// wakes those waiting for a line.
type logBuffer struct {
	file *os.File

	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{} // closed and replaced by each Write
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.file.Write(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.written != nil {
		close(l.written)
		l.written = nil
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// tail returns the last n lines.
func (l *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// count returns how many times substr occurs.
func (l *logBuffer) count(substr string) int { return strings.Count(l.String(), substr) }

// waitMatch waits until the log matches re and returns the submatches.
// It gives up after timeout, or when exited closes.
func (l *logBuffer) waitMatch(re *regexp.Regexp, timeout time.Duration, exited <-chan struct{}) ([]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		m := re.FindStringSubmatch(l.b.String())
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		if m != nil {
			return m, nil
		}
		select {
		case <-written:
		case <-exited:
			exited = nil // read what it wrote last, then give up
			if m := re.FindStringSubmatch(l.String()); m != nil {
				return m, nil
			}
			return nil, errors.New("the process exited")
		case <-deadline.C:
			return nil, fmt.Errorf("no match for %s after %v", re, timeout)
		}
	}
}

// waitCount waits until substr occurs at least n times in the log.
func (l *logBuffer) waitCount(substr string, n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		found := strings.Count(l.b.String(), substr)
		if l.written == nil {
			l.written = make(chan struct{})
		}
		written := l.written
		l.mu.Unlock()
		if found >= n {
			return nil
		}
		select {
		case <-written:
		case <-deadline.C:
			return fmt.Errorf("%q occurs %d times after %v, want %d", substr, found, timeout, n)
		}
	}
}

// rest is an HTTP client of the servers' REST APIs.
type rest struct{ client *http.Client }

func newREST(t testing.TB) *rest {
	tr := &http.Transport{MaxIdleConnsPerHost: 32}
	t.Cleanup(tr.CloseIdleConnections)
	return &rest{client: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// do sends a JSON request and decodes a 2xx answer into out (if not nil).
func (r *rest) do(ctx context.Context, method, url string, header http.Header, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, url, err)
	}
	if res.StatusCode/100 != 2 {
		return &statusError{fmt.Sprintf("%s %s: %s: %s", method, url, res.Status, b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %q: %w", method, url, b, err)
		}
	}
	return nil
}

// statusError is an answer other than 2xx: the server is alive, so the
// request is not to be retried elsewhere.
type statusError struct{ msg string }

func (e *statusError) Error() string { return e.msg }

// setupList registers a user through srv and creates a public list, on
// which anonymous clients may read and write tasks. It returns the list's
// id.
func setupList(t testing.TB, r *rest, srv *proc) uint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Registering logs in too: a login would hash the password again,
	// which takes a second under the race detector.
	creds := map[string]string{"username": "alice", "password": "correct horse"}
	var reg struct{ Token string }
	if err := r.do(ctx, "POST", srv.url+"/api/auth/register", nil, creds, &reg); err != nil {
		t.Fatal(err)
	}
	var list struct{ ID uint }
	h := http.Header{"Authorization": {"Token " + reg.Token}}
	if err := r.do(ctx, "POST", srv.url+"/api/lists/", h, map[string]any{"name": "shared", "public": true}, &list); err != nil {
		t.Fatal(err)
	}
	return list.ID
}

// A task's text is "t<chain> v<version>": each write of a task writes the
// next version, so that every write changes what subscribers see, and a
// subscriber can tell that it saw a task's versions once each and in
// order.
func taskText(chain, version int) string { return fmt.Sprintf("t%d v%d", chain, version) }

func parseText(s string) (chain, version int, err error) {
	_, err = fmt.Sscanf(s, "t%d v%d", &chain, &version)
	return
}

// observer collects what the WebSocket clients of a test receive, checks
// each broadcast as it arrives, and wakes those waiting for a state.
type observer struct {
	mu      sync.Mutex
	clients []*client
	errs    []string
	changed chan struct{} // closed and replaced by each event
	// onBroadcast, if set, is called with o.mu held for each broadcast
	// of a task, with when it arrived.
	onBroadcast func(c *client, id uint, version int, at time.Time)
}

// client is one WebSocket client, subscribed to the tasks of one list.
// Its fields after conn are guarded by observer.mu.
type client struct {
	name   string
	server int // index of the server it is connected to
	conn   *websocket.Conn
	done   chan struct{} // closed when its reader has returned

	acked    bool
	resyncs  int
	closed   bool
	closeErr error
	versions map[uint][]int // by task id: the versions received, in order
	frames   int
}

// last returns the last version of task id that c received, -1 for none.
func (c *client) last(id uint) int {
	v := c.versions[id]
	if len(v) == 0 {
		return -1
	}
	return v[len(v)-1]
}

func newObserver() *observer { return &observer{changed: make(chan struct{})} }

// notify wakes the waiters. Called with o.mu held.
func (o *observer) notify() {
	close(o.changed)
	o.changed = make(chan struct{})
}

func (o *observer) errorf(format string, args ...any) {
	o.errs = append(o.errs, fmt.Sprintf(format, args...))
}

// connect opens a WebSocket to srv, subscribes it to list's tasks (with an
// ack) and reads its frames until the test ends.
func (o *observer) connect(t testing.TB, name string, server int, srv *proc, list uint) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, srv.ws, nil)
	if err != nil {
		t.Fatalf("%s: connect to %s: %v", name, srv.ws, err)
	}
	conn.SetReadLimit(-1)
	c := &client{name: name, server: server, conn: conn, done: make(chan struct{}), versions: map[uint][]int{}}
	sub, _ := json.Marshal(map[string]any{"request_id": 1, "model": "todolist.Task", "group_by": "list_id", "value": list, "ack": true})
	if err := conn.Write(ctx, websocket.MessageText, sub); err != nil {
		t.Fatalf("%s: subscribe: %v", name, err)
	}
	o.mu.Lock()
	o.clients = append(o.clients, c)
	o.mu.Unlock()
	go o.read(c)
	t.Cleanup(func() {
		conn.CloseNow()
		<-c.done
	})
	return c
}

// read receives c's frames until its connection ends.
func (o *observer) read(c *client) {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(context.Background())
		at := time.Now()
		o.mu.Lock()
		if err != nil {
			c.closed, c.closeErr = true, err
			o.notify()
			o.mu.Unlock()
			return
		}
		o.frame(c, data, at)
		o.notify()
		o.mu.Unlock()
	}
}

// frame checks and records one frame of c. Called with o.mu held.
func (o *observer) frame(c *client, data []byte, at time.Time) {
	c.frames++
	var f struct {
		Type      string
		RequestID int `json:"request_id"`
		Action    string
		Instance  struct {
			ID   uint
			Text string
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		o.errorf("%s: bad frame %s: %v", c.name, data, err)
		return
	}
	if f.RequestID != 1 {
		o.errorf("%s: frame for another request: %s", c.name, data)
		return
	}
	switch f.Type {
	case "subscribed":
		if c.acked {
			o.errorf("%s: second ack: %s", c.name, data)
		}
		c.acked = true
		return
	case "resync":
		c.resyncs++
		return
	case "broadcast":
	default:
		o.errorf("%s: unexpected frame %s", c.name, data)
		return
	}
	if !c.acked {
		o.errorf("%s: broadcast before the ack: %s", c.name, data)
	}
	_, version, err := parseText(f.Instance.Text)
	if err != nil {
		o.errorf("%s: broadcast of a task with text %q: %s", c.name, f.Instance.Text, data)
		return
	}
	id := f.Instance.ID
	last := c.last(id)
	switch {
	case f.Action == "CREATED" && last >= 0:
		o.errorf("%s: task %d CREATED again (had v%d): %s", c.name, id, last, data)
	case f.Action == "UPDATED" && last < 0:
		o.errorf("%s: task %d UPDATED before CREATED: %s", c.name, id, data)
	case f.Action == "UPDATED" && version <= last:
		// Each write makes a new version: the same one twice is a
		// duplicate, an older one is out of order.
		o.errorf("%s: task %d: v%d after v%d: %s", c.name, id, version, last, data)
	case f.Action != "CREATED" && f.Action != "UPDATED":
		o.errorf("%s: unexpected %s: %s", c.name, f.Action, data)
	}
	c.versions[id] = append(c.versions[id], version)
	if o.onBroadcast != nil {
		o.onBroadcast(c, id, version, at)
	}
}

// waitFor waits until cond, called with o.mu held, is true, or returns an
// error naming what after timeout.
func (o *observer) waitFor(timeout time.Duration, what string, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		ok := cond()
		changed := o.changed
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("waited %v for %s", timeout, what)
		}
	}
}

// must is waitFor that fails the test.
func (o *observer) must(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := o.waitFor(timeout, what, cond); err != nil {
		t.Fatal(err)
	}
}

// seenByAll waits until every client still connected has received
// version (or a later one) of task id.
func (o *observer) seenByAll(timeout time.Duration, id uint, version int) error {
	return o.waitFor(timeout, fmt.Sprintf("every client to receive v%d of task %d", version, id), func() bool {
		for _, c := range o.clients {
			if !c.closed && c.last(id) < version {
				return false
			}
		}
		return true
	})
}

// check fails the test with the errors the clients' frames showed.
func (o *observer) check(t testing.TB) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, e := range o.errs {
		if i == 20 {
			t.Errorf("... and %d more", len(o.errs)-i)
			break
		}
		t.Error(e)
	}
}
