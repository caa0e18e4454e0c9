package pgwal

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	neturl "net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/internal/capturetest"
	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/metrics"
)

// TestCommitOrder: transactions are published after they commit, whole,
// in the order they committed, whatever order they wrote in, even when
// they commit a moment apart (the suite's CommitOrder waits between the
// commits, which the triggers need); one left open holds back none of
// the others.
func TestCommitOrder(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks, capturetest.Lists)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	first := d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	second := d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`)
	d.Begin(t, `INSERT INTO tasks (id, list_id) VALUES (99, 14)`) // left open
	for _, w := range []struct {
		tx *sql.Tx
		id int
	}{{first, 3}, {second, 4}} {
		if _, err := w.tx.Exec(`INSERT INTO tasks (id, list_id) VALUES ($1, 14)`, w.id); err != nil {
			t.Fatal(err)
		}
	}
	d.Exec(t, `INSERT INTO lists (id) VALUES (1)`)
	if got := rec.WaitFor(t, "todolist.List", "1"); len(got) != 1 {
		t.Fatalf("published before their commit: %+v", got)
	}
	if err := second.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := first.Commit(); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, `INSERT INTO lists (id) VALUES (2)`)
	want := append([]live.Change{list("1")}, inserts("2", "4", "1", "3")...)
	capturetest.CheckChanges(t, rec.WaitFor(t, "todolist.List", "2"), append(want, list("2")))
}

func list(pk string) live.Change {
	return live.Change{Model: "todolist.List", PK: pk, Op: live.OpInsert, New: capturetest.M()}
}

func inserts(pks ...string) []live.Change {
	var out []live.Change
	for _, pk := range pks {
		out = append(out, capturetest.Task(live.OpInsert, pk, nil, capturetest.M("list_id", "14")))
	}
	return out
}

// checkAtLeastOnce checks changes published at least once each: taken
// at the first publication of each seq, they are want, with seqs one
// after another; a seq published again is the same change.
func checkAtLeastOnce(t *testing.T, got, want []live.Change) {
	t.Helper()
	first := map[uint64]live.Change{}
	var distinct []live.Change
	for _, c := range got {
		if f, seen := first[c.Seq]; seen {
			if !capturetest.SameChange(f, c) {
				t.Fatalf("seq %d published as %+v, then as %+v", c.Seq, f, c)
			}
			continue
		}
		first[c.Seq] = c
		distinct = append(distinct, c)
	}
	capturetest.CheckChanges(t, distinct, want)
	for i := 1; i < len(distinct); i++ {
		if distinct[i].Seq != distinct[i-1].Seq+1 {
			t.Errorf("seq %d follows %d", distinct[i].Seq, distinct[i-1].Seq)
		}
	}
}

// TestCrash: a reader that fails after logging a batch, before it
// publishes it, as a process killed there would, is followed by one that
// publishes the batch with the seqs it was logged with, and what the
// first published of the same transaction again with its seqs, then the
// rest of the transaction, which the stream sends again whole: nothing
// is lost, and a change published twice has one seq. The transaction is
// larger than a batch, so the crash cuts it.
func TestCrash(t *testing.T) {
	for _, crashAt := range []int32{1, 2} {
		t.Run("batch "+strconv.Itoa(int(crashAt)), func(t *testing.T) {
			var batches atomic.Int32
			dialect := &Dialect{hooks: &testHooks{logged: func([]outbox.Row) error {
				if batches.Add(1) == crashAt {
					return errors.New("crash")
				}
				return nil
			}}}
			d := openWith(t, dialect)
			d.Install(t, capturetest.Tasks)
			tx := d.Begin(t, `INSERT INTO tasks (id, list_id) SELECT i, 14 FROM generate_series(1, 10) i`)
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			rec := capturetest.NewRecorder()
			capturetest.StartReader(t, d, capture.Config{Publisher: rec, BatchSize: 3, Lease: 200 * time.Millisecond, Logger: capturetest.Quiet})
			d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (11, 14)`)
			checkAtLeastOnce(t, rec.WaitFor(t, "todolist.Task", "11"), inserts("1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"))
			if batches.Load() < crashAt {
				t.Fatal("the reader never crashed")
			}
		})
	}
}

// TestStreamEnded ends the server's side of the reader's stream: the
// reader streams again and loses nothing.
func TestStreamEnded(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, d, capture.Config{Publisher: rec, Lease: 200 * time.Millisecond, Logger: capturetest.Quiet})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	rec.Wait(t, 1)
	var ended bool
	if err := d.DB.QueryRow(`SELECT bool_or(pg_terminate_backend(active_pid)) FROM pg_replication_slots
		WHERE database = current_database()`).Scan(&ended); err != nil || !ended {
		t.Fatalf("end the stream: %v, %v", ended, err)
	}
	for i := 2; i <= 10; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	checkAtLeastOnce(t, rec.WaitFor(t, "todolist.Task", "10"), capturetest.InsertsInto14(1, 10))
}

