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
// Every hook takes the request's context and the request, and returns an
// error: an *live.Error answers the client with its code (live.ErrForbidden,
// live.ErrNotFound, or 400 for a bad filter value), FieldErrors answer 400
// with them, and any other error is a failure, answered 500 over REST and
// with a resync notice to subscribers. req.Action says what the request
// does. A View must not be changed once in use; its methods may be called
// concurrently.
type View[M any] struct {
	// Label is the model's label, "app.Model". Required.
	Label string
	// DB is the database the model lives in. Required.
	DB *gorm.DB
	// Query narrows the model's table to what req may see, the queryset: it
	// receives db scoped to the model and bound to ctx (inside the write's
	// transaction, for a REST write) and may add Where, Joins, or Select
	// (for computed fields), reading req.User, req.Args and req.Query (the
	// filters). Defaults to every row.
	Query func(ctx context.Context, db *gorm.DB, req *live.Request) (*gorm.DB, error)
	// Permit decides whether req may perform req.Action at all, before any
	// instance is read; return live.ErrForbidden to refuse. Defaults to
	// allowing every action.
	Permit func(ctx context.Context, req *live.Request) error
	// PermitObject decides whether req may perform req.Action on m, an
	// instance Query let through: nil allows, an *live.Error refuses. An
	// instance refused for "retrieve" or "list" is invisible to req: left
	// out of lists and subscriptions, answered 404 alone. Defaults to
	// allowing.
	PermitObject func(ctx context.Context, req *live.Request, m *M) error
	// Serialize returns the JSON-encodable representation of m for req.
	// Defaults to m itself.
	Serialize func(ctx context.Context, req *live.Request, m *M) (any, error)
	// LookupField is the column that names one instance. Defaults to the
	// primary key.
	LookupField string
	// GroupFields are the columns subscribers may group by ("list_id").
	GroupFields []string
	// QueryParams are the query parameters Query reads (the filters, such
	// as "search"), and Args the view keyword arguments. Others a request
	// carries never reach Query, and subscriptions that differ only by
	// them share one scope. Default to none.
	QueryParams, Args []string
	// ListAll lets clients subscribe to the whole queryset, narrowed only
	// by QueryParams: django-rest-live 0.4's "list" without a group. Such
	// a scope is checked on every change of the model. Defaults to false:
	// subscriptions name an instance or a group.
	ListAll bool
	// Dependencies are the other models Query reads: a task visible when
	// its list is public depends on {Model: "todolist.List", Field:
	// "list_id"}. When a row of one of them changes, the scopes it may
	// concern are read again, so subscribers learn of instances that
	// entered or left them. Defaults to none.
	Dependencies []live.Dependency
	// Vary returns what Query, Permit, PermitObject and Serialize read of
	// the request besides Args and QueryParams: subscriptions whose Vary,
	// group, Args and QueryParams are equal share one query and one
	// serialization per change. It is a key, not a check: it must not do
	// I/O. Defaults to req.UserID; set it when the view reads headers,
	// cookies or the session.
	Vary func(req *live.Request) string
	// QueryVary returns what Query reads of the request besides Args and
	// QueryParams, when that is less than what Vary names: "" for a Query
	// that reads nothing of the user, where PermitObject decides who sees
	// what. Subscriptions whose QueryVary, group, Args and QueryParams are
	// equal then share one query per change, and PermitObject and
	// Serialize run on its rows for each. Defaults to nil: each Vary runs
	// its own query.
	QueryVary func(req *live.Request) string

	// The fields below serve package rest; the real-time side never reads
	// them.

	// Writable are the fields a client may write ("create", "update",
	// "partial_update"), by the JSON names it sends them under. The body's
	// other fields are ignored, as Django REST Framework ignores read-only
	// fields, so a client cannot set an owner or move an instance by
	// naming a column nobody listed. A view that serves writes must name
	// them here or decode bodies itself (Decode); one that does neither
	// must be ReadOnly, or package rest refuses it at start-up.
	Writable []string
	// ReadOnly serves "list" and "retrieve" only: write requests are
	// answered 405.
	ReadOnly bool
	// Decode reads the JSON body of a write request into m in place of
	// Writable: a zero M for "create"; the stored instance for "update"
	// and "partial_update", so that the fields the body leaves out keep
	// their values. Whatever Decode does, an update cannot change the
	// primary key. Defaults to DecodeWritable with Writable.
	Decode func(ctx context.Context, req *live.Request, body []byte, m *M) error
	// Validate checks m once decoded, before it is saved, and sets the
	// fields the server decides rather than the client: the owner from
	// req.User on "create", a list the user must be allowed to write to.
	// It runs inside the write's transaction: query through DB(ctx, db) to
	// read in it. Defaults to accepting m as decoded.
	Validate func(ctx context.Context, req *live.Request, m *M) error
	// PageSize is how many instances a REST list answers by default, and
	// MaxPageSize the most a client may ask for with ?limit=. Default to
	// 100 and 1,000.
	PageSize, MaxPageSize int
}

// txKey is the context key of a REST write's transaction.
type txKey struct{}

// WithTx returns ctx carrying tx, the transaction of the request ctx
// belongs to, for DB to find. Package rest sets it around each write.
func WithTx(ctx context.Context, tx *gorm.DB) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// DB returns the transaction ctx carries (see WithTx), bound to ctx, or
// else db bound to ctx: hooks that query the database read what the write
// under way sees, and within its transaction.
func DB(ctx context.Context, db *gorm.DB) *gorm.DB {
	if tx, ok := ctx.Value(txKey{}).(*gorm.DB); ok {
		return tx.WithContext(ctx)
	}
	return db.WithContext(ctx)
}
