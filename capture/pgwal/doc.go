// Package pgwal captures the changes of PostgreSQL tables from the
// server's write-ahead log, through a logical replication slot and the
// pgoutput plugin, rather than with triggers as pgcapture.Dialect does:
// the application's writes pay nothing beyond wal_level = logical.
//
//	d := pgwal.New(pgwal.Config{})
//	err := capture.Install(ctx, db, d, tasks)
//	r, err := capture.NewReader(db, d, capture.Config{Publisher: layer})
//	h, err := capture.NewHistory(db, d)
//
// It is a package of its own so that only programs that use it link the
// replication protocol's library. Package capture's documentation says
// how capture works on PostgreSQL, and in this mode.
package pgwal
