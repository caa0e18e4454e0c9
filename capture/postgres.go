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
// would skip 10 forever. Filtering on the snapshot's xmin does not fix it
// either, since transaction ids are not taken in id order (a transaction
// that wrote elsewhere first has an older xid but may take a newer id).
//
// So the trigger leaves seq empty and records only id, the insertion
// order; the one reader gives seq, in id order, to the rows that are
// committed (visible) and still have none, and publishes in seq order. A
// row is given a seq once, when it first becomes visible, so seq is
// increasing in commit order and without gaps, and no row is skipped
// however long its transaction runs. For two writes to one row, the
// second waits for the first's commit before its trigger takes an id, so
// their order is kept even within one batch.
var postgresSchema = []string{
	`CREATE TABLE IF NOT EXISTS restlive_outbox (
		id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		seq bigint,
		created_at timestamptz NOT NULL DEFAULT now(),
		model text NOT NULL,
		pk text NOT NULL,
		op text NOT NULL,
		old jsonb,
		new jsonb
	) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 50000)`,
	// Partial, so a write does not add NULL entries to it.
	`CREATE UNIQUE INDEX IF NOT EXISTS restlive_outbox_seq ON restlive_outbox (seq) WHERE seq IS NOT NULL`,
	`CREATE INDEX IF NOT EXISTS restlive_outbox_unsequenced ON restlive_outbox (id) WHERE seq IS NULL`,
	// sequenced is the last seq given to an outbox row, published the last
	// one published: rows between them were sequenced but not yet
	// published when a reader stopped, and are published first, with the
	// same seq, by the next one.
	`CREATE TABLE IF NOT EXISTS restlive_cursor (
		name text PRIMARY KEY,
		sequenced bigint NOT NULL DEFAULT 0,
		published bigint NOT NULL DEFAULT 0
	)`,
	`INSERT INTO restlive_cursor (name) VALUES ('default') ON CONFLICT (name) DO NOTHING`,
}

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
	// Sequencing leaves a dead entry per row in the unsequenced index
	// until vacuum (which the outbox's storage parameters make frequent).
	// A bitmap scan visits all of them on every read; an index scan marks
	// them dead as it passes and skips them after.
	if _, err := conn.ExecContext(ctx, "SET enable_bitmapscan = off"); err != nil {
		return nil, fmt.Errorf("capture: configure session: %w", err)
	}
	if err := s.listen(ctx, true); err != nil {
		return nil, err
	}
	if err := conn.QueryRowContext(ctx, "SELECT sequenced, published FROM restlive_cursor WHERE name = 'default'").
		Scan(&s.sequenced, &s.published); err != nil {
		return nil, fmt.Errorf("capture: read cursor: %w", err)
	}
	s.pending = s.published
	return s, nil
}

type postgresSession struct {
	b    *postgresBackend
	conn *sql.Conn
	// published is the cursor as written, pending as published.
	sequenced, published, pending int64
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

func (s *postgresSession) next(ctx context.Context, limit int) ([]row, error) {
	if s.pending < s.sequenced {
		// Left over by a reader that stopped between sequencing and
		// publishing: publish them again, with the seq they were given.
		rows, err := s.conn.QueryContext(ctx,
			`SELECT seq, model, pk, op, old, new FROM restlive_outbox
			 WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3`,
			s.pending, s.sequenced, limit)
		if err != nil {
			return nil, fmt.Errorf("capture: read outbox: %w", err)
		}
		return scanRows(rows)
	}
	// One statement, so one transaction: sequence the oldest visible rows,
	// move the cursor's sequenced mark with them, and write the published
	// mark that commit left pending.
	rows, err := s.conn.QueryContext(ctx, `
		WITH c AS (SELECT sequenced FROM restlive_cursor WHERE name = 'default'),
		b AS (
			SELECT o.id, c.sequenced + row_number() OVER (ORDER BY o.id) AS seq
			FROM (SELECT id FROM restlive_outbox WHERE seq IS NULL ORDER BY id LIMIT $1) o, c
		),
		u AS (
			UPDATE restlive_outbox o SET seq = b.seq FROM b WHERE o.id = b.id
			RETURNING o.seq, o.model, o.pk, o.op, o.old, o.new
		),
		k AS (
			UPDATE restlive_cursor SET sequenced = sequenced + (SELECT count(*) FROM b), published = greatest(published, $2)
			WHERE name = 'default' AND (published < $2 OR EXISTS (SELECT FROM b))
		)
		SELECT seq, model, pk, op, old, new FROM u ORDER BY seq`, limit, s.pending)
	if err != nil {
		return nil, fmt.Errorf("capture: sequence outbox: %w", err)
	}
	got, err := scanRows(rows)
	if err != nil {
		return nil, err
	}
	s.published = s.pending
	if len(got) > 0 {
		s.sequenced = int64(got[len(got)-1].seq)
	}
	return got, nil
}

func (s *postgresSession) dirty() bool { return s.pending != s.published }

func (s *postgresSession) valid() bool { return true }

// commit leaves the cursor to the next read, which writes it in the same
// statement, or to flush.
func (s *postgresSession) commit(_ context.Context, seq uint64) error {
	s.pending = int64(seq)
	return nil
}

// flush writes the cursor. If the session's connection is gone, it
// writes through another: without the lock another reader may have taken
// over, but the changes up to pending were published, and seq values never
// change once given, so moving published forward to pending (never back)
// stays true and spares the other reader publishing them again.
func (s *postgresSession) flush(ctx context.Context) error {
	if s.pending == s.published {
		return nil
	}
	const update = `UPDATE restlive_cursor SET published = greatest(published, $1) WHERE name = 'default'`
	if _, err := s.conn.ExecContext(ctx, update, s.pending); err != nil {
		if _, err2 := s.b.db.ExecContext(ctx, update, s.pending); err2 != nil {
			return fmt.Errorf("capture: write cursor: %w", errors.Join(err, err2))
		}
	}
	s.published = s.pending
	return nil
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

func (s *postgresSession) prune(run context.Context, retention time.Duration, maxRows int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(run), queryTimeout)
	defer cancel()
	// Rows are in seq order and roughly in created_at order: the first row
	// young enough to keep bounds what age allows to delete, found by
	// walking the old rows only.
	cut := s.published
	var young int64
	err := s.conn.QueryRowContext(ctx,
		`SELECT seq FROM restlive_outbox WHERE seq <= $1 AND created_at >= now() - $2 * interval '1 microsecond'
		 ORDER BY seq LIMIT 1`,
		s.published, retention.Microseconds()).Scan(&young)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, fmt.Errorf("capture: prune outbox: %w", err)
	default:
		cut = max(young-1, s.sequenced-maxRows)
	}
	cut = min(cut, s.published) // never a row not yet published
	return deleteUpTo(run, ctx, s.conn, `DELETE FROM restlive_outbox WHERE id IN
		(SELECT id FROM restlive_outbox WHERE seq <= $1 ORDER BY seq LIMIT 10000)`, cut)
}

// close ends the session: the connection is discarded rather than
// returned to the pool, so its advisory lock and LISTEN end with it and
// a standby takes over at once.
func (s *postgresSession) close() {
	_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = s.conn.Close()
}
