package capture

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// On PostgreSQL an identity or sequence value is taken when a row is
// inserted, not when its transaction commits: a transaction holding id 10
// can commit after one holding id 11 was read, and a reader of id > cursor
// would skip 10 forever.
//
// So each outbox row records the id of the transaction that wrote it
// (xid8, which never wraps around), and the reader reads by snapshot. It
// remembers the snapshot of its last complete read (done); a read returns
// the rows whose transaction is visible in the read's own snapshot, that
// is committed, and was not in done: the transactions that committed in
// between, each with all its rows, in the order it wrote them. Nothing is
// written to the rows, so a change costs the reader no write of its own:
// it writes only its cursor, once a read. A transaction left open holds
// back none of the others, and none is skipped however long it runs.
//
// Transactions that commit between two reads (a millisecond apart under
// load) are published in the order of their transaction ids, which they
// take at their first write, not at commit. So when two of them write one
// row, the one that waited for the other's commit may come first if it
// had written something else before. The hub reads a row's state when it
// handles its change, so subscribers still end with the committed state.
var postgresSchema = []string{
	// An outbox of the layout before the reader read by snapshot is
	// replaced once every change in it is published; one with changes
	// still to publish stops Install, since they would be lost.
	`DO $restlive$
	BEGIN
		IF EXISTS (SELECT FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'restlive_outbox' AND column_name = 'seq') THEN
			IF EXISTS (SELECT FROM restlive_outbox
				WHERE seq IS NULL OR seq > (SELECT published FROM restlive_cursor WHERE name = 'default')) THEN
				RAISE EXCEPTION 'restlive_outbox has the layout of an earlier restlive and changes it has not published: run that version''s reader until it has, or drop restlive_outbox and restlive_cursor';
			END IF;
			DROP TABLE restlive_outbox;
			DROP TABLE restlive_cursor;
		END IF;
	END
	$restlive$`,
	`CREATE TABLE IF NOT EXISTS restlive_outbox (
		xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
		id bigint GENERATED ALWAYS AS IDENTITY,
		created_at timestamptz NOT NULL DEFAULT now(),
		model text NOT NULL,
		pk text NOT NULL,
		op text NOT NULL,
		old jsonb,
		new jsonb,
		PRIMARY KEY (xid, id)
	)`,
	// Every change of a transaction visible in done is published. While
	// a read is under way (reading is set), so are those of the
	// transactions visible in reading and not in done, in (xid, id) order,
	// up to (at_xid, at_id). published is the seq of the last change
	// published. The first done sees nothing: '1:1:' has no transaction
	// before xmax 1. owner names the session that last became the reader,
	// so that one that lost the lock cannot move the cursor.
	`CREATE TABLE IF NOT EXISTS restlive_cursor (
		name text PRIMARY KEY,
		done pg_snapshot NOT NULL DEFAULT '1:1:',
		reading pg_snapshot,
		at_xid xid8 NOT NULL DEFAULT '0',
		at_id bigint NOT NULL DEFAULT 0,
		published bigint NOT NULL DEFAULT 0,
		owner text NOT NULL DEFAULT ''
	)`,
	`INSERT INTO restlive_cursor (name) VALUES ('default') ON CONFLICT (name) DO NOTHING`,
	// epoch names the sequence (see History). ALTER TABLE locks the
	// cursor against every reader of it even when IF NOT EXISTS finds the
	// column, so it runs only for a cursor of an earlier version.
	`DO $restlive$
	BEGIN
		IF NOT EXISTS (SELECT FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = 'restlive_cursor' AND column_name = 'epoch') THEN
			ALTER TABLE restlive_cursor ADD COLUMN epoch text NOT NULL DEFAULT '';
		END IF;
	END
	$restlive$`,
	`UPDATE restlive_cursor SET epoch = left(replace(gen_random_uuid()::text, '-', ''), 16) WHERE epoch = ''`,
	// The log of reads: the reader records each read it starts, with the
	// seq its first change gets and the done snapshot it reads after, so
	// that History can tell which rows come after a seq (see
	// postgresSince). read_at bounds what Config.Retention prunes.
	`CREATE TABLE IF NOT EXISTS restlive_reads (
		first_seq bigint PRIMARY KEY,
		done pg_snapshot NOT NULL,
		read_at timestamptz NOT NULL DEFAULT now()
	)`,
	// Rows deleted by anyone but the reader, whose pruning keeps the log
	// and the outbox in step, may be rows the log promises: the log is
	// emptied, so History answers no position before the next read rather
	// than leave their changes out. Once per statement, not per row.
	`CREATE OR REPLACE FUNCTION restlive_outbox_deleted() RETURNS trigger LANGUAGE plpgsql AS $restlive$
	BEGIN
		IF current_setting('` + readerSetting + `', true) IS DISTINCT FROM 'on' THEN
			DELETE FROM restlive_reads;
		END IF;
		RETURN NULL;
	END
	$restlive$`,
	`CREATE OR REPLACE TRIGGER restlive_outbox_deleted AFTER DELETE OR TRUNCATE ON restlive_outbox
		FOR EACH STATEMENT EXECUTE FUNCTION restlive_outbox_deleted()`,
}

