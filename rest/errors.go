package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"gorm.io/gorm"

	"github.com/restlive/restlive/gormlive"
	"github.com/restlive/restlive/live"
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
	switch {
	case errors.As(err, &fields):
		body, merr := json.Marshal(fields)
		if merr == nil {
			writeJSON(w, http.StatusBadRequest, body)
			return
		}
		err = merr
	case errors.As(err, &refusal) && refusal.Code >= 400 && refusal.Code <= 599:
		if refusal.Code == http.StatusForbidden && req.Anonymous() {
			if h.cfg.Challenge != "" {
				w.Header().Set("WWW-Authenticate", h.cfg.Challenge)
			}
			writeDetail(w, http.StatusUnauthorized, notAuthenticated)
			return
		}
		writeDetail(w, refusal.Code, refusal.Message)
		return
	case errors.Is(err, gorm.ErrDuplicatedKey):
		// Reported only when the DB's gorm.Config has TranslateError.
		writeDetail(w, http.StatusBadRequest, "An instance with these values already exists.")
		return
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		writeDetail(w, http.StatusBadRequest, "A related instance does not exist.")
		return
	}
	ctx := req.HTTP.Context()
	if ctx.Err() != nil {
		// The client has gone, or its deadline passed: the failure is
		// the cancellation's, and there is nobody to answer.
		h.cfg.Logger.DebugContext(ctx, "rest: request canceled", "model", h.model.name, "action", req.Action, "err", err)
		return
	}
	h.cfg.Logger.ErrorContext(ctx, "rest: request failed", "model", h.model.name, "action", req.Action, "err", err)
	writeDetail(w, http.StatusInternalServerError, "A server error occurred.")
}

func writeDetail(w http.ResponseWriter, code int, detail string) {
	body, _ := json.Marshal(struct {
		Detail string `json:"detail"`
	}{detail})
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write(body) // a client that went away is not an error to report
}
