package sqlview

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/live"
)

// The REST side of View: what an application's own handlers call, so
// that a GET answers with the rows, permissions and bytes a subscription
// to the same view gets.

// Request returns the live.Request a REST request r makes of the view, by
// the user id (the Identity the application's authentication gives, as
// live.Config.Authenticate does): action, the view keyword arguments of
// args, and the query parameters of r's URL, both kept only where the
// view reads them (Args, QueryParams), as subscriptions' are.
func (v *View[R]) Request(r *http.Request, action live.Action, id live.Identity, args map[string]string) *live.Request {
	req := &live.Request{HTTP: r, Action: action, User: id.User, Args: map[string]string{}, Query: url.Values{}}
	if id.User != nil {
		req.UserID = id.ID
	}
	for _, a := range v.Args {
		if x, ok := args[a]; ok {
			req.Args[a] = x
		}
	}
	q := r.URL.Query()
	for _, p := range v.QueryParams {
		if x, ok := q[p]; ok {
			req.Query[p] = x
		}
	}
	return req
}

// Get returns the row lookup (a value of LookupField, the primary key by
// default) names within req's queryset, read within ctx's transaction
// (see WithTx) and, when req.Action writes, locked FOR UPDATE on
// PostgreSQL. Like Django REST Framework's get_object, it answers
// live.ErrNotFound when there is no such row or PermitObject hides it
// from req ("retrieve"), and PermitObject's refusal of req.Action on it.
func (v *View[R]) Get(ctx context.Context, req *live.Request, lookup string) (*R, error) {
	m, err := v.model()
	if err != nil {
		return nil, err
	}
	value, err := model.ParseValue(m.Lookup, lookup)
	if err != nil {
		return nil, live.ErrNotFound // a value the column cannot hold names nothing
	}
	rows, err := v.find(ctx, req, m, selection{eq: m.Lookup, eqValue: value, limit: 1, lock: !req.Action.Read()})
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, live.ErrNotFound
	}
	r := &rows[0]
	if err := v.permit(ctx, req, live.ActionRetrieve, r); err != nil {
		var refusal *live.Error
		if errors.As(err, &refusal) {
			return nil, live.ErrNotFound // a refusal never tells that it exists
		}
		return nil, err
	}
	if !req.Action.Read() {
		if err := v.permit(ctx, req, req.Action, r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// permit runs PermitObject for action.
func (v *View[R]) permit(ctx context.Context, req *live.Request, action live.Action, r *R) error {
	if v.PermitObject == nil {
		return nil
	}
	if req.Action != action {
		c := *req
		c.Action = action
		req = &c
	}
	return v.PermitObject(ctx, req, r)
}

// Find returns the rows of req's queryset among pks (primary key values,
// as strings), unchecked by PermitObject: what a REST handler reads back
// after a write, to answer with what the queryset computes.
func (v *View[R]) Find(ctx context.Context, req *live.Request, pks ...string) ([]R, error) {
	m, err := v.model()
	if err != nil {
		return nil, err
	}
	return v.findPKs(ctx, req, m, selection{}, pks)
}

// Page returns the rows of req's queryset that req sees (PermitObject
// for "list"), in primary key order, from offset and at most limit of
// them, and how many it sees in all: a page of a REST list. Without
// PermitObject the database counts and cuts the page; with it, what req
// sees is known only row by row, so the rows are streamed and counted as
// they come (one query, memory for one page).
func (v *View[R]) Page(ctx context.Context, req *live.Request, offset, limit int) ([]R, int, error) {
	m, err := v.model()
	if err != nil {
		return nil, 0, err
	}
	if v.PermitObject == nil {
		var count int
		err := v.count(ctx, req, m, &count)
		if err != nil {
			return nil, 0, err
		}
		rows, err := v.find(ctx, req, m, selection{order: true, limit: limit, offset: offset})
		return rows, count, err
	}
	var rows []R
	count := 0
	err = v.each(ctx, req, m, selection{order: true}, func(r *R) error {
		if err := v.permit(ctx, req, live.ActionList, r); err != nil {
			var refusal *live.Error
			if errors.As(err, &refusal) {
				return nil
			}
			return err
		}
		count++
		if count > offset && len(rows) < limit {
			rows = append(rows, *r)
		}
		return nil
	})
	return rows, count, err
}

// count counts the rows of req's queryset.
func (v *View[R]) count(ctx context.Context, req *live.Request, m *model.Model, n *int) error {
	q := DB(ctx, v.DB)
	s, err := v.statement(ctx, req, m, q.Dialect(), selection{count: true})
	if err != nil {
		return err
	}
	rows, err := q.Query(ctx, s.String(), s.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		if err := rows.Scan(n); err != nil {
			return err
		}
	}
	return rows.Err()
}