// TestTakeover: when the reader's lock session dies, it stops streaming,
// and a standby that was waiting for the lock streams instead.
func TestTakeover(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	lead, standby := capturetest.NewRecorder(), capturetest.NewRecorder()
	cfg := capture.Config{Publisher: lead, Lease: 500 * time.Millisecond, Logger: capturetest.Quiet}
	capturetest.StartReader(t, d, cfg)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	lead.Wait(t, 1)
	cfg.Publisher = standby
	capturetest.StartReader(t, d, cfg)
	waitFor(t, "the standby waits for the lock", func() bool {
		var n int
		err := d.DB.QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n)
		return err == nil && n == 1
	})
	var killed bool
	if err := d.DB.QueryRow(`SELECT bool_or(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).
		Scan(&killed); err != nil || !killed {
		t.Fatalf("end the lock's session: %v, %v", killed, err)
	}
	for i := 2; i <= 10; i++ {
		d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (?, 14)`, i)
	}
	got := standby.WaitFor(t, "todolist.Task", "10")
	checkAtLeastOnce(t, append(lead.Snapshot(), got...), capturetest.InsertsInto14(1, 10))
}

// waitFor polls cond until it holds, for 10 seconds at most.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplicaIdentity: Install sets REPLICA IDENTITY FULL where the
// table's identity lacks group fields, leaves one that has them, and the
// reader refuses to start, saying why, when a table's identity no longer
// gives them or the table left the publication.
func TestReplicaIdentity(t *testing.T) {
	d := open(t)
	d.Exec(t, `CREATE TABLE tags (id bigint PRIMARY KEY, list_id bigint NOT NULL, label text NOT NULL DEFAULT '')`)
	d.Exec(t, `CREATE UNIQUE INDEX tags_identity ON tags (id, list_id)`)
	d.Exec(t, `ALTER TABLE tags REPLICA IDENTITY USING INDEX tags_identity`)
	tags := capture.Table{Model: "todolist.Tag", Table: "tags", PK: "id", Fields: []string{"list_id"}}
	d.Install(t, capturetest.Tasks, capturetest.Lists, tags)
	for table, want := range map[string]string{"tasks": "f", "lists": "d", "tags": "i"} {
		var got string
		if err := d.DB.QueryRow(`SELECT relreplident::text FROM pg_class WHERE oid = $1::regclass`, table).Scan(&got); err != nil || got != want {
			t.Errorf("%s: replica identity %q (%v), want %q", table, got, err, want)
		}
	}

	// The index gives the old list_id when it changes, and when it does
	// not, the new one is the old.
	rec := capturetest.NewRecorder()
	_, stop := capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	d.Exec(t, `INSERT INTO tags (id, list_id) VALUES (1, 14)`)
	d.Exec(t, `UPDATE tags SET label = 'a' WHERE id = 1`)
	d.Exec(t, `UPDATE tags SET list_id = 15 WHERE id = 1`)
	d.Exec(t, `DELETE FROM tags WHERE id = 1`)
	tag := func(op live.Op, old, new map[string]string) live.Change {
		return live.Change{Model: "todolist.Tag", PK: "1", Op: op, Old: old, New: new}
	}
	l14, l15 := capturetest.M("list_id", "14"), capturetest.M("list_id", "15")
	capturetest.CheckChanges(t, rec.Wait(t, 4), []live.Change{
		tag(live.OpInsert, nil, l14), tag(live.OpUpdate, l14, l14), tag(live.OpUpdate, l14, l15), tag(live.OpDelete, l15, nil),
	})
	stop()

	run := func() error {
		t.Helper()
		r, err := capture.NewReader(d.DB, d.Dialect, capture.Config{Publisher: rec, Logger: capturetest.Quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return r.Run(ctx)
	}
	d.Exec(t, `ALTER TABLE tasks REPLICA IDENTITY DEFAULT`)
	if err := run(); err == nil || !strings.Contains(err.Error(), "REPLICA IDENTITY DEFAULT does not give the old values of list_id") {
		t.Errorf("run with tasks' identity DEFAULT: %v", err)
	}
	d.Install(t, capturetest.Tasks)
	d.Exec(t, `DROP TABLE lists`)
	d.Exec(t, `CREATE TABLE lists (id bigint PRIMARY KEY)`)
	if err := run(); err == nil || !strings.Contains(err.Error(), "lists, captured as todolist.List, is not in publication") {
		t.Errorf("run with lists made anew: %v", err)
	}
}

// TestHistoryWaitsForTheReader: Since answers for a change committed
// and not yet logged, which a scope read now shows: it waits for the
// reader to log it. With no reader it cannot tell, and says so with an
// error other than ErrHistoryGone.
func TestHistoryWaitsForTheReader(t *testing.T) {
	blocked, release, fenced := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var once sync.Once
	dialect := &Dialect{hooks: &testHooks{
		collecting: func(pks []string) {
			if pks[0] == "2" {
				close(blocked)
				<-release
			}
		},
		fenced: func() { once.Do(func() { close(fenced) }) },
	}}
	d := openWith(t, dialect)
	d.Install(t, capturetest.Tasks)
	h := d.NewHistory(t)
	rec := capturetest.NewRecorder()
	_, stop := capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	head := capturetest.WaitHead(t, h, 1)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 15)`)
	<-blocked
	type answer struct {
		changes []live.Change
		err     error
	}
	answered := make(chan answer, 1)
	go func() {
		changes, err := h.Since(context.Background(), head, []string{"todolist.Task"}, 100)
		answered <- answer{changes, err}
	}()
	<-fenced
	close(release)
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	capturetest.CheckChanges(t, a.changes, []live.Change{capturetest.Task(live.OpInsert, "2", nil, capturetest.M("list_id", "15"))})

	stop()
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, 15)`)
	head = capturetest.WaitHead(t, h, 2)
	if _, err := h.Since(context.Background(), head, []string{"todolist.Task"}, 100); err == nil || errors.Is(err, live.ErrHistoryGone) {
		t.Errorf("since, with no reader: %v, want an error that is not ErrHistoryGone", err)
	}
}

