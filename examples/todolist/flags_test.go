package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/restlive/restlive/internal/testenv"
)

// A wrong broker fails at start, with a message that names the flag and
// what is wrong, before the database is created.
func TestBrokerFlags(t *testing.T) {
	bin := command(t, raceEnabled)
	closed := testenv.FreePort(t) // nothing listens there
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // in stderr
	}{
		{"redis not a URL", []string{"-redis", "not-a-url"}, 1,
			[]string{`-redis: layer/redis: parse URL not-a-url`}},
		{"redis unreachable", []string{"-redis", fmt.Sprintf("redis://127.0.0.1:%d/0", closed)}, 1,
			[]string{fmt.Sprintf("-redis: layer/redis: connect to redis://127.0.0.1:%d/0", closed), "connection refused"}},
		{"nats not a URL", []string{"-nats", "nats://127.0.0.1:notaport"}, 1,
			[]string{`-nats: layer/nats: connect to`, `invalid port`}},
		{"nats unreachable", []string{"-nats", fmt.Sprintf("nats://127.0.0.1:%d", closed)}, 1,
			[]string{fmt.Sprintf("-nats: layer/nats: connect to nats://127.0.0.1:%d", closed), "no servers available"}},
		{"both", []string{"-redis", "redis://127.0.0.1:6379/0", "-nats", "nats://127.0.0.1:4222"}, 2,
			[]string{"-redis and -nats cannot be used together"}},
		{"help", []string{"-h"}, 0,
			[]string{"-redis URL", "Redis server at URL", "-nats URL", "NATS server at URL", "not both", "-views string", `"sql", by sqlview views`}},
		{"views", []string{"-views", "orm"}, 2,
			[]string{`-views "orm": want gorm or sql`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "todolist.db")
			p := spawn(t, "todolist", bin, append([]string{"-addr", "127.0.0.1:0", "-db", db}, tc.args...)...)
			err := p.wait(t, 30*time.Second)
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			out := p.log.String()
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the output lacks %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the database was created (%v): the broker is checked first", err)
			}
		})
	}
}
