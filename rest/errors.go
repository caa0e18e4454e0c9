package rest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
	"github.com/restlive/restlive/rest/drf"
)

// notAuthenticated answers a refusal of an anonymous request: logging in
// may change the answer, so the client is told so, as DRF does.
const notAuthenticated = "Authentication credentials were not provided."

// fail answers err: FieldErrors with 400 and the errors, an *live.Error with
// its code and message as detail (a 403 to an anonymous request becomes
// 401), anything else with 500, logged and not shown.
func (h *handler[M]) fail(w http.ResponseWriter, req *live.Request, err error) {
	var fields gormlive.FieldErrors
	var refusal *live.Error
	var authn errAuthenticate
	switch {
	case errors.As(err, &authn):
		if errors.As(authn.err, &refusal) && (refusal.Code == 401 || refusal.Code == 403) {
			if h.cfg.Challenge != "" {
				w.Header().Set("WWW-Authenticate", h.cfg.Challenge)
			}
			drf.WriteDetail(w, http.StatusUnauthorized, refusal.Message)
			return
		}
	case errors.As(err, &fields):
		body, merr := json.Marshal(fields)
		if merr == nil {
			drf.WriteJSON(w, http.StatusBadRequest, body)
			return
		}
		err = merr
	case errors.As(err, &refusal) && refusal.Code >= 400 && refusal.Code <= 599:
		if refusal.Code == http.StatusForbidden && req.Anonymous() {
			if h.cfg.Challenge != "" {
				w.Header().Set("WWW-Authenticate", h.cfg.Challenge)
			}
			drf.WriteDetail(w, http.StatusUnauthorized, notAuthenticated)
			return
		}
		drf.WriteDetail(w, refusal.Code, refusal.Message)
		return
	case errors.Is(err, gorm.ErrDuplicatedKey):
		// Reported only when the DB's gorm.Config has TranslateError.
		drf.WriteDetail(w, http.StatusBadRequest, "An instance with these values already exists.")
		return
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		drf.WriteDetail(w, http.StatusBadRequest, "A related instance does not exist.")
		return
	}
	ctx := req.HTTP.Context()
	if ctx.Err() != nil {
		// The client has gone, or its deadline passed: the failure is
		// the cancellation's, and there is nobody to answer.
		h.cfg.Logger.DebugContext(ctx, "rest: request canceled", "model", h.view.Label, "action", req.Action, "err", err)
		return
	}
	h.cfg.Logger.ErrorContext(ctx, "rest: request failed", "model", h.view.Label, "action", req.Action, "err", err)
	drf.WriteDetail(w, http.StatusInternalServerError, "A server error occurred.")
}

// inTx runs fn in a transaction, which ctx carries for the view's hooks
// (see gormlive.DB). A transaction SQLite refused because another writer
// held the database (SQLITE_BUSY: a deferred transaction that read, then
// wrote after another committed) is run again, a few times: the driver
// reports no error value to test, so its text is read.
func (h *handler[M]) inTx(ctx context.Context, fn func(ctx context.Context, tx *gorm.DB) error) error {
	for attempt := 1; ; attempt++ {
		err := h.view.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			return fn(gormlive.WithTx(ctx, tx), tx)
		})
		if err == nil || attempt == maxAttempts || !sqliteBusy(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}

const maxAttempts = 5

func sqliteBusy(err error) bool {
	s := err.Error()
	return strings.Contains(s, "SQLITE_BUSY") || strings.Contains(s, "database is locked")
}
