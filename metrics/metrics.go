// Package metrics exposes what a restlive server does as Prometheus
// metrics: connections and why they end, subscriptions and scopes by
// model, frames, broadcasts, the hub's reads and resyncs, the layers'
// broker connections, the capture reader's lag and its replication slot.
// It is the only package of restlive that imports the Prometheus client:
// live, capture and the layers offer what is observed (live.Observer,
// Router.Stats, Stats methods), and this package registers collectors for
// it.
//
//	reg := prometheus.NewRegistry()
//	m, err := metrics.New(reg)
//	router := live.NewRouter(live.Config{Observer: m})
//	m.WatchRouter(router)
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
//
// ContinueOnError keeps /metrics answering when a collector cannot read
// what it reports (the capture reader's lag, with the database down):
// promhttp's default answers 500 and hides every other metric.
//
// Every metric is named restlive_*, in base units, and every label takes
// a small set of values: model labels, close reasons, error codes; never a
// user, a value or a primary key.
package metrics

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/layer"
	"github.com/restlive/restlive/live"
)

// Metrics is a live.Observer that counts what it is told, and the
// collectors of the routers, layers and readers it watches. Its methods
// may be called concurrently.
type Metrics struct {
	reg prometheus.Registerer

	opened        prometheus.Counter
	closed        *prometheus.CounterVec
	refused       *prometheus.CounterVec
	frames        prometheus.Counter
	framesRefused *prometheus.CounterVec
	broadcasts    *prometheus.CounterVec
	bytes         prometheus.Counter
	writeFrames   prometheus.Histogram
	changes       prometheus.Counter
	batch         prometheus.Histogram
	reads         *prometheus.CounterVec
	readSeconds   *prometheus.HistogramVec
	resyncs       *prometheus.CounterVec
}

var _ live.Observer = (*Metrics)(nil)

// New returns Metrics whose counters and histograms are registered with
// reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		reg:     reg,
		opened:  counter("restlive_connections_opened_total", "WebSocket connections accepted."),
		closed:  counterVec("restlive_connections_closed_total", "WebSocket connections ended, by reason.", "reason"),
		refused: counterVec("restlive_connections_refused_total", "WebSocket connections refused before they were served, by reason.", "reason"),
		frames:  counter("restlive_frames_received_total", "Frames received from clients."),
		framesRefused: counterVec("restlive_frames_refused_total",
			"Frames answered with an error, by the protocol's error code.", "code"),
		broadcasts: counterVec("restlive_broadcasts_total",
			"Broadcasts queued to subscriptions, by model and action.", "model", "action"),
		bytes: counter("restlive_write_bytes_total", "Bytes written to WebSocket connections."),
		writeFrames: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "restlive_write_frames",
			Help:    "Frames a connection's queue held when written, in one write system call.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		changes: counter("restlive_hub_changes_total", "Changes the layer delivered to the hub."),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "restlive_hub_batch_changes",
			Help:    "Changes per delivery from the layer to the hub.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		reads: counterVec("restlive_hub_reads_total",
			"The hub's reads of scopes, by model, read (members, fetch, rows, history) and result (ok, error).", "model", "read", "result"),
		readSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "restlive_hub_read_seconds",
			Help:    "How long the hub's reads of scopes took, by read.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"read"}),
		resyncs: counterVec("restlive_hub_resyncs_total",
			"Subscriptions told to resynchronise, by cause (broker, read).", "cause"),
	}
	for _, c := range []prometheus.Collector{
		m.opened, m.closed, m.refused, m.frames, m.framesRefused, m.broadcasts, m.bytes,
		m.writeFrames, m.changes, m.batch, m.reads, m.readSeconds, m.resyncs,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe counts e (see live.Observer).
func (m *Metrics) Observe(e live.Event) {
	switch e.Kind {
	case live.EventConnected:
		m.opened.Inc()
	case live.EventDisconnected:
		m.closed.WithLabelValues(string(e.Reason)).Inc()
	case live.EventRefused:
		m.refused.WithLabelValues(string(e.Reason)).Inc()
	case live.EventFrame:
		m.frames.Inc()
	case live.EventFrameRefused:
		m.framesRefused.WithLabelValues(strconv.Itoa(e.Code)).Inc()
	case live.EventBroadcast:
		m.broadcasts.WithLabelValues(e.Model, e.Action).Add(float64(e.N))
	case live.EventWrite:
		m.bytes.Add(float64(e.N))
		m.writeFrames.Observe(float64(e.Frames))
	case live.EventDelivery:
		m.changes.Add(float64(e.N))
		m.batch.Observe(float64(e.N))
	case live.EventRead:
		result := "ok"
		if e.Failed {
			result = "error"
		}
		m.reads.WithLabelValues(e.Model, string(e.Read), result).Inc()
		m.readSeconds.WithLabelValues(string(e.Read)).Observe(e.Duration.Seconds())
	case live.EventResync:
		m.resyncs.WithLabelValues(string(e.Cause)).Add(float64(e.N))
	}
}

// WatchRouter registers the gauges of what rt holds, read from
// rt.Stats at each scrape: connections open, and subscriptions, scopes
// and instances by model.
func (m *Metrics) WatchRouter(rt *live.Router) error {
	return m.reg.Register(&routerCollector{rt: rt})
}

var (
	connectionsDesc   = prometheus.NewDesc("restlive_connections_open", "WebSocket connections open.", nil, nil)
	subscriptionsDesc = prometheus.NewDesc("restlive_subscriptions", "Subscriptions held, by model.", []string{"model"}, nil)
	scopesDesc        = prometheus.NewDesc("restlive_scopes", "Distinct scopes the hub keeps, by model.", []string{"model"}, nil)
	instancesDesc     = prometheus.NewDesc("restlive_instances", "Instances the hub's scopes hold, by model.", []string{"model"}, nil)
)

type routerCollector struct{ rt *live.Router }

func (c *routerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectionsDesc, subscriptionsDesc, scopesDesc, instancesDesc} {
		ch <- d
	}
}

