package docs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/restlive/restlive"
	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/pgwal"
	"github.com/restlive/restlive/layer/nats"
	"github.com/restlive/restlive/layer/redis"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest"
)

// TestConfigurationIsDocumented checks that CONFIGURATION.md has a section
// for each config struct, naming each of its exported fields in a table
// row of its own, and none that does not exist.
func TestConfigurationIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "CONFIGURATION.md"))
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{}
	for _, part := range strings.Split(string(doc), "\n## ")[1:] {
		title, body, _ := strings.Cut(part, "\n")
		name, _, _ := strings.Cut(strings.Trim(title, "` "), "`")
		sections[name] = body
	}
	for name, cfg := range map[string]any{
		"restlive.Config": restlive.Config{},
		"live.Config":     live.Config{},
		"rest.Config":     rest.Config{},
		"capture.Config":  capture.Config{},
		"pgwal.Config":    pgwal.Config{},
		"redis.Config":    redis.Config{},
		"nats.Config":     nats.Config{},
	} {
		body, ok := sections[name]
		if !ok {
			t.Errorf("CONFIGURATION.md has no section for %s", name)
			continue
		}
		typ := reflect.TypeOf(cfg)
		fields := map[string]bool{}
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() {
				fields[f.Name] = true
				if !strings.Contains(body, "| `"+f.Name+"` |") {
					t.Errorf("CONFIGURATION.md, %s: field %s is not in a table row", name, f.Name)
				}
			}
		}
		for _, line := range strings.Split(body, "\n") {
			if field, ok := strings.CutPrefix(line, "| `"); ok {
				field, _, _ = strings.Cut(field, "`")
				if !fields[field] {
					t.Errorf("CONFIGURATION.md, %s: %s is no field of it", name, field)
				}
			}
		}
	}
}
