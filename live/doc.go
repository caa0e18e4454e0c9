// Package live adds real-time subscriptions over WebSockets to REST views.
//
// A Router holds one View per model label ("todolist.Task") and serves the
// WebSocket endpoint. Clients subscribe to one instance or a group of
// instances with the protocol of django-rest-live; every committed change that
// a capture publishes to the Layer reaches the Router's hub, which checks each
// subscription's scope with one query per distinct scope, serializes once per
// distinct output, and sends CREATED, UPDATED or DELETED frames.
//
//	write -> capture -> Layer -> hub -> connection
//
// The package imports no database, ORM or broker: views (see package
// gormlive), captures (package capture) and layers (packages under layer/)
// plug in through the small interfaces defined here.
//
// The examples are the best way to understand how to use the library.
package live
