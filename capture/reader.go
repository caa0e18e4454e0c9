package capture

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/restlive/restlive/live"
)

// Config configures a Reader. Its zero value, with Publisher set, is
// ready to use.
type Config struct {
	// Publisher receives the committed changes, in commit order. Usually
	// the application's live.Layer. Required.
	Publisher live.Publisher
	// PollInterval is how long the reader waits for new rows before
	// looking anyway. Defaults to 5ms on SQLite, whose reader is woken
	// only by polls and Nudge, and to 1s on PostgreSQL, where the
	// triggers' NOTIFY wakes it and the poll is a safety net.
	PollInterval time.Duration
	// BatchSize is the most changes published in one call. Defaults to
	// 1000.
	BatchSize int
	// BatchDelay is how long the reader waits before reading again when
	// its last read found changes: under a stream of small writes it then
	// reads them a few at a time instead of one by one, trading that much
	// latency for less work per change. Defaults to no delay on SQLite
	// (the reader waits for a nudge or its poll) and to 1ms on
	// PostgreSQL, where the reader stops listening while changes keep
	// coming: a NOTIFY to a listener costs the writing transaction's
	// commit more than the trigger does.
	BatchDelay time.Duration
	// Retention is how long published outbox rows are kept, and so how
	// long a client's offset stays resumable (see History). On PostgreSQL
	// rows go with the read that published them, once the read after it
	// is that old. Defaults to 24 hours.
	Retention time.Duration
	// MaxRows is how many published outbox rows are kept at most,
	// whatever their age: offsets older than the last MaxRows changes
	// are not resumable. Rows not yet published are never deleted. On
	// PostgreSQL rows go by whole reads, and the newest read stays
	// whatever its size. Defaults to 1,000,000.
	MaxRows int64
	// PruneInterval is how often old outbox rows are deleted. Defaults to
	// 1 minute.
	PruneInterval time.Duration
	// Lease bounds how long the outbox goes unread when the process
	// reading it dies: on SQLite it is how long the reader's lease lasts
	// unless renewed (it renews it every third of it); on PostgreSQL,
	// where the lock ends with the reader's connection, only how often a
	// standby retries after an error. A standby checks every fifth of it.
	// A reader whose Publisher fails keeps reading (and retrying) for as
	// long, then gives the outbox up to another process. Defaults to 5s.
	Lease time.Duration
	// Logger receives the reader's events. Defaults to slog.Default().
	Logger *slog.Logger

	// testHookListening, if set, is called when a PostgreSQL reader
	// starts waiting for a notification.
	testHookListening func()
}

