package sqlview

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/restlive/restlive/internal/model"
	"github.com/restlive/restlive/live"
)

// The real-time side of View: what a live.Router and its hub call.

// Subscribe checks req with Permit and returns the scope of the instance
// (req.GroupBy is live.PK and req.Value the lookup field's value), of the
// group (req.GroupBy one of GroupFields), or of every row Query lets
// through (req.GroupBy empty). It reads no row; it calls Query once so
// that a bad filter or argument is refused now with Query's error rather
// than on the first change.
func (v *View[R]) Subscribe(ctx context.Context, req *live.Request) (live.Scope, error) {
	m, err := v.model()
	if err != nil {
		return nil, err
	}
	if err := v.Allow(ctx, req); err != nil {
		return nil, err
	}
	switch {
	case req.GroupBy == "" && !v.ListAll:
		return nil, live.Errorf(400, "%s can only be subscribed to by group", v.Label)
	case req.GroupBy != "" && req.GroupBy != live.PK && !slices.Contains(v.GroupFields, req.GroupBy):
		return nil, live.Errorf(400, "%q is not a field %s can be grouped by", req.GroupBy, v.Label)
	}
	s := &scope[R]{view: v, meta: m, req: req}
	if req.GroupBy != "" {
		// The column named is the definition's, found by the client's
		// name: a client's string never reaches a statement's text.
		name := req.GroupBy
		if name == live.PK {
			name = m.LookupName
		}
		if s.sel.eq, err = m.Field(name); err != nil {
			return nil, live.Errorf(400, "%s: %v", v.Label, err)
		}
		if s.sel.eqValue, err = model.ParseValue(s.sel.eq, req.Value); err != nil {
			return nil, live.Errorf(400, "%s: %q is not a valid %s", s.sel.eq.Column, req.Value, s.sel.eq.Type)
		}
		if s.sel.eq == m.PK {
			// Fetch skips the query when none of the pks is this one.
			s.pkOnly = true
			s.canonPK, _ = live.Canonical(s.sel.eqValue)
		}
	}
	if v.Query != nil {
		if err := v.Query(ctx, req, &Filter{}); err != nil {
			return nil, err
		}
	}
	s.key = req.UserID
	if v.Vary != nil {
		s.key = v.Vary(req)
	}
	if v.QueryVary != nil {
		return &sharedScope[R]{scope: s, queryKey: v.QueryVary(req)}, nil
	}
	return s, nil
}

// Allow runs Permit for req: nil when it has none. REST handlers call it
// first, as Subscribe does.
func (v *View[R]) Allow(ctx context.Context, req *live.Request) error {
	if v.Permit == nil {
		return nil
	}
	return v.Permit(ctx, req)
}

// scope is the live.Scope of one View: Query narrowed by one column's
// value (or not narrowed), as its first subscriber's request sees it. Its
// methods may be called concurrently; they only read it.
type scope[R any] struct {
	view    *View[R]
	meta    *model.Model
	req     *live.Request
	key     string
	sel     selection
	pkOnly  bool   // sel.eq is the primary key
	canonPK string // its value in canonical form, when pkOnly
}

func (s *scope[R]) Key() string { return s.key }

// Members returns, serialized, the rows Query, the scope's column and
// PermitObject let through now: one query.
func (s *scope[R]) Members(ctx context.Context) ([]live.Instance, error) {
	rows, err := s.view.find(ctx, s.req, s.meta, s.sel)
	if err != nil {
		return nil, err
	}
	return s.render(ctx, rows)
}

// Fetch returns, serialized, the rows among pks that Query, the scope's
// column and PermitObject let through now: one query (on SQLite, one per
// 900 pks).
func (s *scope[R]) Fetch(ctx context.Context, pks []string) ([]live.Instance, error) {
	rows, err := s.rows(ctx, pks)
	if err != nil {
		return nil, err
	}
	return s.render(ctx, rows)
}

// rows returns the rows among pks that Query and the scope's column let
// through now.
func (s *scope[R]) rows(ctx context.Context, pks []string) ([]R, error) {
	if s.pkOnly {
		// A scope of one instance cannot hold any other: spare the query.
		if !slices.Contains(pks, s.canonPK) {
			return nil, nil
		}
		pks = []string{s.canonPK}
	}
	return s.view.findPKs(ctx, s.req, s.meta, s.sel, pks)
}

// render returns, serialized, the rows PermitObject lets the scope's
// request see.
func (s *scope[R]) render(ctx context.Context, rows []R) ([]live.Instance, error) {
	out := make([]live.Instance, 0, len(rows))
	for i := range rows {
		r := &rows[i]
		if visible, err := s.view.visible(ctx, s.req, r); err != nil {
			return nil, err
		} else if !visible {
			continue
		}
		pk, id, err := s.meta.Identify(ctx, reflect.ValueOf(r))
		if err != nil {
			return nil, fmt.Errorf("sqlview: %s: %w", s.view.Label, err)
		}
		data, err := s.view.Encode(ctx, s.req, r)
		if err != nil {
			return nil, err
		}
		out = append(out, live.Instance{PK: pk, ID: id, Data: data})
	}
	return out, nil
}

// visible reports whether PermitObject lets req see r: a refusal (an
// *live.Error) hides it, any other error is a failure.
func (v *View[R]) visible(ctx context.Context, req *live.Request, r *R) (bool, error) {
	if v.PermitObject == nil {
		return true, nil
	}
	err := v.PermitObject(ctx, req, r)
	var refusal *live.Error
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &refusal):
		return false, nil
	}
	return false, fmt.Errorf("sqlview: %s: PermitObject: %w", v.Label, err)
}

// sharedScope is a scope whose query other requests' scopes share (see
// View.QueryVary and live.SharedScope).
type sharedScope[R any] struct {
	*scope[R]
	queryKey string
}

func (s *sharedScope[R]) QueryKey() string { return s.queryKey }

// Rows runs the scope's query for pks, unserialized: one query, like
// Fetch.
func (s *sharedScope[R]) Rows(ctx context.Context, pks []string) (any, error) {
	return s.rows(ctx, pks)
}

// Render applies the scope's request's PermitObject and Serialize to rows
// from the Rows of a scope with the same QueryKey.
func (s *sharedScope[R]) Render(ctx context.Context, rows any) ([]live.Instance, error) {
	r, ok := rows.([]R)
	if !ok {
		return nil, fmt.Errorf("sqlview: %s: Render of %T, want the []%T of Rows", s.view.Label, rows, *new(R))
	}
	return s.render(ctx, r)
}
