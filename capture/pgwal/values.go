package pgwal

import (
	"encoding/json"
	"strings"

	"github.com/jackc/pglogrepl"

	"github.com/restlive/restlive/capture/internal/outbox"
)

// A relation is a table as the stream describes it.
type relation struct {
	name string // schema.table
	cols []column
	// full: the old tuple of an update or delete holds every column
	// (REPLICA IDENTITY FULL); else only the identity's key columns.
	full bool
}

type column struct {
	name string
	oid  uint32
	key  bool // part of the replica identity
}

func newRelation(m *pglogrepl.RelationMessage) *relation {
	r := &relation{name: m.Namespace + "." + m.RelationName, full: m.ReplicaIdentity == 'f'}
	for _, c := range m.Columns {
		r.cols = append(r.cols, column{name: c.Name, oid: c.DataType, key: c.Flags&1 != 0})
	}
	return r
}

// A tuple is a row of a change: the new one, or the old one, whose
// columns outside the replica identity are absent (sent as NULL) unless
// it is full.
type tuple struct {
	rel  *relation
	data *pglogrepl.TupleData
	old  bool
	full bool
	// or is where a value the tuple lacks may be: the old tuple, for
	// a TOASTed value an update left unchanged, which the stream leaves
	// out of the new one.
	or *tuple
}

// get returns column name's value as JSON, or known false when the
// tuple does not carry it: a column outside an old tuple's key, or a
// TOASTed value an update left unchanged.
func (t tuple) get(name string) (v json.RawMessage, known bool) {
	if v, known = t.own(name); !known && t.or != nil {
		return t.or.get(name)
	}
	return v, known
}

func (t tuple) own(name string) (v json.RawMessage, known bool) {
	if t.data == nil {
		return nil, false
	}
	for i, c := range t.rel.cols {
		if c.name != name || i >= len(t.data.Columns) {
			continue
		}
		if t.old && !t.full && !c.key {
			return nil, false
		}
		col := t.data.Columns[i]
		switch col.DataType {
		case pglogrepl.TupleDataTypeNull:
			return json.RawMessage("null"), true
		case pglogrepl.TupleDataTypeText:
			return jsonValue(c.oid, string(col.Data)), true
		}
		return nil, false
	}
	return nil, false
}

// PostgreSQL's type oids that the triggers' jsonb writes as other than a
// string.
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidOID         = 26
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidNumeric     = 1700
)

// jsonValue writes a column's text as jsonb_build_object would write
// the value, so that a change reads the same whichever way it was
// captured (TestSameAsTriggers): booleans and numbers as themselves,
// timestamps in ISO 8601 (the stream writes them as DateStyle ISO does,
// with a space before the time and an offset of hours alone), the rest
// as strings. The stream writes timestamptz in UTC; jsonb in the writing
// session's time zone.
func jsonValue(oid uint32, text string) json.RawMessage {
	switch oid {
	case oidBool:
		if text == "t" {
			return json.RawMessage("true")
		}
		return json.RawMessage("false")
	case oidInt2, oidInt4, oidInt8, oidOID, oidFloat4, oidFloat8, oidNumeric:
		if isJSONNumber(text) {
			return json.RawMessage(text)
		}
	case oidTimestamp, oidTimestampTZ:
		if date, clock, ok := strings.Cut(text, " "); ok && !strings.HasSuffix(text, " BC") {
			text = date + "T" + isoOffset(clock, oid == oidTimestampTZ)
		}
	}
	b, _ := json.Marshal(text)
	return b
}

// isoOffset writes a time's offset from UTC, "+02" in the stream, as
// "+02:00".
func isoOffset(clock string, zoned bool) string {
	if !zoned {
		return clock
	}
	i := strings.LastIndexAny(clock, "+-")
	if i < 0 || len(clock)-i != 3 {
		return clock
	}
	return clock + ":00"
}

// isJSONNumber: NaN and Infinity are not, and jsonb writes them as
// strings.
func isJSONNumber(s string) bool {
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	return json.Valid([]byte(s))
}

// fieldsJSON is the JSON object of fields in t, or ok false if t lacks
// one of them.
func fieldsJSON(t tuple, fields []string) (b []byte, ok bool) {
	b = append(b, '{')
	for i, f := range fields {
		v, known := t.get(f)
		if !known {
			return nil, false
		}
		if i > 0 {
			b = append(b, ',')
		}
		name, _ := json.Marshal(f)
		b = append(append(append(b, name...), ':'), v...)
	}
	return append(b, '}'), true
}

// pkText is the row's primary key as text, as the triggers' pk::text.
func pkText(t tuple, pk string) (string, bool) {
	v, known := t.get(pk)
	if !known || string(v) == "null" {
		return "", false
	}
	if v[0] != '"' {
		return string(v), true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// rows turns a change of a captured table into the outbox rows the
// triggers would have written: one, or for an update of the primary key
// a delete and an insert. problem is not empty when the change lacks
// values capture needs (the replica identity does not give them): the
// row is then published with them unknown.
func (c *tableConf) rows(op byte, old, new tuple) (rows []outbox.Row, problem string) {
	row := func(op, pk string, oldF, newF []byte) outbox.Row {
		return outbox.Row{Model: c.model, PK: pk, Op: op, Old: oldF, New: newF}
	}
	switch op {
	case 'I':
		pk, ok := pkText(new, c.pk)
		newF, okF := fieldsJSON(new, c.fields)
		if !ok {
			return nil, "an insert without its primary key"
		}
		if !okF {
			return []outbox.Row{row("U", pk, nil, nil)}, "an insert without its fields"
		}
		return []outbox.Row{row("I", pk, nil, newF)}, ""
	case 'D':
		pk, ok := pkText(old, c.pk)
		if !ok {
			return nil, "a delete without the old primary key"
		}
		oldF, okF := fieldsJSON(old, c.fields)
		if !okF {
			return []outbox.Row{row("D", pk, nil, nil)}, "a delete without the old values of its fields"
		}
		return []outbox.Row{row("D", pk, oldF, nil)}, ""
	}
	return c.updateRows(old, new)
}

// updateRows: see rows. Without an old tuple, none of the identity's
// columns changed, so their old values are the new ones.
func (c *tableConf) updateRows(old, new tuple) ([]outbox.Row, string) {
	if old.data == nil {
		old = tuple{rel: new.rel, data: new.data, old: true}
	}
	new.or = &old
	pk, ok := pkText(new, c.pk)
	if !ok {
		return nil, "an update without its primary key"
	}
	problem := ""
	oldPK, ok := pkText(old, c.pk)
	if !ok {
		oldPK, problem = pk, "an update without the old primary key"
	}
	oldF, okOld := fieldsJSON(old, c.fields)
	newF, okNew := fieldsJSON(new, c.fields)
	if !okOld {
		problem = "an update without the old values of its fields"
	}
	if !okNew {
		oldF, newF, problem = nil, nil, "an update without the new values of its fields"
	}
	if oldPK != pk {
		return []outbox.Row{
			{Model: c.model, PK: oldPK, Op: "D", Old: oldF},
			{Model: c.model, PK: pk, Op: "I", New: newF},
		}, problem
	}
	if newF == nil {
		return []outbox.Row{{Model: c.model, PK: pk, Op: "U"}}, problem
	}
	return []outbox.Row{{Model: c.model, PK: pk, Op: "U", Old: oldF, New: newF}}, problem
}