func (c *Config) setDefaults(d Dialect) {
	if c.PollInterval <= 0 {
		c.PollInterval = 5 * time.Millisecond
		if d == Postgres {
			c.PollInterval = time.Second
		}
	}
	if c.BatchDelay <= 0 && d == Postgres {
		c.BatchDelay = time.Millisecond
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.Retention <= 0 {
		c.Retention = 24 * time.Hour
	}
	if c.MaxRows <= 0 {
		c.MaxRows = 1_000_000
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = time.Minute
	}
	if c.Lease <= 0 {
		c.Lease = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// A Reader publishes the changes the triggers record in the outbox, in
// commit order, after they commit. Among all the processes that run a
// Reader on one database, one at a time reads the outbox; the others
// stand by and one of them takes over when it stops or dies.
//
// Delivery is exactly once in the normal path: the reader persists the
// last published seq and resumes after it, also when stopped by
// cancelling Run's context or when its database connection breaks. If the
// process dies after Publish returns and before the cursor is written (it
// is written with the next read on PostgreSQL, when the reader goes idle,
// and at most 10ms after a publish on SQLite), the next reader publishes
// those changes again, with the same Seq values (on SQLite seq is the
// rowid; on PostgreSQL the reader records each read's snapshot before it
// publishes any of it, so the next reader reads the same rows in the same
// order), so a consumer that must never see a duplicate can drop changes
// whose Seq it has seen.
//
// Run and Nudge may be called concurrently; Run once at a time.
type Reader struct {
	db      *sql.DB
	dialect Dialect
	cfg     Config
	backend backend
	nudged  chan struct{}
}

// NewReader returns a reader of the outbox Install created in db.
func NewReader(db *sql.DB, d Dialect, cfg Config) (*Reader, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("capture: NewReader: db is nil")
	}
	if cfg.Publisher == nil {
		return nil, errors.New("capture: NewReader: Config.Publisher is required")
	}
	cfg.setDefaults(d)
	r := &Reader{db: db, dialect: d, cfg: cfg, nudged: make(chan struct{}, 1)}
	switch d {
	case SQLite:
		r.backend = &sqliteBackend{db: db, cfg: &r.cfg, owner: ownerID()}
	case Postgres:
		r.backend = &postgresBackend{db: db, cfg: &r.cfg, owner: ownerID()}
	}
	return r, nil
}

// ownerID names this reader in the SQLite lease: unique, and readable by
// an operator looking at the cursor table.
func ownerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Nudge wakes the reader to look for new rows now rather than at its next
// poll. Call it after committing writes through this process (SQLite has
// no NOTIFY); it never blocks.
func (r *Reader) Nudge() {
	select {
	case r.nudged <- struct{}{}:
	default:
	}
}

// Run reads the outbox until ctx is cancelled, then returns nil. It
// returns an error at once if the outbox is not installed; later errors
// (a lost connection, a failing Publisher) are logged and retried with
// backoff, keeping unpublished changes for the next attempt.
func (r *Reader) Run(ctx context.Context) error {
	if err := r.db.QueryRowContext(ctx, "SELECT 1 FROM restlive_cursor WHERE name = 'default'").Scan(new(int)); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("capture: outbox not installed (call capture.Install first): %w", err)
	}
	log := r.cfg.Logger
	backoff := newBackoff(r.cfg.Lease)
	standingBy := false
	for ctx.Err() == nil {
		s, err := r.backend.lead(ctx)
		if ctx.Err() != nil {
			if s != nil {
				s.close()
			}
			break
		}
		if err != nil {
			log.WarnContext(ctx, "capture: cannot become the outbox reader", "err", err)
			sleep(ctx, backoff.next())
			continue
		}
		if s == nil {
			if !standingBy {
				log.InfoContext(ctx, "capture: another process reads the outbox; standing by")
				standingBy = true
			}
			sleep(ctx, r.backend.standby())
			continue
		}
		standingBy = false
		log.InfoContext(ctx, "capture: reading the outbox", "dialect", string(r.dialect))
		err = r.serve(ctx, s, backoff)
		s.close()
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, ctx.Err()) {
				log.Warn("capture: outbox reader stopped with an error", "err", err)
			}
			break
		}
		if errors.Is(err, errLostLead) {
			log.WarnContext(ctx, "capture: lost the outbox lease to another process")
			continue
		}
		log.WarnContext(ctx, "capture: outbox reader failed; retrying", "err", err)
		sleep(ctx, backoff.next())
	}
	log.Info("capture: stopped reading the outbox")
	return nil
}

// queryTimeout bounds each statement of the reader.
const queryTimeout = 30 * time.Second

// cursorDelay bounds how long the cursor may lag behind what was
// published while the reader is busy. Writing it after every batch would
// cost SQLite a write transaction per batch, as many as the application's
// own when it writes one row at a time.
const cursorDelay = 10 * time.Millisecond

// serve reads and publishes until ctx is cancelled or something fails.
// The cursor is written with the next read where the database allows (on
// PostgreSQL), at most cursorDelay after a publish otherwise, and when the
// reader stops.
func (r *Reader) serve(ctx context.Context, s session, backoff *backoff) (err error) {
	// Statements run with a context that only times out: cancelling one
	// midway can break the session's connection (pgx does), and the
	// cursor must still be written once changes are published, or the
	// next reader would publish them again. ctx is checked between them.
	db := func(f func(context.Context) error) error {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queryTimeout)
		defer cancel()
		return f(qctx)
	}
	defer func() {
		if ferr := db(s.flush); ferr != nil {
			err = errors.Join(err, ferr)
		}
	}()
	nextPrune := time.Now()
	var failingSince time.Time // of the Publisher, zero while it works
