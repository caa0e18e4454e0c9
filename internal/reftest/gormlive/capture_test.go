package gormlive_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/pgcapture"
	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
)

// captureDialect is the capture dialect of db's GORM dialector.
func captureDialect(db *gorm.DB) capture.Dialect {
	if db.Dialector.Name() == "postgres" {
		return pgcapture.Dialect
	}
	return capture.SQLite
}

// changeLog is a live.Publisher that keeps what it is given.
type changeLog struct {
	mu      sync.Mutex
	changes []live.Change
	more    chan struct{}
}

func (l *changeLog) Publish(_ context.Context, changes []live.Change) error {
	l.mu.Lock()
	l.changes = append(l.changes, changes...)
	l.mu.Unlock()
	select {
	case l.more <- struct{}{}:
	default:
	}
	return nil
}

func (l *changeLog) wait(t *testing.T, n int) []live.Change {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		got := slices.Clone(l.changes)
		l.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-l.more:
		case <-deadline:
			t.Fatalf("got %d changes, want %d", len(got), n)
		}
	}
}

func TestCaptureTable(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		v := &gormlive.View[Todo]{Label: "todolist.Todo", DB: db.DB, GroupFields: []string{"list_id"}}
		got, err := v.CaptureTable()
		if err != nil {
			t.Fatal(err)
		}
		want := capture.Table{Model: "todolist.Todo", Table: "todos", PK: "id", Fields: []string{"list_id"}}
		if got.Model != want.Model || got.Table != want.Table || got.PK != want.PK ||
			!slices.Equal(got.Fields, want.Fields) || len(got.BoolFields) != 0 {
			t.Errorf("CaptureTable() = %+v, want %+v", got, want)
		}
		v.LookupField = "text"
		if got, _ := v.CaptureTable(); !slices.Equal(got.Fields, []string{"list_id", "text"}) {
			t.Errorf("with a lookup field, Fields = %v", got.Fields)
		}
		v.GroupFields = []string{"list_id", "done"}
		if got, _ := v.CaptureTable(); !slices.Equal(got.Fields, []string{"list_id", "done", "text"}) ||
			!slices.Equal(got.BoolFields, []string{"done"}) {
			t.Errorf("with a boolean group field, Fields = %v, BoolFields = %v", got.Fields, got.BoolFields)
		}
		v.GroupFields = []string{"nope"}
		if _, err := v.CaptureTable(); err == nil {
			t.Error("CaptureTable accepted a group field that is not a column")
		}
	})
}

// TestInstallCapture: writes through GORM, one by one and in bulk, reach
// the publisher once the triggers are installed from the view.
func TestInstallCapture(t *testing.T) {
	eachDB(t, func(t *testing.T, db *testDB) {
		ctx := context.Background()
		v := &gormlive.View[Todo]{Label: "todolist.Todo", DB: db.DB, GroupFields: []string{"list_id"}}
		if err := gormlive.InstallCapture(ctx, db.DB, captureDialect(db.DB), v); err != nil {
			t.Fatal(err)
		}
		log := &changeLog{more: make(chan struct{}, 1)}
		r, err := gormlive.NewCaptureReader(db.DB, captureDialect(db.DB), capture.Config{Publisher: log, PollInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Run(runCtx) }()
		defer func() {
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()

		if err := db.Create(&Todo{ID: 100, Text: "new", ListID: 2}).Error; err != nil {
			t.Fatal(err)
		}
		// Seeded list 1 holds todos 1, 2 and 3.
		if err := db.Model(&Todo{}).Where("list_id = ?", 1).Update("done", true).Error; err != nil {
			t.Fatal(err)
		}
		r.Nudge() // SQLite: no need to wait for the poll
		got := log.wait(t, 4)
		if c := got[0]; c.Op != live.OpInsert || c.PK != "100" || c.New["list_id"] != "2" {
			t.Errorf("insert: %+v", c)
		}
		var pks []string
		for _, c := range got[1:] {
			if c.Op != live.OpUpdate || c.Old["list_id"] != "1" || c.New["list_id"] != "1" {
				t.Errorf("bulk update: %+v", c)
			}
			pks = append(pks, c.PK)
		}
		slices.Sort(pks)
		if !slices.Equal(pks, []string{"1", "2", "3"}) {
			t.Errorf("bulk update changed %v, want 1, 2, 3", pks)
		}
		if err := gormlive.RemoveCapture(ctx, db.DB, captureDialect(db.DB), v); err != nil {
			t.Fatal(err)
		}
	})
}
