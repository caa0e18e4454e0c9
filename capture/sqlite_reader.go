package capture

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/restlive/restlive/capture/internal/outbox"
)

// sqliteBackend elects the reader with a lease in the cursor row: a
// process owns the outbox while lease_until is in the future, renews it
// as it works, and every write of the cursor checks that it still owns it,
// so a process that lost its lease (paused past its expiry) cannot move
// the cursor of the one that took over.
type sqliteBackend struct {
	db *sql.DB
	s  outbox.Settings
}

func (b *sqliteBackend) Lead(ctx context.Context) (outbox.Session, error) {
	now := time.Now()
	res, err := b.db.ExecContext(ctx,
		`UPDATE restlive_cursor SET owner = ?, lease_until = ?
		 WHERE name = 'default' AND (owner = ? OR lease_until < ?)`,
		b.s.Owner, now.Add(b.s.Lease).UnixMilli(), b.s.Owner, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("capture: take lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return nil, err // another process holds the lease
	}
	s := &sqliteSession{b: b, leaseUntil: now.Add(b.s.Lease)}
	var newest int64
	if err := b.db.QueryRowContext(ctx,
		`SELECT published, (SELECT coalesce(max(seq), 0) FROM restlive_outbox) FROM restlive_cursor WHERE name = 'default'`).
		Scan(&s.published, &newest); err != nil {
		s.Close()
		return nil, fmt.Errorf("capture: read cursor: %w", err)
	}
	if s.published > newest {
		s.Close()
		return nil, errCursorAhead(s.published, newest)
	}
	s.pending = s.published
	return s, nil
}

// errCursorAhead reports an outbox whose newest rows are gone, which the
// trigger restlive_outbox_keep_newest prevents unless the table was
// dropped or the trigger bypassed: new writes take seqs the cursor counts
// as published, and reading on would skip them without a word.
func errCursorAhead(published, newest int64) error {
	return fmt.Errorf("capture: restlive_cursor says seq %d is published, but the newest row of restlive_outbox "+
		"has seq %d: the outbox was emptied or recreated, and the changes written since then have seqs "+
		"the reader counts as published; to publish them and start the sequence again, "+
		"run DELETE FROM restlive_cursor and call capture.Install, which starts a new epoch", published, newest)
}

func (b *sqliteBackend) Standby() time.Duration { return b.s.Lease / 5 }

type sqliteSession struct {
	b *sqliteBackend
	// published is the cursor as written, pending as published.
	published, pending int64
	flushedAt          time.Time
	leaseUntil         time.Time
}

// Next reads one row more than limit, and returns it only when the
// batch would otherwise end between a replaced row and the insert that
// replaced it, which are published as one change.
func (s *sqliteSession) Next(ctx context.Context, limit int) ([]outbox.Row, error) {
	rows, err := s.b.db.QueryContext(ctx,
		`SELECT seq, model, pk, op, old, new FROM restlive_outbox WHERE seq > ? ORDER BY seq LIMIT ?`,
		s.pending, limit+1)
	if err != nil {
		return nil, fmt.Errorf("capture: read outbox: %w", err)
	}
	out, err := outbox.ScanRows(rows)
	if len(out) > limit && out[limit-1].Op != "R" {
		out = out[:limit]
	}
	return out, err
}

func (s *sqliteSession) Dirty() bool { return s.pending != s.published }

// Valid reports whether the lease is certainly still ours: a margin of a
// quarter of the lease covers the time publishing takes.
func (s *sqliteSession) Valid() bool {
	return time.Until(s.leaseUntil) > s.b.s.Lease/4
}

func (s *sqliteSession) Commit(ctx context.Context, seq uint64) error {
	s.pending = int64(seq)
	if time.Since(s.flushedAt) < outbox.CursorDelay {
		return nil
	}
	return s.Flush(ctx)
}

// Flush writes the cursor, renewing the lease and checking that it is
// still ours.
func (s *sqliteSession) Flush(ctx context.Context) error {
	if s.pending == s.published {
		return nil
	}
	until := time.Now().Add(s.b.s.Lease)
	res, err := s.b.db.ExecContext(ctx,
		`UPDATE restlive_cursor SET published = ?, lease_until = ? WHERE name = 'default' AND owner = ?`,
		s.pending, until.UnixMilli(), s.b.s.Owner)
	if err != nil {
		return fmt.Errorf("capture: write cursor: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return outbox.ErrLostLead
	}
	s.published, s.leaseUntil, s.flushedAt = s.pending, until, time.Now()
	return nil
}

func (s *sqliteSession) Renew(ctx context.Context) error {
	if time.Until(s.leaseUntil) > s.b.s.Lease*2/3 {
		return nil
	}
	until := time.Now().Add(s.b.s.Lease)
	res, err := s.b.db.ExecContext(ctx,
		`UPDATE restlive_cursor SET lease_until = ? WHERE name = 'default' AND owner = ?`,
		until.UnixMilli(), s.b.s.Owner)
	if err != nil {
		return fmt.Errorf("capture: renew lease: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return outbox.ErrLostLead
	}
	s.leaseUntil = until
	return nil
}

func (s *sqliteSession) Wait(ctx context.Context, d time.Duration, nudged <-chan struct{}, _ bool) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-nudged:
	case <-t.C:
	}
	return nil
}

func (s *sqliteSession) Prune(run context.Context, retention time.Duration, maxRows int64) (int64, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(run), outbox.QueryTimeout)
	defer cancel()
	// Rows are in seq order and roughly in created_at order: the first row
	// young enough to keep bounds what age allows to delete, found by
	// walking the old rows only.
	var latest int64
	if err := s.b.db.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM restlive_outbox`).Scan(&latest); err != nil {
		return 0, fmt.Errorf("capture: prune outbox: %w", err)
	}
	cut := s.published
	var young int64
	err := s.b.db.QueryRowContext(ctx,
		`SELECT seq FROM restlive_outbox WHERE seq <= ? AND created_at >= ? ORDER BY seq LIMIT 1`,
		s.published, time.Now().Add(-retention).Unix()).Scan(&young)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return 0, fmt.Errorf("capture: prune outbox: %w", err)
	default:
		cut = max(young-1, latest-maxRows)
	}
	// Never a row not yet published, nor the newest (see sqliteSchema).
	cut = min(cut, s.published, latest-1)
	return outbox.DeleteUpTo(run, ctx, s.b.db, `DELETE FROM restlive_outbox WHERE seq IN
		(SELECT seq FROM restlive_outbox WHERE seq <= ? ORDER BY seq LIMIT 10000)`, cut)
}

// Close gives the lease up, so a standby takes over at once instead of
// when the lease expires.
func (s *sqliteSession) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = s.b.db.ExecContext(ctx,
		`UPDATE restlive_cursor SET lease_until = 0 WHERE name = 'default' AND owner = ?`, s.b.s.Owner)
}
