// Package gormlive tests package gormlive on SQLite and PostgreSQL. It
// lives in the test module so that the PostgreSQL GORM driver and the
// UUID package it needs are no requirements of restlive itself.
package gormlive
