// Package testenv finds the real servers the tests run against, started by
// ./test.sh and named by environment variables.
package testenv

import (
	"os"
	"testing"
)

// Need returns the value of the environment variable env. When it is unset
// the test is skipped, or fails under CI (CI=true), where ./test.sh always
// sets it: a CI run must never pass by skipping.
func Need(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: run the tests with ./test.sh", env)
		}
		t.Skipf("%s is not set: run the tests with ./test.sh for this one", env)
	}
	return v
}
