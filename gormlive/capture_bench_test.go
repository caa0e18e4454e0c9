package gormlive_test

import (
	"path/filepath"
	"testing"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/internal/testenv"
)

// BenchmarkCreate measures what the capture triggers cost the writes an
// application makes through GORM: one task created per operation, on the
// SQLite settings of the example app and on PostgreSQL, without and with
// the triggers.
func BenchmarkCreate(b *testing.B) {
	for _, dbName := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"plain", "triggers"} {
			b.Run(dbName+"/"+mode, func(b *testing.B) {
				var dialector gorm.Dialector
				if dbName == "sqlite" {
					dialector = sqlite.Open("file:" + filepath.Join(b.TempDir(), "bench.db") +
						"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)")
				} else {
					dialector = postgres.Open(testenv.PostgresDB(b))
				}
				db, err := gorm.Open(dialector, &gorm.Config{Logger: logger.Discard})
				if err != nil {
					b.Fatal(err)
				}
				if sqlDB, err := db.DB(); err == nil {
					b.Cleanup(func() { sqlDB.Close() })
				}
				if err := db.AutoMigrate(&Todo{}); err != nil {
					b.Fatal(err)
				}
				if mode == "triggers" {
					view := &gormlive.View[Todo]{Label: "test.Todo", DB: db, GroupFields: []string{"list_id"}}
					if err := gormlive.InstallCapture(b.Context(), db, view); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				i := int64(0)
				for b.Loop() {
					i++
					if err := db.Create(&Todo{Text: "benchmark", ListID: i % 100}).Error; err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
