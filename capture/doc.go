// Package capture records every committed write to the tables behind
// live views in the database itself, with triggers that append to an
// outbox table in the writing transaction, and publishes them as
// live.Change values in commit order once they commit. Writes through an
// ORM, raw SQL, bulk updates and other processes are all seen; rolled-back
// ones never are; and none is lost while the server restarts, because the
// reader resumes after the last seq it published.
//
//	err := capture.Install(ctx, db, capture.SQLite, capture.Table{
//		Model: "todolist.Task", Table: "tasks", PK: "id", Fields: []string{"list_id"},
//	})
//	r, err := capture.NewReader(db, capture.SQLite, capture.Config{Publisher: layer})
//	go r.Run(ctx)
//
// # Databases
//
// Each database has its Dialect: capture.SQLite, and pgcapture.Dialect
// for PostgreSQL, in package capture/pgcapture so that a program that
// uses only SQLite links no PostgreSQL driver.
//
// SQLite through the pure-Go github.com/glebarez/go-sqlite driver
// (GORM's github.com/glebarez/sqlite). The reader reads while the
// application writes, so open the database in WAL mode with a busy
// timeout, on every connection:
//
//	file:app.db?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)
//
// Without WAL the reader's polls block writers; without busy_timeout a
// writer that meets the reader's cursor update fails with SQLITE_BUSY.
// The reader polls (every 5ms by default) and Reader.Nudge wakes it at
// once after a write through this process. INSERT OR REPLACE over an
// existing row is reported as an update from the replaced row's values
// (a trigger before each insert looks its pk up, since SQLite fires no
// delete trigger for the replaced row), and INSERT OR IGNORE or ON
// CONFLICT DO NOTHING over one as an update that changed nothing. Rows
// that REPLACE deletes for a UNIQUE constraint other than the primary
// key, or in an UPDATE OR REPLACE, are not reported unless the
// connection sets PRAGMA recursive_triggers.
//
// PostgreSQL 15 or later through github.com/jackc/pgx/v5/stdlib (GORM's
// gorm.io/driver/postgres), with pgcapture.Dialect. The triggers NOTIFY at commit, which wakes the
// reader; a poll every second is a safety net. While writes keep coming
// the reader stops listening and reads every Config.BatchDelay instead,
// since relaying a notification to a listener costs each commit more than
// the trigger does. The reader holds one connection of db's pool for as
// long as it runs. TRUNCATE fires no row trigger, so it is not captured:
// delete the rows instead where subscribers must hear of it.
//
// PostgreSQL can also be captured from the server's write-ahead log,
// through a logical replication slot, with the Dialect pgwal.New returns
// (package capture/pgwal): the application's writes then pay nothing for
// capture, at the cost of wal_level = logical, a role with REPLICATION and
// a slot to watch. Install, NewReader and NewHistory take it as they take
// pgcapture.Dialect; its documentation says what it needs, and the README
// when to choose it.
//
// # Cost
//
// A captured write adds an outbox row to its transaction: one more page
// written per commit on SQLite, a row, an index entry and a notification
// on PostgreSQL. The reader's work per change falls as its batches grow.
// BenchmarkInsert (raw SQL, in this package for SQLite and in pgcapture
// for PostgreSQL) and gormlive's BenchmarkCreate measure both.
//
// # Outbox and cursor
//
// Install creates restlive_outbox (one row per written row: model, pk, op,
// and the Table's Fields before and after as JSON; on PostgreSQL also the
// writing transaction's id), restlive_cursor (how far the reader has
// published, who reads, and the sequence's epoch) and, on PostgreSQL,
// restlive_reads (a log of the reader's reads). Seq increases by one per change
// published: on SQLite it is the outbox row's rowid, given in commit
// order; on PostgreSQL the reader gives it as it reads, by snapshot, and
// does not write it to the row. Transactions are published in commit
// order, except that on PostgreSQL those that commit between two reads of
// the reader (a millisecond apart under load) come in the order they first
// wrote, each with all its changes in the order it made them. The reader
// prunes published rows older than Config.Retention or beyond
// Config.MaxRows. Delete rows by hand if you must, but on SQLite the
// newest row stays whatever the DELETE says (a trigger keeps it), since
// the next seq is one more than the highest left.
//
// # History
//
// NewHistory answers live.History from the outbox: which changes came
// after a client's offset, on any process of the database, for as long
// as the reader keeps them (Config.Retention and Config.MaxRows). An
// offset is a seq and the epoch of the sequence, a random name Install
// gives the cursor when it creates it: an outbox installed anew starts
// another. On SQLite that costs nothing beyond the outbox's rows (about
// 60 bytes a change with one field). On PostgreSQL the reader logs each
// read in the statement that reads: about 94 bytes on disk and 160 of
// write-ahead log a read, a read being one change when writes come one
// at a time and many under load (pgcapture's BenchmarkReadLog), against
// about 144 bytes the outbox keeps per change. Deleting outbox rows by
// hand empties that log, so offsets from before are not answered rather
// than answered wrong. Read from the write-ahead log there is no outbox:
// the reader logs what it publishes, and History reads that (see pgwal).
//
// # Many processes
//
// Any number of processes may run a Reader on one database: one reads,
// the others stand by and take over when it stops or dies. On PostgreSQL
// the reader holds a session advisory lock, and the cursor names it, so a
// reader that lost its session cannot write the cursor through another;
// on SQLite a lease in the cursor row, renewed as it works and checked by
// every cursor write.
package capture
