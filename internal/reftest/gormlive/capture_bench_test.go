package gormlive_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/pgwal"
	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/internal/testenv"
	"github.com/restlive/restlive/live"
)

// BenchmarkCreate measures what capture costs the writes an application
// makes through GORM: one task created per operation, on the SQLite
// settings of the example app and on PostgreSQL, without capture
// ("plain"), with the triggers ("triggers"), and with a reader publishing
// what they record as well ("reader"), nudged after each write on SQLite
// as the example app does. On a 2-core machine the reader competes with
// the writer.
func BenchmarkCreate(b *testing.B) {
	for _, dbName := range []string{"sqlite", "postgres", "postgres-wal"} {
		for _, mode := range []string{"plain", "triggers", "reader"} {
			b.Run(dbName+"/"+mode, func(b *testing.B) {
				var dialector gorm.Dialector
				if dbName == "sqlite" {
					dialector = sqlite.Open("file:" + filepath.Join(b.TempDir(), "bench.db") +
						"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)")
				} else {
					dialector = postgres.Open(testenv.PostgresDB(b))
				}
				var dialect capture.Dialect
				if dbName == "postgres-wal" {
					dialect = pgwal.New(pgwal.Config{})
				}
				db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
				if err != nil {
					b.Fatal(err)
				}
				if sqlDB, err := db.DB(); err == nil {
					b.Cleanup(func() { sqlDB.Close() })
				}
				if dialect == nil {
					dialect = captureDialect(db)
				}
				if err := db.AutoMigrate(&Todo{}); err != nil {
					b.Fatal(err)
				}
				nudge := func() {}
				if mode != "plain" {
					view := &gormlive.View[Todo]{Label: "test.Todo", DB: db, GroupFields: []string{"list_id"}}
					if err := gormlive.InstallCapture(b.Context(), db, dialect, view); err != nil {
						b.Fatal(err)
					}
				}
				if mode == "reader" {
					reader, err := gormlive.NewCaptureReader(db, dialect, capture.Config{
						Publisher: discard{},
						Logger:    slog.New(slog.DiscardHandler),
					})
					if err != nil {
						b.Fatal(err)
					}
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- reader.Run(ctx) }()
					b.Cleanup(func() {
						cancel()
						if err := <-done; err != nil {
							b.Error(err)
						}
					})
					if dbName == "sqlite" {
						nudge = reader.Nudge
					}
				}
				b.ReportAllocs()
				i := int64(0)
				for b.Loop() {
					i++
					if err := db.Create(&Todo{Text: "benchmark", ListID: i % 100}).Error; err != nil {
						b.Fatal(err)
					}
					nudge()
				}
			})
		}
	}
}

// discard is a Publisher that drops what it is given.
type discard struct{}

func (discard) Publish(context.Context, []live.Change) error { return nil }