func (c *routerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.rt.Stats()
	ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(st.Connections))
	for model, ms := range st.Models {
		ch <- prometheus.MustNewConstMetric(subscriptionsDesc, prometheus.GaugeValue, float64(ms.Subscriptions), model)
		ch <- prometheus.MustNewConstMetric(scopesDesc, prometheus.GaugeValue, float64(ms.Scopes), model)
		ch <- prometheus.MustNewConstMetric(instancesDesc, prometheus.GaugeValue, float64(ms.Instances), model)
	}
}

// A Layer is a layer that counts what it does: layer/redis and layer/nats.
type Layer interface {
	Stats() layer.Stats
}

// WatchLayer registers the metrics of l, labelled name ("redis", "nats"):
// whether its broker connection is up, its reconnects, the messages it
// sent and received, and the drops it reported.
func (m *Metrics) WatchLayer(name string, l Layer) error {
	return m.reg.Register(&layerCollector{name: name, l: l})
}

var (
	layerUpDesc        = prometheus.NewDesc("restlive_layer_connected", "Whether the layer's broker connection is up (1) or not (0).", []string{"layer"}, nil)
	layerReconnectDesc = prometheus.NewDesc("restlive_layer_reconnects_total", "Broker connections restored after a loss.", []string{"layer"}, nil)
	layerOutDesc       = prometheus.NewDesc("restlive_layer_messages_sent_total", "Broker messages published.", []string{"layer"}, nil)
	layerInDesc        = prometheus.NewDesc("restlive_layer_messages_received_total", "Broker messages received.", []string{"layer"}, nil)
	layerDropDesc      = prometheus.NewDesc("restlive_layer_drops_total", "Times the broker connection dropped messages (a NATS slow consumer).", []string{"layer"}, nil)
)

type layerCollector struct {
	name string
	l    Layer
}

func (c *layerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{layerUpDesc, layerReconnectDesc, layerOutDesc, layerInDesc, layerDropDesc} {
		ch <- d
	}
}

