package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresDB creates an empty database on the server RESTLIVE_POSTGRES_URL
// names (skipping the test when it is unset, see Need), drops it when the
// test ends, and returns its URL. Each test gets its own database, so
// tests may run in parallel and leave anything behind.
func PostgresDB(t testing.TB) string {
	t.Helper()
	server := Need(t, "RESTLIVE_POSTGRES_URL")
	u, err := url.Parse(server)
	if err != nil {
		t.Fatalf("testenv: RESTLIVE_POSTGRES_URL: %v", err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "restlive_" + hex.EncodeToString(b)

	exec := func(server, sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	admin := func(sql string) error { return exec(server, sql) }
	if err := admin("CREATE DATABASE " + name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	u.Path = "/" + name
	t.Cleanup(func() {
		if err := dropSlots(func(sql string) error { return exec(u.String(), sql) }); err != nil {
			t.Errorf("testenv: drop the replication slots of %s: %v", name, err)
		}
		// FORCE ends the sessions a failed test may have left open.
		if err := admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	return u.String()
}

// dropSlots drops the logical replication slots of a test's database (a
// slot keeps its database from being dropped), ending the sessions that
// stream from them: a reader's goroutine stops before, but the server's
// end of its stream may linger a moment. A logical slot is dropped from
// its own database.
func dropSlots(exec func(sql string) error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
			WHERE database = current_database() AND active_pid IS NOT NULL`)
		if err == nil {
			err = exec(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
				WHERE database = current_database()`)
		}
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
