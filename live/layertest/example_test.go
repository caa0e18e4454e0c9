package layertest_test

import (
	"testing"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/layertest"
)

// A layer's own test runs the suite through a factory, called once per
// simulated server process: every layer it returns must reach the same
// broker. Here, processes share one MemoryLayer; a broker layer opens a
// new connection to the test's broker each time.
func ExampleRun() {
	var t *testing.T // in a test, the test's t
	if t == nil {
		return // an Example cannot run a suite: see layertest_test.go
	}
	shared := live.NewMemoryLayer()
	layertest.Run(t, func(testing.TB) live.Layer { return shared })
}