// readerSetting is set on the reader's session: its deletes from the
// outbox are pruning, which keeps restlive_reads consistent.
const readerSetting = "restlive.reader"

// installLockKey is the advisory lock Install takes for its transaction.
const installLockKey int64 = 0x7265_7374_6c69_7602 // "restliv" 2

// readerLock is the advisory lock the outbox reader holds for as long as
// it reads. Advisory locks are per database; the key names the schema the
// outbox is in, so applications with outboxes in different schemas of one
// database each have their reader.
const readerLock = "hashtextextended(current_schema() || '.restlive_outbox', 0)"

// notifyChannel is the channel the triggers NOTIFY, delivered at commit.
const notifyChannel = "restlive_outbox"

func postgresTrigger(t Table) []string {
	fn := quoteIdent(objectName("restlive_capture_", t.Table))
	pk, model := quoteIdent(t.PK), quoteLiteral(t.Model)
	// jsonb_build_object keeps the column's type: 14 stays a JSON number,
	// which the reader turns into "14" with live.Canonical.
	fields := func(row string) string {
		var args []string
		for _, f := range t.Fields {
			args = append(args, quoteLiteral(f), row+"."+quoteIdent(f))
		}
		return "jsonb_build_object(" + strings.Join(args, ", ") + ")"
	}
	values := func(row, op, old, new string) string {
		return fmt.Sprintf("(%s, %s.%s::text, '%s', %s, %s)", model, row, pk, op, old, new)
	}
	const insert = "INSERT INTO restlive_outbox (model, pk, op, old, new) VALUES "
	body := fmt.Sprintf(`
BEGIN
	IF TG_OP = 'INSERT' THEN
		%s%s;
	ELSIF TG_OP = 'DELETE' THEN
		%s%s;
	ELSIF OLD.%s IS DISTINCT FROM NEW.%s THEN
		%s%s, %s;
	ELSE
		%s%s;
	END IF;
	PERFORM pg_notify('%s', '');
	RETURN NULL;
END`,
		insert, values("NEW", "I", "NULL", fields("NEW")),
		insert, values("OLD", "D", fields("OLD"), "NULL"),
		pk, pk, insert, values("OLD", "D", fields("OLD"), "NULL"), values("NEW", "I", "NULL", fields("NEW")),
		insert, values("NEW", "U", fields("OLD"), fields("NEW")),
		notifyChannel)
	return []string{
		fmt.Sprintf("CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS $restlive$%s$restlive$", fn, body),
		fmt.Sprintf("CREATE OR REPLACE TRIGGER restlive_capture AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()",
			quoteIdent(t.Table), fn),
	}
}

func postgresDropTrigger(table string) []string {
	return []string{
		"DROP TRIGGER IF EXISTS restlive_capture ON " + quoteIdent(table),
		"DROP FUNCTION IF EXISTS " + quoteIdent(objectName("restlive_capture_", table)) + "()",
	}
}

