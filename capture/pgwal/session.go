package pgwal

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/restlive/restlive/capture/internal/outbox"
)

// backend elects the reader with a session advisory lock, held on a
// connection of db's pool for as long as the reader streams; the reader
// writes its log on that connection too. A standby blocks on the lock,
// so it takes over as soon as the reader's session ends. The slot lets
// one stream at a time in any case: the lock keeps standbys from trying,
// and keeps the log to one writer.
type backend struct {
	d      *Dialect
	db     *sql.DB
	s      outbox.Settings
	warned sync.Once // of an unbounded max_slot_wal_keep_size
}

func (b *backend) Standby() time.Duration { return b.s.Lease / 5 }

// Lead becomes the reader: it takes the lock, makes the slot anew if it
// is gone, starts streaming, and reads where it stands. Changes it logged
// before the slot confirmed them may not have been published: they are
// published again first, with their seqs.
func (b *backend) Lead(ctx context.Context) (_ outbox.Session, err error) {
	n, err := b.d.names(ctx, b.db)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	conn, err := b.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("capture: connect: %w", err)
	}
	s := newSession(b, n, conn)
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	renewed, err := ensureSlot(ctx, conn, n.slot)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if renewed {
		b.s.Logger.ErrorContext(ctx, "capture: the replication slot was gone (dropped, or invalidated past max_slot_wal_keep_size) "+
			"and is made anew: changes committed meanwhile are not published, and offsets start another epoch", "slot", n.slot)
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.receiving(ctx)
	return s, nil
}

// A session is one spell as the reader. Its methods are called by the
// reader's goroutine; a goroutine of its own receives the stream into
// events.
type session struct {
	b    *backend
	n    names
	conn *sql.Conn      // holds the lock; logs
	repl *pgconn.PgConn // streams

	events      chan event
	stopReceive context.CancelFunc
	received    chan struct{} // closed when the receiving goroutine ends
	err         error         // the stream's, once it failed

	cur         cursor                // as logged
	own         string                // schema.restlive_wal_tables
	tables      map[string]*tableConf // by schema.table
	tablesAt    pglogrepl.LSN         // tables are as of this position of the stream
	tablesDirty bool                  // changed since the cursor recorded them
	rels        map[uint32]*relation
	txn         *txn       // the transaction the stream is in
	batch       []captured // received, not yet logged
	fence       pglogrepl.LSN
	pos         pglogrepl.LSN // the stream has sent every transaction that committed before
	marks       []mark
	warned      map[string]bool
	replay      []outbox.Row // logged, maybe not published, before this session
	pending     []outbox.Row // logged, returned by Next, not yet committed

	published       uint64
	confirmed, sent pglogrepl.LSN // to the slot: may be confirmed, was
	sentAt, pinged  time.Time
	replyDue        bool
	streamer        uint32 // the pid of the server's end of the stream
}

func newSession(b *backend, n names, conn *sql.Conn) *session {
	return &session{b: b, n: n, conn: conn, rels: map[uint32]*relation{}, warned: map[string]bool{}, pinged: time.Now()}
}

// A txn is a transaction the stream is sending: the position of its
// commit, and how many changes of captured tables it has had.
type txn struct {
	lsn   pglogrepl.LSN
	n     int
	fence bool
}

// A captured change waits in the batch to be logged.
type captured struct {
	row outbox.Row
	lsn pglogrepl.LSN
	ord int
}

// A mark is a position of the stream the slot may confirm once every
// change up to seq is published.
type mark struct {
	seq uint64
	lsn pglogrepl.LSN
}

// lock takes the reader's lock, waiting for it as a standby, and makes
// the log's commits durable: a change published must keep its seq after
// a crash of the server, whatever the server's default.
func (s *session) lock(ctx context.Context) error {
	var got bool
	if err := s.conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock("+lockKey+")", s.n.slot).Scan(&got); err != nil {
		return fmt.Errorf("capture: lock slot: %w", err)
	}
	if !got {
		s.b.s.Logger.InfoContext(ctx, "capture: another process streams the write-ahead log; standing by", "slot", s.n.slot)
		// Blocks until the holder's session ends. Cancelling ctx breaks
		// the connection, which Close then discards.
		if _, err := s.conn.ExecContext(ctx, "SELECT pg_advisory_lock("+lockKey+")", s.n.slot); err != nil {
			return fmt.Errorf("capture: lock slot: %w", err)
		}
	}
	if _, err := s.conn.ExecContext(ctx, "SET synchronous_commit = on"); err != nil {
		return fmt.Errorf("capture: configure session: %w", err)
	}
	return nil
}

