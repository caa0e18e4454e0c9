// Package gormlive serves GORM models through live.Router and package rest
// from one definition, so real-time subscribers and REST clients always
// agree on who sees what and what it looks like.
package gormlive

import (
	"context"

	"gorm.io/gorm"

	"github.com/restlive/restlive/live"
)

// View defines how the GORM model M is served: the counterpart of a Django
// REST Framework view with django-rest-live's RealtimeMixin. The same View
// is registered with a live.Router (it implements live.View) and mounted
// as REST handlers by package rest.
//
// Every func field receives the request it serves; req.Action is "list",
// "retrieve", "create", "update", "partial_update" or "destroy". A View must
// not be changed once in use; its methods may be called concurrently.
type View[M any] struct {
	// Label is the model's label, "app.Model". Required.
	Label string
	// DB is the database the model lives in. Required.
	DB *gorm.DB
	// Query narrows the model's table to what req may see, the queryset: it
	// receives db scoped to the model and may add Where, Joins, or Select
	// (for computed fields), reading req.User, req.Args and req.Query (the
	// filters). An *live.Error refuses the request with its code, such as
	// 400 for a bad filter value. Defaults to every row.
	Query func(db *gorm.DB, req *live.Request) (*gorm.DB, error)
	// Permit decides whether req may perform req.Action at all, before any
	// instance is read; return live.ErrForbidden to refuse. Defaults to
	// allowing every action.
	Permit func(ctx context.Context, req *live.Request) error
	// PermitObject decides whether req may perform req.Action on m, an
	// instance Query let through. An instance refused for "retrieve" or
	// "list" is invisible to req. Defaults to allowing.
	PermitObject func(req *live.Request, m *M) bool
	// Serialize returns the JSON-encodable representation of m for req.
	// Defaults to m itself.
	Serialize func(req *live.Request, m *M) (any, error)
	// LookupField is the column that names one instance. Defaults to the
	// primary key.
	LookupField string
	// GroupFields are the columns subscribers may group by ("list_id").
	GroupFields []string
	// Dependencies are the other models Query reads: a task visible when
	// its list is public depends on {Model: "todolist.List", Field:
	// "list_id"}. When a row of one of them changes, the scopes it may
	// concern are read again, so subscribers learn of instances that
	// entered or left them. Defaults to none.
	Dependencies []live.Dependency
	// Vary returns what Query, Permit, PermitObject and Serialize read of
	// the request besides Args and Query: subscriptions whose Vary, group,
	// Args and Query are equal share one query and one serialization per
	// change. Defaults to req.UserID; set it when the view reads headers,
	// cookies or the session.
	Vary func(req *live.Request) string
	// QueryVary returns what Query reads of the request besides Args and
	// Query, when that is less than what Vary names: "" for a Query that
	// reads nothing of the user, where PermitObject decides who sees what.
	// Subscriptions whose QueryVary, group, Args and Query are equal then
	// share one query per change, and PermitObject and Serialize run on its
	// rows for each. Defaults to nil: each Vary runs its own query.
	QueryVary func(req *live.Request) string

	// The fields below serve the write actions of package rest ("create",
	// "update", "partial_update"); the real-time side never reads them.

	// Decode reads the JSON body of a write request into m: a zero M for
	// "create"; the stored instance for "update" and "partial_update", so
	// that the fields the body leaves out keep their values (an "update"
	// that must name every field checks that here). Return FieldErrors to
	// answer 400 with them, or an *live.Error to answer its code. Whatever
	// Decode does, an update cannot change the primary key. Defaults to
	// DecodeJSON(body, m), with the primary key ignored on "create"; every
	// other field of M is then writable by the client, so a model with
	// fields only the server may set (an owner) needs its own Decode.
	Decode func(req *live.Request, body []byte, m *M) error
	// Validate checks m once Decode has filled it, before it is saved, and
	// sets the fields the server decides rather than the client: the owner
	// from req.User on "create", a list the user must be allowed to write
	// to. It may query the database with ctx. Return FieldErrors to answer
	// 400 with them, or an *live.Error (live.ErrForbidden) to answer its
	// code. Defaults to accepting m as decoded.
	Validate func(ctx context.Context, req *live.Request, m *M) error
}
