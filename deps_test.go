package restlive_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsersDependencies builds, as a user would, programs in modules of
// their own that import some of the library's packages, and checks what
// each takes in: no NATS server, PostgreSQL GORM driver or test helpers in
// its module graph (the tests and examples that need them are modules of
// their own), and, linked into its binary, only the drivers and ORM of the
// packages it imports: a program on GORM links no PostgreSQL driver, one
// on sqlview links neither GORM nor pgx, and one on sqlview/pgxview links
// pgx (which shows the check can tell).
func TestUsersDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds modules")
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, imports, code string
		linked, notLinked   []string
	}{
		{
			name:      "live and gormlive",
			imports:   `"github.com/restlive/restlive/gormlive"`,
			code:      `_ = gormlive.DB`,
			linked:    []string{"gorm.io/gorm"},
			notLinked: []string{"github.com/jackc/", "github.com/georgysavva/scany"},
		},
		{
			name:      "live, capture and sqlview",
			imports:   `"github.com/restlive/restlive/capture"; "github.com/restlive/restlive/sqlview"`,
			code:      `_ = sqlview.InstallCapture; _ = capture.SQLite`,
			linked:    []string{"github.com/georgysavva/scany/v2"},
			notLinked: []string{"github.com/jackc/", "gorm.io/", "github.com/glebarez/"},
		},
		{
			name:    "sqlview on a pgx pool",
			imports: `"github.com/restlive/restlive/sqlview/pgxview"`,
			code:    `_ = pgxview.Pool`,
			linked:  []string{"github.com/jackc/pgx/v5"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"go.mod": "module example.com/app\n\ngo 1.26.0\n\nrequire github.com/restlive/restlive v0.0.0\n\nreplace github.com/restlive/restlive => " + root + "\n",
				"main.go": "package main\n\nimport (\n\t\"fmt\"\n\t\"github.com/restlive/restlive/live\"\n\t" +
					strings.ReplaceAll(tt.imports, "; ", "\n\t") + "\n)\n\nfunc main() {\n\t" +
					strings.ReplaceAll(tt.code, "; ", "\n\t") + "\n\tfmt.Println(live.NewRouter(live.Config{}) != nil)\n}\n",
			}
			for name, content := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			goCmd := func(args ...string) string {
				t.Helper()
				cmd := exec.Command("go", args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return string(out)
			}
			goCmd("mod", "tidy")
			graph := goCmd("mod", "graph")
			if !strings.Contains(graph, "github.com/restlive/restlive@v0.0.0 gorm.io/gorm@") {
				t.Fatalf("the module graph lacks restlive's own requirements: the check reads the wrong graph:\n%s", graph)
			}
			for _, unwanted := range []string{"github.com/nats-io/nats-server", "gorm.io/driver/postgres", "github.com/restlive/restlive/examples",
				"github.com/go-chi/chi", "github.com/gin-gonic/gin", "github.com/labstack/echo"} {
				if strings.Contains(graph, unwanted) {
					t.Errorf("the module graph holds %s", unwanted)
				}
			}
			goCmd("build", "-o", "app", ".")
			var deps []string
			for _, line := range strings.Split(goCmd("version", "-m", filepath.Join(dir, "app")), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "dep" {
					deps = append(deps, f[1])
				}
			}
			has := func(prefix string) bool {
				for _, d := range deps {
					if strings.HasPrefix(d, prefix) {
						return true
					}
				}
				return false
			}
			for _, p := range tt.linked {
				if !has(p) {
					t.Errorf("the program does not link %s: the check cannot tell (linked: %v)", p, deps)
				}
			}
			for _, p := range tt.notLinked {
				if has(p) {
					t.Errorf("the program links %s (linked: %v)", p, deps)
				}
			}
		})
	}
}