func (c *layerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.Stats()
	up := 0.0
	if st.Connected {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(layerUpDesc, prometheus.GaugeValue, up, c.name)
	ch <- prometheus.MustNewConstMetric(layerReconnectDesc, prometheus.CounterValue, float64(st.Reconnects), c.name)
	ch <- prometheus.MustNewConstMetric(layerOutDesc, prometheus.CounterValue, float64(st.MessagesOut), c.name)
	ch <- prometheus.MustNewConstMetric(layerInDesc, prometheus.CounterValue, float64(st.MessagesIn), c.name)
	ch <- prometheus.MustNewConstMetric(layerDropDesc, prometheus.CounterValue, float64(st.Dropped), c.name)
}

// A Reader is a capture reader that reports how it stands: capture.Reader.
type Reader interface {
	// Status says whether this process reads the outbox now, the
	// changes it published and its failed publishes.
	Status() (leading bool, published, publishErrors uint64)
	// Lag returns how many committed changes wait to be published, and
	// how long the oldest has waited.
	Lag(ctx context.Context) (rows int64, age time.Duration, err error)
}

// WatchReader registers the metrics of r: whether this process reads the
// outbox, the changes it published, its publish errors, and its lag (rows
// and age of the oldest unpublished change, read from the database at each
// scrape, within a second).
func (m *Metrics) WatchReader(r Reader) error {
	return m.reg.Register(&readerCollector{r: r})
}

var (
	readerLeaderDesc    = prometheus.NewDesc("restlive_capture_leader", "Whether this process reads the outbox (1) or stands by (0).", nil, nil)
	readerPublishedDesc = prometheus.NewDesc("restlive_capture_published_total", "Changes this process published from the outbox.", nil, nil)
	readerErrorsDesc    = prometheus.NewDesc("restlive_capture_publish_errors_total", "Publishes of changes that failed (and were retried).", nil, nil)
	readerLagRowsDesc   = prometheus.NewDesc("restlive_capture_lag_rows", "Committed changes not yet published.", nil, nil)
	readerLagAgeDesc    = prometheus.NewDesc("restlive_capture_lag_seconds", "How long the oldest committed change not yet published has waited.", nil, nil)
)

type readerCollector struct{ r Reader }

func (c *readerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{readerLeaderDesc, readerPublishedDesc, readerErrorsDesc, readerLagRowsDesc, readerLagAgeDesc} {
		ch <- d
	}
}

func (c *readerCollector) Collect(ch chan<- prometheus.Metric) {
	leading, published, errs := c.r.Status()
	lead := 0.0
	if leading {
		lead = 1
	}
	ch <- prometheus.MustNewConstMetric(readerLeaderDesc, prometheus.GaugeValue, lead)
	ch <- prometheus.MustNewConstMetric(readerPublishedDesc, prometheus.CounterValue, float64(published))
	ch <- prometheus.MustNewConstMetric(readerErrorsDesc, prometheus.CounterValue, float64(errs))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rows, age, err := c.r.Lag(ctx)
	if errors.Is(err, capture.ErrNoLag) {
		return // the slot's metrics tell it: see WatchSlot
	}
	if err != nil {
		ch <- prometheus.NewInvalidMetric(readerLagRowsDesc, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(readerLagRowsDesc, prometheus.GaugeValue, float64(rows))
	ch <- prometheus.MustNewConstMetric(readerLagAgeDesc, prometheus.GaugeValue, age.Seconds())
}

// SlotStats is what WatchSlot reads of the logical replication slot that
// capture streams from: the figures of pgwal.SlotStatus, named here so
// that this package links no PostgreSQL driver.
type SlotStats struct {
	Active   bool  // a reader streams from the slot now
	Lag      int64 // bytes of write-ahead log written since the position the reader last confirmed
	Retained int64 // bytes of write-ahead log the server keeps for the slot: the disk it costs
	Safe     int64 // bytes that may still be written before max_slot_wal_keep_size; -1: no limit
}

// WatchSlot registers the metrics of a replication slot, which stats
// reads at each scrape (within a second): whether a reader streams from
// it, its lag, and the write-ahead log it holds back on the server's disk
// (a slot keeps it even when no reader runs). With capture/pgwal:
//
//	m.WatchSlot(func(ctx context.Context) (metrics.SlotStats, error) {
//		s, err := dialect.Status(ctx, db)
//		return metrics.SlotStats{Active: s.Active, Lag: s.Lag, Retained: s.Retained, Safe: s.Safe}, err
//	})
//
// Alert on restlive_capture_slot_retained_bytes growing, or on
// restlive_capture_slot_safe_bytes nearing zero.
func (m *Metrics) WatchSlot(stats func(context.Context) (SlotStats, error)) error {
	return m.reg.Register(slotCollector(stats))
}

var (
	slotActiveDesc   = prometheus.NewDesc("restlive_capture_slot_active", "Whether a reader streams from the replication slot (1) or none does (0).", nil, nil)
	slotLagDesc      = prometheus.NewDesc("restlive_capture_slot_lag_bytes", "Write-ahead log written since the position the reader last confirmed.", nil, nil)
	slotRetainedDesc = prometheus.NewDesc("restlive_capture_slot_retained_bytes", "Write-ahead log the server keeps for the replication slot.", nil, nil)
	slotSafeDesc     = prometheus.NewDesc("restlive_capture_slot_safe_bytes", "Write-ahead log that may still be written before the slot passes max_slot_wal_keep_size (absent when unlimited).", nil, nil)
)

type slotCollector func(context.Context) (SlotStats, error)

func (c slotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{slotActiveDesc, slotLagDesc, slotRetainedDesc, slotSafeDesc} {
		ch <- d
	}
}

func (c slotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := c(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(slotLagDesc, err)
		return
	}
	active := 0.0
	if s.Active {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(slotActiveDesc, prometheus.GaugeValue, active)
	ch <- prometheus.MustNewConstMetric(slotLagDesc, prometheus.GaugeValue, float64(s.Lag))
	ch <- prometheus.MustNewConstMetric(slotRetainedDesc, prometheus.GaugeValue, float64(s.Retained))
	if s.Safe >= 0 {
		ch <- prometheus.MustNewConstMetric(slotSafeDesc, prometheus.GaugeValue, float64(s.Safe))
	}
}
