package pgwal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/restlive/restlive/capture/internal/outbox"
)

// The tables of capture from the write-ahead log, in the schema of the
// connection that installs them. Nothing in them is written by the
// application's transactions: the reader writes the cursor and the log,
// Install writes the table list.
var schema = []string{
	// How far the reader has logged, and the sequence: epoch names it (see
	// capture.History), seq is the last change logged, lsn and ord the
	// commit position of its transaction and its place among the
	// transaction's changes, so that the reader can tell which changes of
	// a stream replayed after a crash it has logged already. synced: every
	// transaction that committed before it is logged (see history.go).
	// slot is the slot the sequence is read from: another one, or one
	// made anew after it was lost, starts another epoch, since what
	// committed in between was never read. tables is what
	// restlive_wal_tables held at the stream's position tables_lsn (see
	// stream.go); NULL when the stream holds all of it.
	`CREATE TABLE IF NOT EXISTS restlive_wal_cursor (
		name text PRIMARY KEY,
		epoch text NOT NULL,
		slot text NOT NULL DEFAULT '',
		seq bigint NOT NULL DEFAULT 0,
		lsn pg_lsn NOT NULL DEFAULT '0/0',
		ord integer NOT NULL DEFAULT 0,
		synced pg_lsn NOT NULL DEFAULT '0/0',
		tables json,
		tables_lsn pg_lsn NOT NULL DEFAULT '0/0'
	)`,
	// The log of published changes, for History: one row per batch the
	// reader publishes, holding its changes (seqs first_seq to last_seq)
	// as a JSON array of [model, pk, op, old, new]. last_lsn is the commit
	// position of the batch's last transaction, which says whether the
	// batch was surely published (the slot has confirmed past it).
	`CREATE TABLE IF NOT EXISTS restlive_wal_log (
		first_seq bigint PRIMARY KEY,
		last_seq bigint NOT NULL,
		last_lsn pg_lsn NOT NULL,
		logged_at timestamptz NOT NULL DEFAULT now(),
		changes json NOT NULL
	)`,
	// The captured tables. It is in the publication, so the reader learns
	// of a change of it in the stream, at its place among the changes of
	// the tables.
	`CREATE TABLE IF NOT EXISTS restlive_wal_tables (
		name text PRIMARY KEY,
		model text NOT NULL,
		pk text NOT NULL,
		fields text NOT NULL DEFAULT ''
	)`,
	// A new cursor starts a new epoch: the log of the old one goes, and
	// the table list is written again, for the stream to hold all of it.
	`WITH c AS (
		INSERT INTO restlive_wal_cursor (name, epoch) VALUES ('default', ` + newEpoch + `)
		ON CONFLICT (name) DO NOTHING RETURNING 1
	),
	l AS (DELETE FROM restlive_wal_log WHERE EXISTS (SELECT FROM c))
	UPDATE restlive_wal_tables SET name = name WHERE EXISTS (SELECT FROM c)`,
}

// newEpoch is SQL for a new epoch name.
const newEpoch = `left(replace(gen_random_uuid()::text, '-', ''), 16)`

