package capture

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/restlive/restlive/capture/internal/outbox"
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
}

func (c *Config) setDefaults(d Dialect) {
	def := d.Defaults()
	if c.PollInterval <= 0 {
		c.PollInterval = def.PollInterval
	}
	if c.BatchDelay <= 0 {
		c.BatchDelay = def.BatchDelay
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
	backend outbox.Backend
	nudged  chan struct{}

	// What Status reports.
	leading                  atomic.Bool
	published, publishErrors atomic.Uint64
}

// NewReader returns a reader of the outbox Install created in db.
func NewReader(db *sql.DB, d Dialect, cfg Config) (*Reader, error) {
	if err := checkDialect(d); err != nil {
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
	r.backend = d.Backend(db, outbox.Settings{Lease: cfg.Lease, Logger: cfg.Logger, Owner: ownerID()})
	return r, nil
}

// ownerID names this reader in the cursor: unique, and readable by an
// operator looking at the cursor table.
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
// returns an error at once if the outbox is not installed (or, reading
// the write-ahead log, if the database cannot provide what capture
// needs); later errors
// (a lost connection, a failing Publisher) are logged and retried with
// backoff, keeping unpublished changes for the next attempt.
func (r *Reader) Run(ctx context.Context) error {
	if err := r.dialect.Ready(ctx, r.db); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("capture: %w", err)
	}
	log := r.cfg.Logger
	backoff := newBackoff(r.cfg.Lease)
	standingBy := false
	for ctx.Err() == nil {
		s, err := r.backend.Lead(ctx)
		if ctx.Err() != nil {
			if s != nil {
				s.Close()
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
			sleep(ctx, r.backend.Standby())
			continue
		}
		standingBy = false
		log.InfoContext(ctx, "capture: reading the outbox", "dialect", r.dialect.String())
		r.leading.Store(true)
		err = r.serve(ctx, s, backoff)
		r.leading.Store(false)
		s.Close()
		if ctx.Err() != nil {
			if err != nil && !errors.Is(err, ctx.Err()) {
				log.Warn("capture: outbox reader stopped with an error", "err", err)
			}
			break
		}
		if errors.Is(err, outbox.ErrLostLead) {
			log.WarnContext(ctx, "capture: lost the outbox lease to another process")
			continue
		}
		log.WarnContext(ctx, "capture: outbox reader failed; retrying", "err", err)
		sleep(ctx, backoff.next())
	}
	log.Info("capture: stopped reading the outbox")
	return nil
}

// serve reads and publishes until ctx is cancelled or something fails.
// The cursor is written with the next read where the database allows (on
// PostgreSQL), at most outbox.CursorDelay after a publish otherwise, and
// when the reader stops.
func (r *Reader) serve(ctx context.Context, s outbox.Session, backoff *backoff) (err error) {
	// Statements run with a context that only times out: cancelling one
	// midway can break the session's connection (pgx does), and the
	// cursor must still be written once changes are published, or the
	// next reader would publish them again. ctx is checked between them.
	db := func(f func(context.Context) error) error {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), outbox.QueryTimeout)
		defer cancel()
		return f(qctx)
	}
	defer func() {
		if ferr := db(s.Flush); ferr != nil {
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
		if err := db(s.Renew); err != nil {
			return err
		}
		busy := false
		for {
			var rows []outbox.Row
			err := db(func(ctx context.Context) (err error) {
				rows, err = s.Next(ctx, r.cfg.BatchSize)
				return err
			})
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				break
			}
			busy = true
			if !s.Valid() {
				return outbox.ErrLostLead
			}
			changes := outbox.Changes(r.cfg.Logger, rows)
			if err := r.cfg.Publisher.Publish(ctx, changes); err != nil {
				r.publishErrors.Add(1)
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
			r.published.Add(uint64(len(changes)))
			if !failingSince.IsZero() {
				r.cfg.Logger.InfoContext(ctx, "capture: publishing again", "after", time.Since(failingSince).Round(time.Millisecond))
				failingSince = time.Time{}
			}
			last := rows[len(rows)-1].Seq
			if err := db(func(ctx context.Context) error { return s.Commit(ctx, last) }); err != nil {
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
			if err := db(s.Flush); err != nil {
				return err
			}
		}
		if now := time.Now(); now.After(nextPrune) {
			nextPrune = now.Add(r.cfg.PruneInterval)
			n, err := s.Prune(ctx, r.cfg.Retention, r.cfg.MaxRows)
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
		if s.Dirty() {
			poll = min(poll, outbox.CursorDelay)
		}
		if err := s.Wait(ctx, poll, r.nudged, busy); err != nil {
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