serving:
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := db(s.renew); err != nil {
			return err
		}
		busy := false
		for {
			var rows []row
			err := db(func(ctx context.Context) (err error) {
				rows, err = s.next(ctx, r.cfg.BatchSize)
				return err
			})
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				break
			}
			busy = true
			if !s.valid() {
				return errLostLead
			}
			if err := r.cfg.Publisher.Publish(ctx, r.changes(rows)); err != nil {
				// A broker outage fails every process alike: keep the lead
				// and retry, unless failing has lasted a lease, when another
				// process may well publish where this one cannot.
				if failingSince.IsZero() {
					failingSince = time.Now()
				}
				if time.Since(failingSince) >= r.cfg.Lease {
					return fmt.Errorf("capture: publish: %w", err)
				}
				r.cfg.Logger.WarnContext(ctx, "capture: publish failed; retrying", "err", err)
				sleep(ctx, backoff.next())
				continue serving
			}
			if !failingSince.IsZero() {
				r.cfg.Logger.InfoContext(ctx, "capture: publishing again", "after", time.Since(failingSince).Round(time.Millisecond))
				failingSince = time.Time{}
			}
			last := rows[len(rows)-1].seq
			if err := db(func(ctx context.Context) error { return s.commit(ctx, last) }); err != nil {
				return err
			}
			backoff.reset()
			if len(rows) < r.cfg.BatchSize {
				break
			}
		}
		// The cursor waits for the next read, which may write it for free,
		// unless this one found nothing: then the reader is idle.
		if !busy {
			if err := db(s.flush); err != nil {
				return err
			}
		}
		if now := time.Now(); now.After(nextPrune) {
			nextPrune = now.Add(r.cfg.PruneInterval)
			n, err := s.prune(ctx, r.cfg.Retention, r.cfg.MaxRows)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && ctx.Err() == nil {
				r.cfg.Logger.WarnContext(ctx, "capture: prune outbox", "err", err)
			} else if n > 0 {
				r.cfg.Logger.DebugContext(ctx, "capture: pruned outbox", "rows", n)
			}
		}
		poll := r.cfg.PollInterval
		if s.dirty() {
			poll = min(poll, cursorDelay)
		}
		if err := s.wait(ctx, poll, r.nudged, busy); err != nil {
			return err
		}
		if busy && r.cfg.BatchDelay > 0 {
			// Under load, let a few writes gather rather than read them one
			// by one: the reader's work per read costs about what a write
			// does.
			sleep(ctx, r.cfg.BatchDelay)
		}
	}
}

func (r *Reader) changes(rows []row) []live.Change { return changes(r.cfg.Logger, rows) }

// changes converts outbox rows. A row with an unknown op or values that
// cannot be decoded (written by hand, not by a trigger) is still
// published, as an update with Old and New unknown, which makes the hub
// re-check every scope holding the row; it is logged to log unless nil.
func changes(log *slog.Logger, rows []row) []live.Change {
	rows = mergeReplaced(rows)
	out := make([]live.Change, len(rows))
	for i, w := range rows {
		c := live.Change{Seq: w.seq, Model: w.model, PK: w.pk, Op: live.OpUpdate}
		var err error
		switch w.op {
		case "I", "U", "D":
			c.Op = live.Op(w.op[0])
			if c.Old, err = decodeFields(w.old); err == nil {
				c.New, err = decodeFields(w.new)
			}
		default:
			err = fmt.Errorf("unknown op %q", w.op)
		}
		if err != nil {
			if log != nil {
				log.Error("capture: bad outbox row", "seq", w.seq, "err", err)
			}
			c.Op, c.Old, c.New = live.OpUpdate, nil, nil
		}
		out[i] = c
	}
	return out
}

