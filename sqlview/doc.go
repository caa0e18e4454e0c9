// Package sqlview serves the rows of a SQL table to live subscribers, and
// to an application's own REST handlers, from one definition written in
// SQL: the table, its key and group columns, a condition that narrows its
// rows to what a request may see, and a row type scanned by column name
// (or a scan function). It is gormlive for applications without an ORM,
// on database/sql (SQLite, PostgreSQL through pgx's stdlib) or, through
// package sqlview/pgxview, a pgx pool directly.
//
// Its scopes share as gormlive's do: one query per distinct scope and
// change, and, with QueryVary, one query for the scopes of users whose
// queries are the same and whose object permissions differ. Statements
// are built from the view's definition only: the values clients send
// (group values, lookups, keys, the arguments of Query's conditions) are
// bound parameters.
//
// The examples are the best way to understand how to use it.
package sqlview
