package pgcapture

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

	"github.com/restlive/restlive/capture/internal/outbox"
)

// postgresBackend elects the reader with a session advisory lock held on
// a dedicated connection, which also LISTENs and runs every query of the
// reader: if that session dies, the lock goes with it and so does the
// reader's ability to move the cursor, so two processes never both read.
type postgresBackend struct {
	db     *sql.DB
	s      outbox.Settings
	hooks  *testHooks
	warned sync.Once
}

func (b *postgresBackend) Standby() time.Duration { return b.s.Lease / 5 }

func (b *postgresBackend) Lead(ctx context.Context) (_ outbox.Session, err error) {
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("capture: connect: %w", err)
	}
	s := &postgresSession{b: b, conn: conn}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	var got bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock("+readerLock+")").Scan(&got); err != nil {
		return nil, fmt.Errorf("capture: lock outbox: %w", err)
	}
	if !got {
		b.s.Logger.InfoContext(ctx, "capture: another process reads the outbox; standing by")
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
			pg_snapshot_xmax(coalesce(reading, done)) > pg_snapshot_xmax(pg_current_snapshot())`, b.s.Owner).
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
		rows     []outbox.Row
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

// Next reads on from the cursor: the rest of the read under way, or a
// new read with the statement's own snapshot, which it records in the
// cursor (with the position published so far) before anything of it is
// published, so that a reader taking over after a crash reads the same
// rows in the same order and gives them the same seq. The same statement
// logs the read in restlive_reads, for History.
func (s *postgresSession) Next(ctx context.Context, limit int) ([]outbox.Row, error) {
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
		var w outbox.Row
		var xid string
		var id int64
		if err := rows.Scan(&snap, &xid, &id, &w.Model, &w.PK, &w.Op, &w.Old, &w.New); err != nil {
			return nil, fmt.Errorf("capture: read outbox: %w", err)
		}
		w.Seq = uint64(c.published) + uint64(len(r.rows)) + 1
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

func (s *postgresSession) Dirty() bool { return s.cur != s.saved }

func (s *postgresSession) Valid() bool { return true }

// Commit moves the cursor past the change seq, one of those the last call
// of next returned, and leaves writing it to the next read or to flush.
func (s *postgresSession) Commit(_ context.Context, seq uint64) error {
	r := &s.read
	i := -1
	if len(r.rows) > 0 && seq >= r.rows[0].Seq {
		i = int(seq - r.rows[0].Seq)
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

// Flush writes the cursor. If the session's connection is gone, it
// writes through another: without the lock another reader may have taken
// over, so it writes only if the cursor still names this reader as its
// owner, as it does until another takes the lead.
func (s *postgresSession) Flush(ctx context.Context) error {
	if !s.Dirty() {
		return nil
	}
	c := s.cur
	const update = `UPDATE restlive_cursor SET done = $1::pg_snapshot, reading = $2::pg_snapshot,
		at_xid = $3::xid8, at_id = $4, published = $5
		WHERE name = 'default' AND owner = $6`
	args := []any{c.done, nullIfEmpty(c.reading), c.atXID, c.atID, c.published, s.b.s.Owner}
	res, err := s.conn.ExecContext(ctx, update, args...)
	if err != nil {
		var err2 error
		if res, err2 = s.b.db.ExecContext(ctx, update, args...); err2 != nil {
			return fmt.Errorf("capture: write cursor: %w", errors.Join(err, err2))
		}
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return outbox.ErrLostLead
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

// Renew has nothing to do: the lock lasts as long as the session, and
// every query runs on it.
func (s *postgresSession) Renew(context.Context) error { return nil }

// Wait returns when a NOTIFY arrives, d passes, or the reader is nudged.
// When the last read found rows it stops listening and returns at once;
// when it found none and the session was not listening, it listens and
// returns at once, since a commit between that read and the LISTEN
// notified no one: the next read sees it.
func (s *postgresSession) Wait(ctx context.Context, d time.Duration, nudged <-chan struct{}, busy bool) error {
	if busy || !s.listening {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outbox.QueryTimeout)
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
	if s.b.hooks != nil && s.b.hooks.listening != nil {
		s.b.hooks.listening()
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
				s.b.s.Logger.Warn("capture: LISTEN needs the pgx driver (github.com/jackc/pgx/v5/stdlib); polling instead",
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

// Prune deletes whole reads: it picks a read of the log as the cut,
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
func (s *postgresSession) Prune(run context.Context, retention time.Duration, maxRows int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(run), outbox.QueryTimeout)
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
	if _, err := outbox.DeleteUpTo(run, ctx, s.conn, `DELETE FROM restlive_reads WHERE first_seq IN (
		SELECT first_seq FROM restlive_reads WHERE first_seq < $1 ORDER BY first_seq LIMIT 10000)`, cut); err != nil {
		return 0, err
	}
	if run.Err() != nil {
		return 0, nil
	}
	// xid < xmax bounds the index scan; the rows of the transactions in
	// progress when done was taken are skipped, and kept.
	return outbox.DeleteUpTo(run, ctx, s.conn, `DELETE FROM restlive_outbox WHERE (xid, id) IN (
		SELECT xid, id FROM restlive_outbox
		WHERE xid < pg_snapshot_xmax($1::pg_snapshot) AND pg_visible_in_snapshot(xid, $1::pg_snapshot)
		ORDER BY xid, id LIMIT 10000)`, done)
}

// Close ends the session: the connection is discarded rather than
// returned to the pool, so its advisory lock and LISTEN end with it and
// a standby takes over at once.
func (s *postgresSession) Close() {
	_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = s.conn.Close()
}
