package todoapp

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// clientAssets is where the page's copy of @restlive/client sits in the
// embedded files.
const clientAssets = "web/lib/restlive-client"

// TestClientAssets builds the client package from client/src, as
// browsertest/client-assets.mjs does for the page, and fails unless the
// binary embeds exactly those modules: a change to the client that was not
// copied into the page, or a hand edit of the copy, is caught here rather
// than by a page that behaves unlike the package's tests.
//
// It needs node and npm (and installs the client's TypeScript with npm ci
// when it is missing), as ./test.sh provides.
func TestClientAssets(t *testing.T) {
	t.Parallel()
	node := need(t, "node")
	need(t, "npm")
	script, err := filepath.Abs(filepath.Join("..", "browsertest", "client-assets.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	fresh := t.TempDir()
	out, code := runCommand(t, 5*time.Minute, filepath.Dir(script), node, script, fresh)
	if code != 0 {
		t.Fatalf("client-assets.mjs failed (exit %d):\n%s", code, out)
	}

	built := readFiles(t, os.DirFS(fresh), ".")
	embedded := readFiles(t, webFS, clientAssets)
	if len(built) == 0 {
		t.Fatal("the build made no modules")
	}
	var stale []string
	for name, b := range built {
		if e, ok := embedded[name]; !ok {
			stale = append(stale, name+" (missing)")
		} else if !bytes.Equal(b, e) {
			stale = append(stale, name+" (differs)")
		}
	}
	for name := range embedded {
		if _, ok := built[name]; !ok {
			stale = append(stale, name+" (no longer built)")
		}
	}
	if len(stale) > 0 {
		slices.Sort(stale)
		t.Fatalf("todoapp/%s is not a build of client/src: %q\nrun `npm run client-assets` in examples/todolist/browsertest and commit the result", clientAssets, stale)
	}
}

// readFiles returns the files of dir in fsys, by their path inside dir.
func readFiles(t *testing.T, fsys fs.FS, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
