package capture_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sqliteApp is a program that uses the library on SQLite only.
const sqliteApp = `package main

import (
	"context"

	"github.com/glebarez/sqlite"
	"gorm.io/gorm"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	/*more imports*/
)

type Task struct {
	ID     int64
	ListID int64
}

func main() {
	db, err := gorm.Open(sqlite.Open("app.db"), &gorm.Config{})
	if err != nil {
		panic(err)
	}
	view := &gormlive.View[Task]{Label: "todolist.Task", DB: db, GroupFields: []string{"list_id"}}
	layer := live.NewMemoryLayer()
	if err := gormlive.InstallCapture(context.Background(), db, capture.SQLite, view); err != nil {
		panic(err)
	}
	r, err := gormlive.NewCaptureReader(db, capture.SQLite, capture.Config{Publisher: layer})
	if err != nil {
		panic(err)
	}
	_ = r.Run(context.Background())
	/*more code*/
}
`

// TestSQLiteAppLinksNoPostgres: a program that uses live, gormlive and
// capture on SQLite links no PostgreSQL driver; the same program that
// imports pgcapture does, which shows that the check can tell, and links
// no replication protocol, which only one that imports pgwal does.
func TestSQLiteAppLinksNoPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs")
	}
	for _, tt := range []struct {
		name      string
		imports   string
		code      string
		wantJackc bool
		wantRepl  bool // github.com/jackc/pglogrepl
	}{
		{"sqlite only", "", "", false, false},
		{"with pgcapture", `"github.com/restlive/restlive/capture/pgcapture"`, "_ = pgcapture.Dialect", true, false},
		{"with pgwal", `"github.com/restlive/restlive/capture/pgwal"`, "_ = pgwal.New(pgwal.Config{})", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := strings.NewReplacer("/*more imports*/", tt.imports, "/*more code*/", tt.code).Replace(sqliteApp)
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			bin := filepath.Join(dir, "app")
			// Run in this module, whose go.mod the file's imports resolve in.
			build := exec.Command("go", "build", "-o", bin, filepath.Join(dir, "main.go"))
			if out, err := build.CombinedOutput(); err != nil {
				t.Fatalf("go build: %v\n%s", err, out)
			}
			out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
			if err != nil {
				t.Fatalf("go version -m: %v\n%s", err, out)
			}
			var jackc []string
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "dep" && strings.HasPrefix(f[1], "github.com/jackc/") {
					jackc = append(jackc, f[1])
				}
			}
			if got := len(jackc) > 0; got != tt.wantJackc {
				t.Errorf("linked %v; want github.com/jackc/ modules: %v", jackc, tt.wantJackc)
			}
			if got := slices.Contains(jackc, "github.com/jackc/pglogrepl"); got != tt.wantRepl {
				t.Errorf("linked %v; want github.com/jackc/pglogrepl: %v", jackc, tt.wantRepl)
			}
		})
	}
}
