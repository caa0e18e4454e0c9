package todoapp

import (
	"context"
	"net/http"
	"time"

	"github.com/restlive/restlive/metrics"
)

// watch registers the metrics of the router, the outbox reader and the
// broker layer, if it counts.
func (a *App) watch(m *metrics.Metrics, cfg Config) error {
	if err := m.WatchRouter(a.router); err != nil {
		return err
	}
	if err := m.WatchReader(a.reader); err != nil {
		return err
	}
	if l, ok := cfg.Layer.(metrics.Layer); ok {
		name := cfg.LayerName
		if name == "" {
			name = "broker"
		}
		a.layer = l
		return m.WatchLayer(name, l)
	}
	return nil
}

// healthz answers 200 while the process serves: for a liveness probe,
// which restarts a process that stops answering.
func (a *App) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 when the database and the broker (when there is
// one) are reachable, else 503 with what is not: for a readiness probe,
// which sends no traffic to a process that cannot serve it.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	status, code := map[string]string{"database": "ok"}, http.StatusOK
	if err := a.sqlDB.PingContext(ctx); err != nil {
		status["database"], code = err.Error(), http.StatusServiceUnavailable
	}
	if a.layer != nil {
		status["broker"] = "ok"
		if !a.layer.Stats().Connected {
			status["broker"], code = "disconnected", http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, status)
}
