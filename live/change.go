package live

import "context"

// Op is the kind of write that produced a Change.
type Op byte

// The kinds of write.
const (
	OpInsert Op = 'I'
	OpUpdate Op = 'U'
	OpDelete Op = 'D'
)

func (o Op) String() string {
	switch o {
	case OpInsert:
		return "insert"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return "op(" + string(rune(o)) + ")"
}

// A Change is one committed write to one row of a model's table, as a
// capture reports it.
type Change struct {
	// Seq orders changes: it is the outbox sequence number, increasing in
	// commit order. Zero when the capture has none.
	Seq uint64
	// Model is the label the row's view is registered under.
	Model string
	// PK is the row's primary key in canonical form (see Canonical).
	PK string
	Op Op
	// Old and New hold the values of the view's group-by fields before and
	// after the write, in canonical form. Old is nil for an insert and New is
	// nil for a delete. A capture that cannot know the old values leaves Old
	// nil: the hub then still re-checks every scope that holds the row.
	Old, New map[string]string
}

// Topics are the topics a change is published to: its model's topic, its
// row's pk topic and, for each group-by field, the topics of its old and new
// values.
func (c Change) Topics() []Topic {
	return c.AppendTopics(make([]Topic, 0, 2+len(c.Old)+len(c.New)))
}

// AppendTopics appends the change's topics (see Topics) to dst.
func (c Change) AppendTopics(dst []Topic) []Topic {
	dst = append(dst, Topic{Model: c.Model}, Topic{Model: c.Model, Field: PK, Value: c.PK})
	for field, value := range c.Old {
		dst = append(dst, Topic{Model: c.Model, Field: field, Value: value})
	}
	for field, value := range c.New {
		if old, ok := c.Old[field]; ok && old == value {
			continue // unchanged: already there
		}
		dst = append(dst, Topic{Model: c.Model, Field: field, Value: value})
	}
	return dst
}

// PK is the group-by field that means "this one instance".
const PK = "pk"

// A Topic names the changes a subscription can be interested in: those of a
// model whose field has a value. Field is PK for single instances; Field
// and Value are empty for every change of the model.
type Topic struct {
	Model, Field, Value string
}

func (t Topic) String() string { return t.Model + "/" + t.Field + "/" + t.Value }

// A Publisher accepts committed changes, in commit order. Captures publish
// to a Layer; a Layer is a Publisher.
type Publisher interface {
	Publish(ctx context.Context, changes []Change) error
}