// postgresBackend elects the reader with a session advisory lock held on
// a dedicated connection, which also LISTENs and runs every query of the
// reader: if that session dies, the lock goes with it and so does the
// reader's ability to move the cursor, so two processes never both read.
type postgresBackend struct {
	db     *sql.DB
	cfg    *Config
	owner  string
	warned sync.Once
}

func (b *postgresBackend) standby() time.Duration { return b.cfg.Lease / 5 }

func (b *postgresBackend) lead(ctx context.Context) (_ session, err error) {
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("capture: connect: %w", err)
	}
	s := &postgresSession{b: b, conn: conn}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock("+readerLock+")").Scan(&got); err != nil {
		return nil, fmt.Errorf("capture: lock outbox: %w", err)
	}
	if !got {
		b.cfg.Logger.InfoContext(ctx, "capture: another process reads the outbox; standing by")
		// Blocks until the holder's session ends, so the takeover is
		// immediate. Cancelling ctx breaks the connection, which close
		// then discards.
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+readerLock+")"); err != nil {
			return nil, fmt.Errorf("capture: lock outbox: %w", err)
		}
	}
	// A read's snapshot is recorded so that a reader taking over after a
	// crash gives its changes the same seq: the record must outlast a
	// crash of the server too, whatever the server's default.
	if _, err := conn.ExecContext(ctx, "SET synchronous_commit = on; SET "+readerSetting+" = on"); err != nil {
		return nil, fmt.Errorf("capture: configure session: %w", err)
	}
	if err := s.listen(ctx, true); err != nil {
		return nil, err
	}
	var reading sql.NullString
	var ahead bool
	if err := conn.QueryRowContext(ctx,
		`UPDATE restlive_cursor SET owner = $1 WHERE name = 'default'
		 RETURNING done::text, reading::text, at_xid::text, at_id, published,
			pg_snapshot_xmax(coalesce(reading, done)) > pg_snapshot_xmax(pg_current_snapshot())`, b.owner).
		Scan(&s.saved.done, &reading, &s.saved.atXID, &s.saved.atID, &s.saved.published, &ahead); err != nil {
		return nil, fmt.Errorf("capture: read cursor: %w", err)
	}
	if ahead {
		// The database was restored into another cluster (pg_dump, a
		// logical replica), whose transaction ids are behind the cursor:
		// every new change would look published.
		return nil, errors.New("capture: restlive_cursor is ahead of this server's transaction ids, " +
			"as when the database was restored into another cluster; the changes in restlive_outbox " +
			"cannot be ordered here: empty it and start a new sequence " +
			"(DELETE FROM restlive_outbox; DELETE FROM restlive_reads; DELETE FROM restlive_cursor; " +
			"then call capture.Install, which starts a new epoch)")
	}
	s.saved.reading = reading.String
	s.cur = s.saved
	return s, nil
}

// A postgresCursor is where the reader is: see restlive_cursor.
type postgresCursor struct {
	done, reading string // snapshots; reading is empty between reads
	atXID         string
	atID          int64
	published     int64
}

type postgresSession struct {
	b    *postgresBackend
	conn *sql.Conn
	// saved is the cursor as written, cur as published.
	saved, cur postgresCursor
	// read is what the last call of next returned, to commit from.
	read struct {
		rows     []row
		xids     []string
		ids      []int64
		complete bool // the rows end the read
	}
	// listening says the session LISTENs: only while the reader is idle.
	listening bool
}

// listen starts or stops listening. A notification to a listener costs
// every writing transaction's commit a signal to the listener's backend,
// which wakes to relay it: more, on a 2-core machine, than the trigger
// and the reader's work together. So the reader listens only when idle;
// while writes keep coming it reads again after BatchDelay instead.
func (s *postgresSession) listen(ctx context.Context, on bool) error {
	if on == s.listening {
		return nil
	}
	stmt := "UNLISTEN "
	if on {
		stmt = "LISTEN "
	}
	if _, err := s.conn.ExecContext(ctx, stmt+notifyChannel); err != nil {
		return fmt.Errorf("capture: %s: %w", strings.TrimSpace(strings.ToLower(stmt)), err)
	}
	s.listening = on
	return nil
}

