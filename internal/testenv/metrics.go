package testenv

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Gather returns the value of each gauge and counter g holds, by name
// (labels left out: the metrics tested this way have none).
func Gather(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.Metric {
			switch {
			case m.Gauge != nil:
				out[f.GetName()] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[f.GetName()] = m.Counter.GetValue()
			}
		}
	}
	return out
}