// Install creates the tables, the publication and the slot if they are
// missing, and records tables, sets their replica identity where it
// cannot give what capture needs and adds them to the publication, in one
// transaction, so that the reader learns of them before their first
// change. The slot is made last, out of the transaction, as PostgreSQL
// requires: its stream starts there.
func (d *Dialect) Install(ctx context.Context, db *sql.DB, tables []outbox.Table) error {
	if err := checkWALLevel(ctx, db); err != nil {
		return err
	}
	n, err := d.names(ctx, db)
	if err != nil {
		return err
	}
	err = outbox.InTx(ctx, db, "BEGIN", func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", installLockKey); err != nil {
			return err
		}
		if err := outbox.ExecAll(ctx, conn, schema); err != nil {
			return err
		}
		if err := ensurePublication(ctx, conn, n.publication); err != nil {
			return err
		}
		for _, t := range tables {
			if err := installTable(ctx, conn, n.publication, t); err != nil {
				return fmt.Errorf("table %q: %w", t.Table, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	_, err = ensureSlot(ctx, db, n.slot)
	return err
}

// checkWALLevel: without wal_level = logical the server writes no
// log a slot can decode.
func checkWALLevel(ctx context.Context, q querier) error {
	var level string
	if err := q.QueryRowContext(ctx, `SHOW wal_level`).Scan(&level); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if level != "logical" {
		return fmt.Errorf("capture from the write-ahead log needs wal_level = logical, and the server has %s: "+
			"set it in postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart the server", level)
	}
	return nil
}

// ensurePublication creates the publication of restlive_wal_tables.
// TRUNCATE is left out: as with the triggers, it is not captured.
func ensurePublication(ctx context.Context, conn *sql.Conn, name string) error {
	var exists bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT FROM pg_publication WHERE pubname = $1)`, name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err := conn.ExecContext(ctx, "CREATE PUBLICATION "+quoteIdent(name)+
		" FOR TABLE restlive_wal_tables WITH (publish = 'insert, update, delete')")
	return err
}

// installTable records t, and changes the database only where it must:
// ALTER TABLE and ALTER PUBLICATION lock the table against writers.
func installTable(ctx context.Context, conn *sql.Conn, publication string, t outbox.Table) error {
	info, err := describe(ctx, conn, outbox.QuoteIdent(t.Table), publication)
	if err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, `INSERT INTO restlive_wal_tables (name, model, pk, fields) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET model = excluded.model, pk = excluded.pk, fields = excluded.fields
		WHERE (restlive_wal_tables.model, restlive_wal_tables.pk, restlive_wal_tables.fields) IS DISTINCT FROM (excluded.model, excluded.pk, excluded.fields)`,
		info.name, t.Model, t.PK, strings.Join(t.Fields, ",")); err != nil {
		return err
	}
	if info.identityGap(t) != "" {
		if _, err := conn.ExecContext(ctx, "ALTER TABLE "+info.quoted()+" REPLICA IDENTITY FULL"); err != nil {
			return err
		}
	}
	if !info.published {
		if _, err := conn.ExecContext(ctx, "ALTER PUBLICATION "+quoteIdent(publication)+" ADD TABLE "+info.quoted()); err != nil {
			return err
		}
	}
	return nil
}

// Remove takes tables out of the publication and the table list. Their
// replica identity stays as it is: an application may have wanted it.
func (d *Dialect) Remove(ctx context.Context, db *sql.DB, tables []string) error {
	n, err := d.names(ctx, db)
	if err != nil {
		return err
	}
	return outbox.InTx(ctx, db, "BEGIN", func(ctx context.Context, conn *sql.Conn) error {
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", installLockKey); err != nil {
			return err
		}
		for _, name := range tables {
			info, err := describe(ctx, conn, outbox.QuoteIdent(name), n.publication)
			if errors.Is(err, errNoTable) {
				continue
			}
			if err != nil {
				return fmt.Errorf("table %q: %w", name, err)
			}
			if info.published {
				if _, err := conn.ExecContext(ctx, "ALTER PUBLICATION "+quoteIdent(n.publication)+" DROP TABLE "+info.quoted()); err != nil {
					return err
				}
			}
			if _, err := conn.ExecContext(ctx, `DELETE FROM restlive_wal_tables WHERE name = $1`, info.name); err != nil {
				return err
			}
		}
		return nil
	})
}

// A tableInfo is what the catalog says of a table.
type tableInfo struct {
	name                 string // schema.table, as restlive_wal_tables names it
	schema, table        string
	identity             byte     // pg_class.relreplident: d, f, i or n
	primaryKey, identKey []string // the columns of the primary key and of the identity index
	published            bool     // in the publication
}

func (t tableInfo) quoted() string { return quoteIdent(t.schema) + "." + quoteIdent(t.table) }

var errNoTable = errors.New("no such table")

// describe reads the catalog's entry of the table quoted names.
func describe(ctx context.Context, q querier, quoted, publication string) (tableInfo, error) {
	var t tableInfo
	var identity, pk, ident string
	err := q.QueryRowContext(ctx, `
		SELECT n.nspname, c.relname, c.relreplident::text,
			coalesce((SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a
				ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid AND i.indisprimary), ''),
			coalesce((SELECT string_agg(a.attname, ',') FROM pg_index i JOIN pg_attribute a
				ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = c.oid AND i.indisreplident), ''),
			EXISTS (SELECT FROM pg_publication_rel r JOIN pg_publication p ON p.oid = r.prpubid
				WHERE r.prrelid = c.oid AND p.pubname = $2)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = to_regclass($1)`, quoted, publication).
		Scan(&t.schema, &t.table, &identity, &pk, &ident, &t.published)
	if errors.Is(err, sql.ErrNoRows) {
		return t, errNoTable
	}
	if err != nil {
		return t, err
	}
	t.name = t.schema + "." + t.table
	t.identity = identity[0]
	t.primaryKey = splitList(pk)
	t.identKey = splitList(ident)
	return t, nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// identityGap says which columns capture needs that the table's replica
// identity does not give, or "". A change carries the old values of the
// identity's columns only: with DEFAULT those of the primary key, with
// USING INDEX those of the index, with FULL all. An UPDATE that changes
// none of them carries none, but then they are the new ones. So capture
// needs the primary key column and Fields among the identity's columns.
func (t tableInfo) identityGap(tb outbox.Table) string {
	var key []string
	switch t.identity {
	case 'f':
		return ""
	case 'd':
		key = t.primaryKey
	case 'i':
		key = t.identKey
	}
	var missing []string
	for _, c := range append([]string{tb.PK}, tb.Fields...) {
		if !slices.Contains(key, c) {
			missing = append(missing, c)
		}
	}
	return strings.Join(missing, ", ")
}

// identityNames names the settings of relreplident.
var identityNames = map[byte]string{'d': "DEFAULT", 'f': "FULL", 'i': "USING INDEX", 'n': "NOTHING"}