// mergeReplaced resolves the rows of op R, which SQLite's triggers
// record before an insert over an existing row (see sqliteTriggers),
// with its old values. Followed by the insert of the same row, as after
// INSERT OR REPLACE, the two are one update from the old values to the
// new. Followed by its update (ON CONFLICT DO UPDATE), the update says
// it all. Alone, the insert did not happen (OR IGNORE, ON CONFLICT DO
// NOTHING): an update that changed nothing, which is harmless to
// publish. The change keeps the seq of the last row it stands for.
func mergeReplaced(rows []row) []row {
	if !slices.ContainsFunc(rows, func(w row) bool { return w.op == "R" }) {
		return rows
	}
	out := make([]row, 0, len(rows))
	for i := 0; i < len(rows); i++ {
		w := rows[i]
		if w.op != "R" {
			out = append(out, w)
			continue
		}
		var next row
		if i+1 < len(rows) {
			next = rows[i+1]
		}
		switch {
		case next.model != w.model || next.pk != w.pk:
			w.op, w.new = "U", w.old
		case next.op == "I":
			w.seq, w.op, w.new = next.seq, "U", next.new
			i++
		case next.op == "U":
			continue
		default:
			w.op, w.new = "U", w.old
		}
		out = append(out, w)
	}
	return out
}

// decodeFields turns a trigger's JSON object into canonical strings; a
// NULL column is left out, since no group has a null value.
func decodeFields(b []byte) (map[string]string, error) {
	if b == nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v == nil {
			continue
		}
		s, err := live.Canonical(v)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

// A row is one outbox row.
type row struct {
	seq           uint64
	model, pk, op string
	old, new      []byte
}

func scanRows(rows *sql.Rows) ([]row, error) {
	defer rows.Close()
	var out []row
	for rows.Next() {
		var w row
		var seq int64
		if err := rows.Scan(&seq, &w.model, &w.pk, &w.op, &w.old, &w.new); err != nil {
			return nil, fmt.Errorf("capture: read outbox: %w", err)
		}
		w.seq = uint64(seq)
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("capture: read outbox: %w", err)
	}
	return out, nil
}

// errLostLead reports that another process became the reader.
var errLostLead = errors.New("capture: lost the outbox lease")

// A backend elects the reader and opens its session.
type backend interface {
	// lead makes this process the reader and returns its session, or nil
	// without an error if another process is the reader.
	lead(ctx context.Context) (session, error)
	// standby is how long to wait before trying lead again.
	standby() time.Duration
}

// A session is one spell as the reader.
type session interface {
	// next returns the next committed rows after the cursor, in seq order.
	next(ctx context.Context, limit int) ([]row, error)
	// valid reports whether this process is still certainly the reader.
	valid() bool
	// commit records seq as the last published. It may write the cursor
	// later, when flush is called or with the next read.
	commit(ctx context.Context, seq uint64) error
	// flush writes the cursor if commit has not.
	flush(ctx context.Context) error
	// dirty reports whether flush has something to write.
	dirty() bool
	// renew keeps the lead, returning errLostLead if it was lost.
	renew(ctx context.Context) error
	// wait returns when new rows may be there: after d, on nudged, or
	// sooner if the database says so. busy says the last read found rows;
	// a session may then return at once, leaving the reader to read again
	// after BatchDelay.
	wait(ctx context.Context, d time.Duration, nudged <-chan struct{}, busy bool) error
	// prune deletes published rows older than retention or beyond
	// maxRows. It stops between statements when ctx is cancelled, but does
	// not cancel them.
	prune(ctx context.Context, retention time.Duration, maxRows int64) (int64, error)
	// close ends the session, giving up the lead.
	close()
}

// backoff doubles from 50ms up to a limit.
type backoff struct{ cur, limit time.Duration }

func newBackoff(limit time.Duration) *backoff { return &backoff{limit: limit} }

func (b *backoff) next() time.Duration {
	b.cur = min(max(2*b.cur, 50*time.Millisecond), b.limit)
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
