package live

import (
	"context"
	"errors"
)

// A History tells which changes were published after a position of the
// change sequence, so that a subscription can resume from the offset a
// client last applied instead of starting from a full snapshot (see
// PROTOCOL.md, "Snapshot and resume"). capture.History implements it over
// the outbox, so an offset issued by one process resumes on any process
// that shares the database.
//
// Implementations must be safe for concurrent use.
type History interface {
	// Head returns where the sequence stands: its epoch and the Seq of the
	// last change published, which, like every change before it, has
	// committed.
	Head(ctx context.Context) (Position, error)
	// Since returns the changes of models published after since, in Seq
	// order. It may return more: changes at or before since, and changes
	// committed but not yet published (their Seq may then be zero), since
	// a resumed client is sent each changed instance's current state, and
	// state sent twice is harmless; it never leaves one out.
	//
	// It returns an error wrapping ErrHistoryGone when it cannot answer
	// for since: another epoch, older than what it keeps, or ahead of
	// Head; and one wrapping ErrHistoryTooLong when answering would read
	// more than about limit changes, when a snapshot is the cheaper answer.
	Since(ctx context.Context, since Position, models []string, limit int) ([]Change, error)
}

// A Position is a point of the change sequence: every change with a Seq
// up to Seq, in the sequence named by Epoch.
type Position struct {
	// Epoch names the sequence: a capture's outbox installed anew starts
	// another, whose Seq values mean nothing in the old one. It is 1 to 32
	// characters of [0-9a-z]; empty when there is no History.
	Epoch string
	Seq   uint64
}

// Errors of History.Since.
var (
	ErrHistoryGone    = errors.New("live: history: position no longer known")
	ErrHistoryTooLong = errors.New("live: history: too many changes since the position")
)