// TestSlotGone: a slot dropped while no reader ran (as the server drops
// one it invalidated past max_slot_wal_keep_size) is made anew by the
// reader, which says what was lost; the sequence goes on in another
// epoch, so that offsets of the old one get a snapshot.
func TestSlotGone(t *testing.T) {
	d := open(t)
	d.Install(t, capturetest.Tasks)
	h := d.NewHistory(t)
	rec := capturetest.NewRecorder()
	_, stop := capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	rec.Wait(t, 1)
	stop()
	before := capturetest.WaitHead(t, h, 1)
	d.Exec(t, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()`)
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (2, 14)`) // never read
	var logs testenv.Logs
	capturetest.StartReader(t, d, capture.Config{Publisher: rec, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	waitFor(t, "the reader streams from a new slot", func() bool {
		var n int
		err := d.DB.QueryRow(`SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid
			WHERE s.database = current_database()`).Scan(&n)
		return err == nil && n == 1
	})
	d.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (3, 14)`)
	capturetest.CheckChanges(t, rec.WaitFor(t, "todolist.Task", "3"), inserts("1", "3"))
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "slot was gone") {
		t.Errorf("the reader did not say the slot was gone:\n%s", logs.String())
	}
	after, err := h.Head(context.Background())
	if err != nil || after.Epoch == before.Epoch {
		t.Errorf("epoch %q after the slot was made anew, was %q (%v)", after.Epoch, before.Epoch, err)
	}
	if _, err := h.Since(context.Background(), before, []string{"todolist.Task"}, 100); !errors.Is(err, live.ErrHistoryGone) {
		t.Errorf("since an offset of the old epoch: %v, want ErrHistoryGone", err)
	}
}

// TestStatus: the slot's status says whether a reader streams, and how
// much log it holds back while none does; Drop removes the slot.
func TestStatus(t *testing.T) {
	dialect := New(Config{})
	d := openWith(t, dialect)
	d.Install(t, capturetest.Tasks)
	ctx := context.Background()
	status := func() SlotStatus {
		t.Helper()
		s, err := dialect.Status(ctx, d.DB)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if s := status(); s.Active || s.WALStatus != "reserved" || s.Safe != -1 || !strings.HasPrefix(s.Slot, "restlive_") {
		t.Errorf("status before a reader: %+v", s)
	}
	rec := capturetest.NewRecorder()
	_, stop := capturetest.StartReader(t, d, capture.Config{Publisher: rec})
	waitFor(t, "the slot is active", func() bool { return status().Active })
	stop()
	lag := status().Lag
	d.Exec(t, `INSERT INTO tasks (list_id) SELECT 14 FROM generate_series(1, 1000)`)
	if s := status(); s.Active || s.Lag <= lag || s.Retained < s.Lag {
		t.Errorf("status after writes with no reader: %+v, lag %d before", s, lag)
	}
	if err := dialect.Drop(ctx, d.DB); err != nil {
		t.Fatal(err)
	}
	if _, err := dialect.Status(ctx, d.DB); !errors.Is(err, ErrNoSlot) {
		t.Errorf("status after Drop: %v, want ErrNoSlot", err)
	}
}

// TestSlotMetrics: the slot's figures reach Prometheus through
// metrics.WatchSlot as the package documentation shows, and the reader's
// own metrics leave out the lag in changes, which a slot cannot count,
// instead of failing the scrape.
func TestSlotMetrics(t *testing.T) {
	dialect := New(Config{})
	d := openWith(t, dialect)
	d.Install(t, capturetest.Tasks)
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchSlot(func(ctx context.Context) (metrics.SlotStats, error) {
		s, err := dialect.Status(ctx, d.DB)
		return metrics.SlotStats{Active: s.Active, Lag: s.Lag, Retained: s.Retained, Safe: s.Safe}, err
	}); err != nil {
		t.Fatal(err)
	}
	reader, err := capture.NewReader(d.DB, dialect, capture.Config{Publisher: capturetest.NewRecorder(), Logger: capturetest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.WatchReader(reader); err != nil {
		t.Fatal(err)
	}
	gather := func() map[string]float64 { return testenv.Gather(t, reg) }
	before := gather()
	d.Exec(t, `INSERT INTO tasks (list_id) SELECT 14 FROM generate_series(1, 1000)`)
	stopped := gather()
	if stopped["restlive_capture_slot_active"] != 0 || stopped["restlive_capture_slot_lag_bytes"] <= before["restlive_capture_slot_lag_bytes"] ||
		stopped["restlive_capture_slot_retained_bytes"] < stopped["restlive_capture_slot_lag_bytes"] {
		t.Fatalf("no reader, after 1,000 inserts: %v; before: %v", stopped, before)
	}
	if _, ok := stopped["restlive_capture_slot_safe_bytes"]; ok {
		t.Errorf("safe bytes reported with max_slot_wal_keep_size unlimited: %v", stopped)
	}
	if _, ok := stopped["restlive_capture_lag_rows"]; ok {
		t.Errorf("a lag in rows from a slot: %v", stopped)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); reader.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the reader streams and confirms what it published", func() bool {
		got := gather()
		return got["restlive_capture_slot_active"] == 1 && got["restlive_capture_published_total"] == 1000 &&
			got["restlive_capture_slot_lag_bytes"] < stopped["restlive_capture_slot_lag_bytes"]
	})
}

// TestRole: what the package documentation asks of the application's
// role is enough: REPLICATION, CREATE on the database and the schema,
// and ownership of the captured tables; no superuser.
func TestRole(t *testing.T) {
	d := open(t)
	role := "restlive_app_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	d.Exec(t, `CREATE ROLE `+role+` LOGIN REPLICATION`)
	t.Cleanup(func() {
		d.Exec(t, `DROP OWNED BY `+role)
		d.Exec(t, `DROP ROLE `+role)
	})
	d.Exec(t, `GRANT CREATE ON DATABASE "`+databaseName(t, d)+`" TO `+role)
	d.Exec(t, `GRANT CREATE ON SCHEMA public TO `+role)
	d.Exec(t, `ALTER TABLE tasks OWNER TO `+role)
	url, err := neturl.Parse(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	url.User = neturl.User(role)
	app, err := sql.Open("pgx", url.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	as := *d
	as.DB = app
	as.Install(t, capturetest.Tasks)
	h := as.NewHistory(t)
	rec := capturetest.NewRecorder()
	capturetest.StartReader(t, &as, capture.Config{Publisher: rec})
	as.Exec(t, `INSERT INTO tasks (id, list_id) VALUES (1, 14)`)
	as.Exec(t, `UPDATE tasks SET list_id = 15 WHERE id = 1`)
	capturetest.CheckChanges(t, rec.Wait(t, 2), []live.Change{
		capturetest.Task(live.OpInsert, "1", nil, capturetest.M("list_id", "14")),
		capturetest.Task(live.OpUpdate, "1", capturetest.M("list_id", "14"), capturetest.M("list_id", "15")),
	})
	head := capturetest.WaitHead(t, h, 2)
	if _, err := h.Since(context.Background(), live.Position{Epoch: head.Epoch, Seq: 1}, []string{"todolist.Task"}, 10); err != nil {
		t.Errorf("since, as the role: %v", err)
	}
}

func databaseName(t *testing.T, d *capturetest.DB) string {
	var name string
	if err := d.DB.QueryRow(`SELECT current_database()`).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
