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
	// nil for a delete. A capture that cannot know the old values of an
	// update or a delete leaves Old nil: the change then also goes to the
	// model's AnyGroup topic, which every process holding a scope of the
	// model joins, so that the scopes that held the row learn it left.
	Old, New map[string]string
}

// AnyGroup is the Field of the topic of a model that changes whose old
// group values are unknown are also published to (see Change.Old).
const AnyGroup = "*"

// Topics are the topics a change is published to: its model's topic, its
// row's pk topic and, for each group-by field, the topics of its old and new
// values; the model's AnyGroup topic too when its old values are unknown.
func (c Change) Topics() []Topic {
	return c.AppendTopics(make([]Topic, 0, 2+len(c.Old)+len(c.New)))
}

// AppendTopics appends the change's topics (see Topics) to dst.
func (c Change) AppendTopics(dst []Topic) []Topic {
	dst = append(dst, Topic{Model: c.Model}, Topic{Model: c.Model, Field: PK, Value: c.PK})
	if c.Old == nil && c.Op != OpInsert {
		dst = append(dst, Topic{Model: c.Model, Field: AnyGroup})
	}
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

// sessionModel is the label of the changes that end a user's sessions
// (Router.Disconnect): their PK is the user's ID, and every process joins
// the pk topic of each user it has a connection of.
const sessionModel = reservedApp + ".session"

func sessionEnd(userID string) Change {
	return Change{Model: sessionModel, PK: userID, Op: OpDelete, Old: map[string]string{}}
}

func sessionTopic(userID string) Topic {
	return Topic{Model: sessionModel, Field: PK, Value: userID}
}
