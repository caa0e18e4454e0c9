// Package pgwal captures the changes of PostgreSQL tables from the
// server's write-ahead log, through a logical replication slot and the
// pgoutput plugin, rather than with triggers and an outbox table as
// pgcapture.Dialect does: the application's writes pay nothing beyond
// wal_level = logical, changes come in the order the transactions
// committed, and nothing is written twice.
//
//	d := pgwal.New(pgwal.Config{})
//	err := capture.Install(ctx, db, d, tasks)
//	r, err := capture.NewReader(db, d, capture.Config{Publisher: layer})
//	go r.Run(ctx)
//	h, err := capture.NewHistory(db, d) // live.Config.History
//
// The changes are the outbox's: a primary key, an operation, and the old
// and new values of the Table's Fields, written as the triggers would
// (TestSameAsTriggers), published after commit and in commit order. The
// hub, the layers and the offsets of snapshot and resume work as they do
// with the triggers. It is a package of its own so that only programs that
// import it link the replication protocol (github.com/jackc/pglogrepl).
//
// # What the server and the role need
//
// PostgreSQL 15 or later with wal_level = logical in postgresql.conf, and
// a restart: Install and the reader say so otherwise. Each deployment
// holds one replication slot and one WAL sender while it streams
// (max_replication_slots and max_wal_senders, 10 by default).
//
// The reader streams over a connection of its own, with
// replication=database: Config.ConnString, or by default the settings of
// db's connections, which must then be pgx's
// (github.com/jackc/pgx/v5/stdlib, as gorm.io/driver/postgres opens them).
// Its role needs the REPLICATION attribute (ALTER ROLE app REPLICATION),
// and pg_hba.conf must let it connect to the database: a replication=database
// connection matches the database's lines, not those of the replication
// keyword. Install needs, of the same role, CREATE on the database (for
// the publication) and on the schema (for its three tables), and ownership
// of the captured tables (to add them to the publication and set their
// replica identity). No superuser is needed (TestRole).
//
// # Old values: REPLICA IDENTITY
//
// A change of an UPDATE or a DELETE carries the old values of the columns
// of the table's replica identity only: by default those of the primary
// key; with REPLICA IDENTITY USING INDEX those of a unique index over NOT
// NULL columns; with FULL every column. An UPDATE that changes none of
// them carries none, but then they are the new ones. Capture needs the old
// primary key (to see it change) and the old values of Fields (to tell
// the groups a row leaves), so Install leaves the identity as it is where
// its columns include the primary key and Fields (a table captured by its
// primary key alone, or one the application gave an index over those
// columns), and sets REPLICA IDENTITY FULL elsewhere: the only setting that
// gives the old value of a column outside a unique index. FULL writes the
// whole old row to the write-ahead log on UPDATE and DELETE (not on
// INSERT); an application that would rather log only the columns needed
// can create a unique index over the primary key and Fields (NOT NULL
// columns) and set REPLICA IDENTITY USING INDEX on it, which Install then
// keeps, at the cost of maintaining that index on every write. The reader
// refuses to start, saying which table and which columns, when a captured
// table's identity no longer gives them or the table left the publication
// (as when a migration made it anew: call capture.Install after migrating).
//
// # The reader
//
// One process streams at a time: the reader holds an advisory lock, and
// the slot itself admits one stream. The others stand by, blocked on the
// lock, and one takes over as soon as the reader's database session ends.
// The reader gives each change its Seq, writes the batch to a log
// (restlive_wal_log) and only then publishes it; the slot's position
// advances only once everything before it is published. A reader that
// crashes is followed by one that publishes again what the log holds past
// the slot's position, with the same Seqs, and skips what the stream then
// sends again of it: changes may be published twice after a crash, with
// the same Seq, never lost.
//
// The slot sends only what the server has flushed to disk. With
// synchronous_commit = off a commit is flushed by the WAL writer, every
// wal_writer_delay (200ms by default): lower it (10ms) where changes must
// be published sooner. With the default, synchronous commit, there is no
// such delay.
//
// TRUNCATE is not captured, as with the triggers. The first Install
// creates the slot, which waits for the transactions open at that moment
// to end.
//
// # A slot left behind
//
// A slot keeps every byte of write-ahead log written since its reader
// last confirmed a position, whether a reader streams from it or not: the
// slot of a deployment that is gone fills the server's disk. Bound it with
// max_slot_wal_keep_size (ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'):
// past it the server invalidates the slot, and the next reader makes it
// anew, logs an error, and starts another epoch (offsets of the old one get
// a snapshot; changes committed in between are not published). The reader
// warns when the setting is unlimited, and of slots named restlive_… that
// no reader streams from. Dialect.Status reports the slot's lag and the
// log it retains, for monitoring (metrics.WatchSlot makes Prometheus
// gauges of it); Dialect.Drop removes the slot, the
// publication and the tables of a deployment retired for good.
//
// # History
//
// capture.NewHistory answers from the log, which the reader writes off
// the application's writes, one row per batch (its changes as a JSON
// array), in the statement that moves its cursor, with a synchronous
// commit. When each change is a batch of its own, that is about 170 bytes
// of table and index per change and 500 bytes of write-ahead log per
// batch (BenchmarkLog); under a stream of writes, batches of tens of
// changes, about 65 bytes of write-ahead log per change (BenchmarkInsert).
// Its changes are kept as Config.Retention and Config.MaxRows say, as the
// outbox's are. A change the reader has not logged yet, committed a few
// milliseconds ago, is not in it, though a subscription loaded now already
// shows it: Since writes a fence into the write-ahead log (a logical
// decoding message) and waits for the reader to log everything before it,
// a round trip of a few milliseconds, no more than 2 seconds. With no
// reader running it returns an error, and the hub answers a resume with a
// snapshot. Head is where the log stands, at or ahead of what any process
// has published.
package pgwal
