package restlive_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUsersDependencies builds, as a user would, a program in a module of
// its own that imports only live and gormlive, and checks what it takes
// in: no NATS server, PostgreSQL GORM driver or test helpers in its module
// graph (the tests and examples that need them are modules of their own),
// and no PostgreSQL driver linked into its binary.
func TestUsersDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module")
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module example.com/app\n\ngo 1.26.0\n\nrequire github.com/restlive/restlive v0.0.0\n\nreplace github.com/restlive/restlive => " + root + "\n",
		"main.go": `package main

import (
	"fmt"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
)

func main() { fmt.Println(live.NewRouter(live.Config{}) != nil, gormlive.DB) }
`,
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
	for _, unwanted := range []string{"github.com/nats-io/nats-server", "gorm.io/driver/postgres", "github.com/restlive/restlive/examples"} {
		if strings.Contains(graph, unwanted) {
			t.Errorf("the module graph of a program using live and gormlive holds %s", unwanted)
		}
	}
	goCmd("build", "-o", "app", ".")
	if linked := goCmd("version", "-m", filepath.Join(dir, "app")); strings.Contains(linked, "github.com/jackc/") {
		t.Errorf("a program using live and gormlive links a PostgreSQL driver:\n%s", linked)
	}
}
