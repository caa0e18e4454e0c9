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

	admin := func(sql string) error {
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
	if err := admin("CREATE DATABASE " + name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// FORCE ends the sessions a failed test may have left open.
		if err := admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
