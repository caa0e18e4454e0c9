package layertest_test

import (
	"testing"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/live/layertest"
)

// The memory layer is one process: its "processes" share one value.
func TestMemoryLayer(t *testing.T) {
	shared := live.NewMemoryLayer()
	layertest.Run(t, func(testing.TB) live.Layer { return shared })
}

func BenchmarkMemoryLayer(b *testing.B) {
	shared := live.NewMemoryLayer()
	layertest.Benchmark(b, func(testing.TB) live.Layer { return shared })
}