// The queries read xid as text (database/sql has no type for it) and
// name it in ORDER BY qualified, o.xid or r.xid: a bare xid would be the
// text output column, and "100000" sorts before "99999".

// unpublished selects, in (xid, id) order, at most limit rows that meet
// cond, of the transactions not visible in the snapshot $1 (done): those
// in progress when it was taken (its xip) and those begun after (xid >=
// its xmax). Each part is an ordered index scan that stops at limit, so
// neither a backlog nor a transaction left open, which holds xmin back,
// makes a read walk rows already published.
func unpublished(cond, limit string) string {
	part := func(which string) string {
		return "(SELECT xid, id, model, pk, op, old, new FROM restlive_outbox WHERE " + which + cond +
			" ORDER BY xid, id LIMIT " + limit + ")"
	}
	return part("xid = ANY(ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot)))") + " UNION ALL " +
		part("xid >= pg_snapshot_xmax($1::pg_snapshot)") + " ORDER BY xid, id LIMIT " + limit
}

// next reads on from the cursor: the rest of the read under way, or a
// new read with the statement's own snapshot, which it records in the
// cursor (with the position published so far) before anything of it is
// published, so that a reader taking over after a crash reads the same
// rows in the same order and gives them the same seq. The same statement
// logs the read in restlive_reads, for History.
func (s *postgresSession) next(ctx context.Context, limit int) ([]row, error) {
	c := s.cur
	var rows *sql.Rows
	var err error
	if c.reading == "" {
		rows, err = s.conn.QueryContext(ctx, `
			WITH s AS (SELECT pg_current_snapshot() AS snap),
			r AS (`+unpublished("", "$2")+`),
			k AS (
				UPDATE restlive_cursor SET done = $1::pg_snapshot, reading = (SELECT snap FROM s),
					at_xid = '0', at_id = 0, published = $3
				WHERE name = 'default' AND EXISTS (SELECT FROM r)
			),
			l AS (
				INSERT INTO restlive_reads (first_seq, done) SELECT $3 + 1, $1::pg_snapshot WHERE EXISTS (SELECT FROM r)
			)
			SELECT (SELECT snap::text FROM s), r.xid::text, r.id, r.model, r.pk, r.op, r.old, r.new FROM r ORDER BY r.xid, r.id`,
			c.done, limit, c.published)
	} else {
		rows, err = s.conn.QueryContext(ctx, `
			WITH r AS (`+unpublished(" AND (xid, id) > ($3::xid8, $4) AND pg_visible_in_snapshot(xid, $2::pg_snapshot)", "$6")+`),
			k AS (
				UPDATE restlive_cursor SET done = $1::pg_snapshot, reading = $2::pg_snapshot,
					at_xid = $3::xid8, at_id = $4, published = $5
				WHERE name = 'default' AND published <> $5
			)
			SELECT $2::text, r.xid::text, r.id, r.model, r.pk, r.op, r.old, r.new FROM r ORDER BY r.xid, r.id`,
			c.done, c.reading, c.atXID, c.atID, c.published, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("capture: read outbox: %w", err)
	}
	defer rows.Close()
	r := &s.read
	r.rows, r.xids, r.ids = r.rows[:0], r.xids[:0], r.ids[:0]
	snap := c.reading
	for rows.Next() {
		var w row
		var xid string
		var id int64
		if err := rows.Scan(&snap, &xid, &id, &w.model, &w.pk, &w.op, &w.old, &w.new); err != nil {
			return nil, fmt.Errorf("capture: read outbox: %w", err)
		}
		w.seq = uint64(c.published) + uint64(len(r.rows)) + 1
		r.rows = append(r.rows, w)
		r.xids = append(r.xids, xid)
		r.ids = append(r.ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("capture: read outbox: %w", err)
	}
	switch {
	case c.reading != "":
		// The statement wrote the cursor as it was.
		s.saved = c
		if len(r.rows) == 0 {
			// The rest of the read was published already.
			s.cur.done, s.cur.reading, s.cur.atXID, s.cur.atID = c.reading, "", "0", 0
		}
	case len(r.rows) > 0:
		// The statement wrote the cursor as it was, with the new read.
		s.saved = c
		s.saved.reading, s.cur.reading = snap, snap
		s.saved.atXID, s.saved.atID = "0", 0
		s.cur.atXID, s.cur.atID = "0", 0
	}
	r.complete = len(r.rows) < limit
	return r.rows, nil
}

func (s *postgresSession) dirty() bool { return s.cur != s.saved }

func (s *postgresSession) valid() bool { return true }

// commit moves the cursor past the change seq, one of those the last call
// of next returned, and leaves writing it to the next read or to flush.
func (s *postgresSession) commit(_ context.Context, seq uint64) error {
	r := &s.read
	i := -1
	if len(r.rows) > 0 && seq >= r.rows[0].seq {
		i = int(seq - r.rows[0].seq)
	}
	if i < 0 || i >= len(r.rows) {
		return fmt.Errorf("capture: commit of seq %d, which the last read did not return", seq)
	}
	s.cur.published = int64(seq)
	if i == len(r.rows)-1 && r.complete {
		s.cur.done, s.cur.reading, s.cur.atXID, s.cur.atID = s.cur.reading, "", "0", 0
	} else {
		s.cur.atXID, s.cur.atID = r.xids[i], r.ids[i]
	}
	return nil
}

// flush writes the cursor. If the session's connection is gone, it
// writes through another: without the lock another reader may have taken
// over, so it writes only if the cursor still names this reader as its
// owner, as it does until another takes the lead.
func (s *postgresSession) flush(ctx context.Context) error {
	if !s.dirty() {
		return nil
	}
	c := s.cur
	const update = `UPDATE restlive_cursor SET done = $1::pg_snapshot, reading = $2::pg_snapshot,
		at_xid = $3::xid8, at_id = $4, published = $5
		WHERE name = 'default' AND owner = $6`
	args := []any{c.done, nullIfEmpty(c.reading), c.atXID, c.atID, c.published, s.b.owner}
	res, err := s.conn.ExecContext(ctx, update, args...)
	if err != nil {
		var err2 error
		if res, err2 = s.b.db.ExecContext(ctx, update, args...); err2 != nil {
			return fmt.Errorf("capture: write cursor: %w", errors.Join(err, err2))
		}
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return errLostLead
	}
	s.saved = c
	return nil
}

// nullIfEmpty makes an empty snapshot SQL NULL.
func nullIfEmpty(snapshot string) any {
	if snapshot == "" {
		return nil
	}
	return snapshot
}

// renew has nothing to do: the lock lasts as long as the session, and
// every query runs on it.
func (s *postgresSession) renew(context.Context) error { return nil }

// wait returns when a NOTIFY arrives, d passes, or the reader is nudged.
// When the last read found rows it stops listening and returns at once;
// when it found none and the session was not listening, it listens and
// returns at once, since a commit between that read and the LISTEN
// notified no one: the next read sees it.
func (s *postgresSession) wait(ctx context.Context, d time.Duration, nudged <-chan struct{}, busy bool) error {
	if busy || !s.listening {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queryTimeout)
		defer cancel()
		if err := s.listen(qctx, !busy); err != nil {
			return err
		}
		if !busy {
			// Notifications received before UNLISTEN are about rows the
			// next read sees.
			s.drain()
		}
		return ctx.Err()
	}
	if hook := s.b.cfg.testHookListening; hook != nil {
		hook()
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	// WaitForNotification cannot select on nudged: a nudge cancels its
	// context instead. The goroutine ends before wait returns.
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		select {
		case <-nudged:
			cancel()
		case <-wctx.Done():
		}
	}()
	err := s.conn.Raw(func(dc any) error {
		c, ok := dc.(*stdlib.Conn)
		if !ok {
			s.b.warned.Do(func() {
				s.b.cfg.Logger.Warn("capture: LISTEN needs the pgx driver (github.com/jackc/pgx/v5/stdlib); polling instead",
					"driver", fmt.Sprintf("%T", dc), "interval", d)
			})
			<-wctx.Done()
			return nil
		}
		pc := c.Conn()
		_, err := pc.WaitForNotification(wctx)
		if err != nil && wctx.Err() != nil && !pc.IsClosed() {
			// A timeout or a nudge: pgx keeps the connection usable.
			err = nil
		}
		if err != nil {
			return err
		}
		// One wake-up is enough for every notification already received.
		drainNotifications(pc)
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("capture: wait for notification: %w", err)
	}
	return ctx.Err()
}

// drain drops the notifications received and not yet waited for.
func (s *postgresSession) drain() {
	_ = s.conn.Raw(func(dc any) error {
		if c, ok := dc.(*stdlib.Conn); ok {
			drainNotifications(c.Conn())
		}
		return nil
	})
}

// drainNotifications drops what pgx has buffered: WaitForNotification
// with a context already done returns those and touches nothing else.
func drainNotifications(pc *pgx.Conn) {
	done, stop := context.WithCancel(context.Background())
	stop()
	for {
		if _, err := pc.WaitForNotification(done); err != nil {
			return
		}
	}
}

// prune deletes whole reads: it picks a read of the log as the cut,
// deletes the log's records of the reads before it, then the rows those
// reads published (the rows visible in the cut's done snapshot). A record
// left in the log thus always has every row after it, as History needs;
// and every row it deletes was published, since the reads before a
// logged read ended before it began. The cut is the oldest read younger
// than retention (the rows before it were committed before the read
// before it began, so are older than that), or the oldest that leaves at
// most maxRows published rows, whichever is newer; the newest read is
// always kept. Both are found by index scans that walk only what is
// deleted.
func (s *postgresSession) prune(run context.Context, retention time.Duration, maxRows int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(run), queryTimeout)
	defer cancel()
	var cut int64
	var done string
	err := s.conn.QueryRowContext(ctx, `
		WITH n AS (SELECT max(first_seq) AS newest FROM restlive_reads)
		SELECT r.first_seq, r.done::text FROM restlive_reads r, n WHERE r.first_seq = greatest(
			coalesce((SELECT first_seq FROM restlive_reads WHERE read_at >= now() - $1 * interval '1 microsecond'
				ORDER BY first_seq LIMIT 1), n.newest),
			coalesce((SELECT first_seq FROM restlive_reads WHERE first_seq > $2 ORDER BY first_seq LIMIT 1), n.newest))`,
		retention.Microseconds(), s.saved.published-maxRows).Scan(&cut, &done)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil // no read logged yet
	}
	if err != nil {
		return 0, fmt.Errorf("capture: prune outbox: %w", err)
	}
	if _, err := deleteUpTo(run, ctx, s.conn, `DELETE FROM restlive_reads WHERE first_seq IN (
		SELECT first_seq FROM restlive_reads WHERE first_seq < $1 ORDER BY first_seq LIMIT 10000)`, cut); err != nil {
		return 0, err
	}
	if run.Err() != nil {
		return 0, nil
	}
	// xid < xmax bounds the index scan; the rows of the transactions in
	// progress when done was taken are skipped, and kept.
	return deleteUpTo(run, ctx, s.conn, `DELETE FROM restlive_outbox WHERE (xid, id) IN (
		SELECT xid, id FROM restlive_outbox
		WHERE xid < pg_snapshot_xmax($1::pg_snapshot) AND pg_visible_in_snapshot(xid, $1::pg_snapshot)
		ORDER BY xid, id LIMIT 10000)`, done)
}

// close ends the session: the connection is discarded rather than
// returned to the pool, so its advisory lock and LISTEN end with it and
// a standby takes over at once.
func (s *postgresSession) close() {
	_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = s.conn.Close()
}
