package pgcapture

import (
	"fmt"
	"strings"

	"github.com/restlive/restlive/capture/internal/outbox"
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
var schema = []string{
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
	// dialect.Since). read_at bounds what Config.Retention prunes.
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
	// Created only when missing: creating a trigger locks the outbox
	// against every captured write until Install commits.
	`DO $restlive$
	BEGIN
		IF NOT EXISTS (SELECT FROM pg_trigger
			WHERE tgname = 'restlive_outbox_deleted' AND tgrelid = 'restlive_outbox'::regclass) THEN
			CREATE TRIGGER restlive_outbox_deleted AFTER DELETE OR TRUNCATE ON restlive_outbox
				FOR EACH STATEMENT EXECUTE FUNCTION restlive_outbox_deleted();
		END IF;
	END
	$restlive$`,
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

func postgresTrigger(t outbox.Table) []string {
	fn := outbox.QuoteIdent(outbox.ObjectName("restlive_capture_", t.Table))
	pk, model := outbox.QuoteIdent(t.PK), outbox.QuoteLiteral(t.Model)
	// jsonb_build_object keeps the column's type: 14 stays a JSON number,
	// which the reader turns into "14" with live.Canonical.
	fields := func(row string) string {
		var args []string
		for _, f := range t.Fields {
			args = append(args, outbox.QuoteLiteral(f), row+"."+outbox.QuoteIdent(f))
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
			outbox.QuoteIdent(t.Table), fn),
	}
}

func postgresDropTrigger(table string) []string {
	return []string{
		"DROP TRIGGER IF EXISTS restlive_capture ON " + outbox.QuoteIdent(table),
		"DROP FUNCTION IF EXISTS " + outbox.QuoteIdent(outbox.ObjectName("restlive_capture_", table)) + "()",
	}
}
