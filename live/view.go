package live

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// A View is what a model exposes to real-time subscribers: the counterpart
// of a django-rest-live view with RealtimeMixin. Package gormlive builds one
// from a GORM model; any other data source can implement it.
//
// A View is used by many connections at once and must be safe for
// concurrent use.
type View interface {
	// Spec describes the view: its label, the fields subscriptions may
	// name, and what of a request shapes its scopes. The router reads it
	// once, when the view is registered.
	Spec() Spec
	// Parse returns value, as a client sent it for field (PK, the lookup
	// field or one of the group-by fields), as that field's type holds it:
	// in canonical form (see Canonical), so that "01", 1 and "1" name the
	// same group of an integer field, and as JSON, the way a serialized
	// instance shows it. An error says why value is not one of the field's
	// values; the client is answered 400 with it.
	Parse(field, value string) (Value, error)
	// Subscribe checks that req may subscribe (the view's permissions at
	// subscribe time) and returns the subscription's Scope. An error that is
	// an *Error answers the client with its code; any other error answers
	// 500 without detail.
	Subscribe(ctx context.Context, req *Request) (Scope, error)
}

// Spec describes a View to the router.
type Spec struct {
	// Model is the label the view is registered under, "app.Model".
	Model string
	// Lookup is the field whose value a subscription to one instance
	// names: PK, or a unique field such as "slug". Defaults to PK.
	Lookup string
	// GroupBy lists the fields, other than the primary key, that a
	// subscription may group instances by. A foreign key is listed by its
	// column ("list_id").
	GroupBy []string
	// ListAll allows subscriptions to every instance the view's queryset
	// lets through, narrowed only by query parameters: django-rest-live
	// 0.4's "list" action without a group. Such a scope is checked on
	// every change of the model, so views opt in.
	ListAll bool
	// Args are the view keyword arguments the view reads, and QueryParams
	// the query parameters. Others a subscription carries are dropped
	// before the view sees its request: they can neither reach the
	// queryset nor make scopes that differ only by them.
	Args, QueryParams []string
	// Dependencies are the other models the view's scopes read (see
	// Dependency).
	Dependencies []Dependency
}

// A Value is a field's value in the two forms the hub needs.
type Value struct {
	// Canonical names topics and groups: equal values, equal strings.
	Canonical string
	// JSON is the value as instances show it: 14, or "a1b2".
	JSON json.RawMessage
}

// A Dependency says that a view's scopes read rows of another model: a
// task is visible when its list is. A change of such a row can move
// instances in or out of scopes without any change of their own rows, so
// when one arrives the hub reads the scopes it may concern again, whole
// (one Members query each), and sends the differences.
type Dependency struct {
	// Model is the other model's label, "todolist.List".
	Model string
	// Field is this model's column that holds the other row's primary key,
	// "list_id". A subscription grouped by Field is re-read only when its
	// own row of Model changes; any other one when any row of Model does.
	Field string
}

// A Scope is the set of instances one subscription sees: the view's
// queryset as the request sees it, narrowed by the group, the view keyword
// arguments and the query parameters.
//
// The hub shares one Scope between all the subscriptions of a model, group,
// arguments and query parameters whose Scopes have the same Key, so a change
// costs one Fetch however many subscribers see it.
type Scope interface {
	// Key tells apart the requests for which the scope's queryset,
	// permissions or serializer differ: the user's ID for a view that
	// depends on the user, "" for one that serves everyone alike.
	Key() string
	// Members returns the instances in the scope now. The hub keeps their
	// Data to send UPDATED only when what a subscriber sees changes, and
	// to answer subscriptions that ask for a snapshot.
	Members(ctx context.Context) ([]Instance, error)
	// Fetch returns, serialized, the instances among pks that are in the
	// scope now. An instance missing from the result is not in the scope.
	Fetch(ctx context.Context, pks []string) ([]Instance, error)
}

// A SharedScope can share its query with the scopes of other requests:
// those whose queries are the same, and only what their object permissions
// and serializer read (typically the user) differs. When a change concerns
// many such scopes, say one per user watching a public list, the hub reads
// the rows once with Rows and lets each scope Render what its request sees,
// instead of running one Fetch per scope.
type SharedScope interface {
	Scope
	// QueryKey tells apart the requests whose queries differ. Requests with
	// equal QueryKey may have different Keys.
	QueryKey() string
	// Rows reads the rows among pks that the scope's query lets through,
	// in a form only Render reads.
	Rows(ctx context.Context, pks []string) (any, error)
	// Render returns the instances among rows, read by Rows of a scope
	// with the same QueryKey, that the scope's request sees, serialized.
	Render(ctx context.Context, rows any) ([]Instance, error)
}

// An Instance is one row as a scope shows it.
type Instance struct {
	// PK is the primary key in canonical form.
	PK string
	// ID is the JSON object of the identifying fields (the pk as "id", and
	// the lookup field if it is not the pk): all a DELETED broadcast tells.
	ID json.RawMessage
	// Data is the serializer's JSON output for the scope's request.
	Data json.RawMessage
}

// An Action is what a request asks of a view, named as Django REST
// Framework names a viewset's actions.
type Action string

// The actions. Subscriptions are "retrieve" (one instance) or "list" (a
// group); REST requests may be any.
const (
	ActionList          Action = "list"
	ActionRetrieve      Action = "retrieve"
	ActionCreate        Action = "create"
	ActionUpdate        Action = "update"
	ActionPartialUpdate Action = "partial_update"
	ActionDestroy       Action = "destroy"
)

// Read reports whether the action only reads.
func (a Action) Read() bool { return a == ActionList || a == ActionRetrieve }

// Request is a subscription's request as views see it: the WebSocket
// upgrade request (with the application's middleware applied: its cookies,
// headers and context values), the user the router authenticated, and what
// the subscription asked for. Views must not modify it.
type Request struct {
	// HTTP is the upgrade request. Its method is GET; its context holds
	// the values the application's middleware set, and ends with the
	// connection.
	HTTP *http.Request
	// User is the Identity's User; nil when anonymous.
	User any
	// UserID identifies User; "" when anonymous.
	UserID string
	// Action is ActionRetrieve for a subscription to one instance and
	// ActionList for a group.
	Action Action
	// GroupBy is the field the subscription groups by: PK for a
	// retrieve, "" for a list of the whole queryset.
	GroupBy string
	// Value is the group's value (the lookup field's for a retrieve) in
	// canonical form.
	Value string
	// Args are the view keyword arguments: what the URL path would carry.
	// Only those the view's Spec names are present.
	Args map[string]string
	// Query holds the query parameters: what filters read from "?a=b".
	// Only those the view's Spec names are present.
	Query url.Values
}

// Anonymous reports whether no user is logged in.
func (r *Request) Anonymous() bool { return r.User == nil }
