package metrics_test

import (
	"fmt"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/metrics"
)

// A router told to a Metrics, which serves them with the process's own.
func Example() {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		log.Fatal(err)
	}
	router := live.NewRouter(live.Config{Observer: m}) // events: connections, frames, broadcasts, reads
	defer router.Close()
	if err := m.WatchRouter(router); err != nil { // gauges: what the router holds
		log.Fatal(err)
	}
	// m.WatchReader(reader) and m.WatchLayer("redis", layer) likewise.
	// ContinueOnError: a lag the database cannot tell while it is down
	// leaves out that metric, not all of them.
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))

	families, _ := reg.Gather()
	for _, f := range families[:3] {
		fmt.Println(f.GetName(), f.GetType())
	}
	// Output:
	// restlive_connections_open GAUGE
	// restlive_connections_opened_total COUNTER
	// restlive_frames_received_total COUNTER
}