// start connects for replication and starts streaming. The slot may
// still be held for a moment by the stream of a reader that just died:
// start retries while the server says so.
func (s *session) start(ctx context.Context) error {
	cfg, err := s.b.d.replicationConfig(ctx, s.b.db)
	if err != nil {
		return err
	}
	args := []string{"proto_version '1'", "publication_names " + outbox.QuoteLiteral(quoteIdent(s.n.publication)), "messages 'true'"}
	deadline := time.Now().Add(s.b.s.Lease)
	for {
		s.repl, err = pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("capture: connect for replication (the role needs the REPLICATION attribute): %w", err)
		}
		// Cancelled midway, the server may have started streaming: Close
		// waits for it to stop.
		s.streamer = s.repl.PID()
		err = pglogrepl.StartReplication(ctx, s.repl, s.n.slot, 0, pglogrepl.StartReplicationOptions{PluginArgs: args})
		if err == nil {
			return nil
		}
		_ = s.repl.Close(context.WithoutCancel(ctx))
		s.repl = nil
		if pgCode(err) != codeObjectInUse || time.Now().After(deadline) {
			return fmt.Errorf("capture: start streaming from slot %s: %w", s.n.slot, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// replicationConfig is the connection to stream with: Config.ConnString,
// or the settings of db's connections, with replication=database. Dates
// and times are streamed as text in one form, whatever the server's
// defaults (see jsonValue).
func (d *Dialect) replicationConfig(ctx context.Context, db *sql.DB) (*pgconn.Config, error) {
	var cfg *pgconn.Config
	if d.cfg.ConnString != "" {
		c, err := pgconn.ParseConfig(d.cfg.ConnString)
		if err != nil {
			return nil, fmt.Errorf("capture: pgwal.Config.ConnString: %w", err)
		}
		cfg = c
	} else {
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("capture: connect: %w", err)
		}
		defer conn.Close()
		err = conn.Raw(func(dc any) error {
			c, ok := dc.(*stdlib.Conn)
			if !ok {
				return fmt.Errorf("capture: db's driver is %T, not pgx's: set pgwal.Config.ConnString", dc)
			}
			cfg = c.Conn().Config().Config.Copy()
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "restlive capture"
	cfg.RuntimeParams["DateStyle"] = "ISO"
	cfg.RuntimeParams["TimeZone"] = "UTC"
	// A cancel request would end the stream, not one wait for it.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	return cfg, nil
}

// load reads where the log stands, what the slot has confirmed, the
// captured tables, and the changes logged and not confirmed, to publish
// again.
func (s *session) load(ctx context.Context) error {
	c, err := readCursor(ctx, s.conn)
	if err != nil {
		return err
	}
	s.cur = c
	var confirmed pglogrepl.LSN
	if err := s.conn.QueryRowContext(ctx, `SELECT coalesce(confirmed_flush_lsn, '0/0')::text, current_schema()
		FROM pg_replication_slots WHERE slot_name = $1`, s.n.slot).Scan(&confirmed, &s.own); err != nil {
		return fmt.Errorf("capture: read slot: %w", err)
	}
	s.own += ".restlive_wal_tables"
	s.confirmed, s.sent, s.sentAt = confirmed, confirmed, time.Now()
	if err := s.loadTables(ctx); err != nil {
		return err
	}
	if s.replay, err = readLog(ctx, s.conn, `last_lsn >= $1::pg_lsn`, confirmed); err != nil {
		return err
	}
	s.published = uint64(c.seq)
	if len(s.replay) > 0 {
		s.published = s.replay[0].Seq - 1
	}
	s.pos = confirmed
	return nil
}

// Next returns the changes not yet committed, if a publish failed; else
// those logged before this session and not confirmed; else the changes
// received since the last call, at most limit, once logged.
func (s *session) Next(ctx context.Context, limit int) ([]outbox.Row, error) {
	if len(s.pending) > 0 {
		return s.pending, nil
	}
	if len(s.replay) > 0 {
		k := min(limit, len(s.replay))
		s.pending, s.replay = s.replay[:k:k], s.replay[k:]
		return s.pending, nil
	}
	if err := s.collect(limit); err != nil {
		return nil, err
	}
	if h := s.b.d.hooks; h != nil && h.collecting != nil && len(s.batch) > 0 {
		pks := make([]string, len(s.batch))
		for i, c := range s.batch {
			pks[i] = c.row.PK
		}
		h.collecting(pks)
	}
	if len(s.batch) > 0 || s.fence != 0 || s.tablesDirty {
		rows, err := s.log(ctx)
		if err != nil {
			return nil, err
		}
		s.pending = rows
	}
	s.advance()
	if err := s.status(false); err != nil {
		return nil, err
	}
	return s.pending, nil
}

// collect handles what the stream has received, without waiting, until
// the batch holds limit changes.
func (s *session) collect(limit int) error {
	for len(s.batch) < limit && s.err == nil {
		select {
		case ev, ok := <-s.events:
			s.handle(ev, ok)
		default:
			return nil
		}
	}
	return s.err
}

func (s *session) Valid() bool { return true }

// Commit records that the changes up to seq, the last returned by Next
// or one before, are published.
func (s *session) Commit(_ context.Context, seq uint64) error {
	if len(s.pending) == 0 || seq < s.pending[0].Seq || seq > s.pending[len(s.pending)-1].Seq {
		return fmt.Errorf("capture: commit of seq %d, which the last read did not return", seq)
	}
	s.pending = s.pending[seq-s.pending[0].Seq+1:]
	if len(s.pending) == 0 {
		s.pending = nil
	}
	s.published = seq
	s.advance()
	return nil
}

// advance moves the position the slot may confirm past the marks whose
// changes are published; not while the cursor lacks a change of the
// table list, which a stream started from there would not send again.
func (s *session) advance() {
	if s.tablesDirty {
		return
	}
	i := 0
	for ; i < len(s.marks) && s.marks[i].seq <= s.published; i++ {
		s.confirmed = max(s.confirmed, s.marks[i].lsn)
	}
	s.marks = s.marks[i:]
}

// statusInterval is how often, at most, the reader tells the slot how
// far it has published while changes keep coming; the server needs to
// hear within wal_sender_timeout (a minute by default) in any case.
const statusInterval = 100 * time.Millisecond

// status tells the server how far the slot may confirm, if it asked or
// if it is time to. Confirmed positions are what a restarted stream
// starts after, and what lets the server recycle its log.
func (s *session) status(force bool) error {
	now := time.Now()
	due := s.replyDue || now.Sub(s.sentAt) >= 10*time.Second ||
		s.confirmed > s.sent && (force || now.Sub(s.sentAt) >= statusInterval)
	if !due {
		return nil
	}
	if err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.repl,
		pglogrepl.StandbyStatusUpdate{WALWritePosition: s.confirmed}); err != nil {
		return fmt.Errorf("capture: send status to the server: %w", err)
	}
	s.sent, s.sentAt, s.replyDue = s.confirmed, now, false
	return nil
}

// Flush tells the slot how far the changes are published.
func (s *session) Flush(context.Context) error {
	s.advance()
	return s.status(true)
}

func (s *session) Dirty() bool { return s.confirmed > s.sent || s.replyDue }

// Renew returns the stream's error, if it failed, and checks now and
// then that the lock's session lives: a reader that lost it would keep
// the slot from the standby that took the lock.
func (s *session) Renew(ctx context.Context) error {
	if s.err != nil {
		return s.err
	}
	if time.Since(s.pinged) < s.b.s.Lease/5 {
		return nil
	}
	if _, err := s.conn.ExecContext(ctx, `SELECT 1`); err != nil {
		return fmt.Errorf("capture: the lock's session: %w", err)
	}
	s.pinged = time.Now()
	return nil
}

// Wait returns when the stream sends something, d passes, or the reader
// is nudged; at once if the last read found changes.
func (s *session) Wait(ctx context.Context, d time.Duration, nudged <-chan struct{}, busy bool) error {
	if busy || len(s.replay) > 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case ev, ok := <-s.events:
		s.handle(ev, ok)
	case <-nudged:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Close ends the session: it stops the stream, after telling the server
// how far it published, waits for the server to free the slot, so that
// the standby that takes the lock next can stream at once, and discards
// the lock's connection, which ends the lock.
func (s *session) Close() {
	if s.stopReceive != nil {
		s.settle()
		s.stopReceive()
		<-s.received
		for ev := range s.events {
			s.handle(ev, true)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.repl != nil {
		s.advance()
		if s.confirmed > s.sent {
			_ = pglogrepl.SendStandbyStatusUpdate(ctx, s.repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: s.confirmed})
		}
		_ = s.repl.Close(ctx)
	}
	if s.streamer != 0 {
		s.waitSlotFree(ctx)
	}
	_ = s.conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = s.conn.Close()
}

// settle waits, briefly, for the end of the transaction the stream is
// in: its changes may all be published, and the slot can confirm them
// only once the stream says the transaction ended. Else the next reader
// would publish them again.
func (s *session) settle() {
	deadline := time.NewTimer(100 * time.Millisecond)
	defer deadline.Stop()
	for s.txn != nil && s.err == nil {
		select {
		case ev, ok := <-s.events:
			s.handle(ev, ok)
		case <-deadline.C:
			return
		}
	}
}

// waitSlotFree waits, boundedly, for the server's end of the stream to
// let the slot go. It asks through the pool: the session's connection
// may be what failed.
func (s *session) waitSlotFree(ctx context.Context) {
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		var ours bool
		err := s.b.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1 AND active_pid = $2)`,
			s.n.slot, int64(s.streamer)).Scan(&ours)
		if err != nil || !ours {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

var errStreamEnded = errors.New("capture: the replication stream ended")
