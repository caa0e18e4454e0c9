package pgwal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL's error codes that this package tells apart.
const (
	codeDuplicateObject   = "42710" // the slot exists already
	codeObjectInUse       = "55006" // the slot is streamed from
	codeInsufficientPrivs = "42501"
	codeUndefinedObject   = "42704" // no such slot
)

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// A txBeginner is a *sql.DB or *sql.Conn.
type txBeginner interface {
	querier
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// ensureSlot makes the slot if it is missing, or was invalidated
// (max_slot_wal_keep_size), and records it in the cursor. renewed says
// that the sequence starts another epoch: the slot was made anew, or
// another one replaces the cursor's, so changes committed in between
// were never read.
func ensureSlot(ctx context.Context, q txBeginner, slot string) (renewed bool, err error) {
	var ours bool
	var status string
	err = q.QueryRowContext(ctx, `SELECT database IS NOT DISTINCT FROM current_database(), coalesce(wal_status, '')
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&ours, &status)
	made := false
	switch {
	case errors.Is(err, sql.ErrNoRows):
		made, err = createSlot(ctx, q, slot)
	case err != nil:
		return false, fmt.Errorf("read replication slot %s: %w", slot, err)
	case !ours:
		return false, fmt.Errorf("replication slot %s belongs to another database or is not logical: "+
			"give this one another name (pgwal.Config.Slot)", slot)
	case status == "lost":
		// The server removed WAL it needed: it can never stream again.
		if _, err := q.ExecContext(ctx, `SELECT pg_drop_replication_slot($1)`, slot); err != nil {
			return false, fmt.Errorf("drop lost replication slot %s: %w", slot, err)
		}
		made, err = createSlot(ctx, q, slot)
	}
	if err != nil {
		return false, err
	}
	return recordSlot(ctx, q, slot, made)
}

// createSlot makes the slot; made is false if another process just did.
// It waits for the transactions in progress to end: the stream starts
// after them.
func createSlot(ctx context.Context, q querier, slot string) (made bool, err error) {
	_, err = q.ExecContext(ctx, `SELECT pg_create_logical_replication_slot($1, 'pgoutput')`, slot)
	switch pgCode(err) {
	case "":
		return err == nil, err
	case codeDuplicateObject:
		return false, nil
	case codeInsufficientPrivs:
		return false, fmt.Errorf("create replication slot %s: the role needs the REPLICATION attribute "+
			"(ALTER ROLE ... REPLICATION): %w", slot, err)
	}
	return false, fmt.Errorf("create replication slot %s: %w", slot, err)
}

// recordSlot writes the slot's name into the cursor, and starts a new
// epoch, emptying the log, when the cursor's sequence was read from
// another slot, or from this one before it was made anew. The table list
// is written again, so that the new stream holds all of it (see
// stream.go): changes committed between the slot's start and this are
// not captured.
func recordSlot(ctx context.Context, q txBeginner, slot string, made bool) (renewed bool, err error) {
	tx, err := q.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback() }()
	var old string
	if err := tx.QueryRowContext(ctx, `SELECT slot FROM restlive_wal_cursor WHERE name = 'default' FOR UPDATE`).Scan(&old); err != nil {
		return false, fmt.Errorf("read cursor: %w", err)
	}
	if old == slot && !made {
		return false, nil
	}
	renewed = old != ""
	if _, err := tx.ExecContext(ctx, `UPDATE restlive_wal_cursor SET slot = $1,
		epoch = CASE WHEN $2 THEN `+newEpoch+` ELSE epoch END WHERE name = 'default'`, slot, renewed); err != nil {
		return false, fmt.Errorf("write cursor: %w", err)
	}
	if renewed {
		if _, err := tx.ExecContext(ctx, `DELETE FROM restlive_wal_log`); err != nil {
			return false, fmt.Errorf("empty the log: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE restlive_wal_tables SET name = name`); err != nil {
		return false, fmt.Errorf("write the table list: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE restlive_wal_cursor SET tables = NULL, tables_lsn = '0/0' WHERE name = 'default'`); err != nil {
		return false, fmt.Errorf("write cursor: %w", err)
	}
	return renewed, tx.Commit()
}

// A SlotStatus is what the server says of the reader's replication slot.
// The slot keeps every byte of write-ahead log written since the reader
// last confirmed a position, for as long as it exists, whether a reader
// streams from it or not: a slot left behind by a deployment that is
// gone fills the server's disk unless max_slot_wal_keep_size bounds it.
type SlotStatus struct {
	// Slot is the slot's name.
	Slot string
	// Active says a reader streams from it now.
	Active bool
	// WALStatus is the server's pg_replication_slots.wal_status:
	// "reserved" or "extended" while the server keeps what the slot
	// needs; "unreserved" past max_slot_wal_keep_size, when the next
	// checkpoint may remove it; "lost" once it has, when the reader makes
	// the slot anew and starts another epoch.
	WALStatus string
	// Lag is how many bytes of write-ahead log the server has written
	// since the position the reader last confirmed: what a reader taking
	// over would have to read, most of it usually other tables' writes.
	Lag int64
	// Retained is how many bytes of write-ahead log the server keeps for
	// the slot: the disk it costs.
	Retained int64
	// Safe is how many more bytes may be written before the slot passes
	// max_slot_wal_keep_size; -1 when that is unlimited.
	Safe int64
}

// ErrNoSlot is returned by Status when the slot does not exist.
var ErrNoSlot = errors.New("pgwal: no such replication slot")

// Status reports on the slot, for monitoring: alert on a large Lag or
// Retained, or on a WALStatus other than "reserved".
func (d *Dialect) Status(ctx context.Context, db *sql.DB) (SlotStatus, error) {
	n, err := d.names(ctx, db)
	if err != nil {
		return SlotStatus{}, fmt.Errorf("pgwal: %w", err)
	}
	s := SlotStatus{Slot: n.slot}
	err = db.QueryRowContext(ctx, `SELECT active, coalesce(wal_status, ''),
			coalesce(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), confirmed_flush_lsn), 0)::bigint,
			coalesce(pg_wal_lsn_diff(pg_current_wal_insert_lsn(), restart_lsn), 0)::bigint,
			coalesce(safe_wal_size, -1)
		FROM pg_replication_slots WHERE slot_name = $1`, n.slot).
		Scan(&s.Active, &s.WALStatus, &s.Lag, &s.Retained, &s.Safe)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("%w: %s", ErrNoSlot, n.slot)
	}
	if err != nil {
		return s, fmt.Errorf("pgwal: read replication slot %s: %w", n.slot, err)
	}
	return s, nil
}

// Drop removes what Install made: the slot, first, so that it holds no
// more write-ahead log back, the publication and the tables. Call it when
// a deployment is retired for good; its offsets are not resumable after.
// It fails while a reader streams from the slot. The tables' replica
// identity stays as it is.
func (d *Dialect) Drop(ctx context.Context, db *sql.DB) error {
	n, err := d.names(ctx, db)
	if err != nil {
		return fmt.Errorf("pgwal: %w", err)
	}
	_, err = db.ExecContext(ctx, `SELECT pg_drop_replication_slot($1)`, n.slot)
	if err != nil && pgCode(err) != codeUndefinedObject {
		return fmt.Errorf("pgwal: drop replication slot %s: %w", n.slot, err)
	}
	for _, stmt := range []string{
		"DROP PUBLICATION IF EXISTS " + quoteIdent(n.publication),
		"DROP TABLE IF EXISTS restlive_wal_tables, restlive_wal_log, restlive_wal_cursor",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("pgwal: drop: %w", err)
		}
	}
	return nil
}
