package outbox

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	"github.com/restlive/restlive/live"
)

// Changes converts outbox rows. A row with an unknown op or values that
// cannot be decoded (written by hand, not by a trigger) is still
// published, as an update with Old and New unknown, which makes the hub
// re-check every scope holding the row; it is logged to log unless nil.
func Changes(log *slog.Logger, rows []Row) []live.Change {
	rows = mergeReplaced(rows)
	out := make([]live.Change, len(rows))
	for i, w := range rows {
		c := live.Change{Seq: w.Seq, Model: w.Model, PK: w.PK, Op: live.OpUpdate}
		var err error
		switch w.Op {
		case "I", "U", "D":
			c.Op = live.Op(w.Op[0])
			if c.Old, err = decodeFields(w.Old); err == nil {
				c.New, err = decodeFields(w.New)
			}
		default:
			err = fmt.Errorf("unknown op %q", w.Op)
		}
		if err != nil {
			if log != nil {
				log.Error("capture: bad outbox row", "seq", w.Seq, "err", err)
			}
			c.Op, c.Old, c.New = live.OpUpdate, nil, nil
		}
		out[i] = c
	}
	return out
}

// mergeReplaced resolves the rows of op R, which SQLite's triggers
// record before an insert over an existing row (see capture/sqlite.go),
// with its old values. Followed by the insert of the same row, as after
// INSERT OR REPLACE, the two are one update from the old values to the
// new. Followed by its update (ON CONFLICT DO UPDATE), the update says
// it all. Alone, the insert did not happen (OR IGNORE, ON CONFLICT DO
// NOTHING): an update that changed nothing, which is harmless to
// publish. The change keeps the seq of the last row it stands for.
func mergeReplaced(rows []Row) []Row {
	if !slices.ContainsFunc(rows, func(w Row) bool { return w.Op == "R" }) {
		return rows
	}
	out := make([]Row, 0, len(rows))
	for i := 0; i < len(rows); i++ {
		w := rows[i]
		if w.Op != "R" {
			out = append(out, w)
			continue
		}
		var next Row
		if i+1 < len(rows) {
			next = rows[i+1]
		}
		switch {
		case next.Model != w.Model || next.PK != w.PK:
			w.Op, w.New = "U", w.Old
		case next.Op == "I":
			w.Seq, w.Op, w.New = next.Seq, "U", next.New
			i++
		case next.Op == "U":
			continue
		default:
			w.Op, w.New = "U", w.Old
		}
		out = append(out, w)
	}
	return out
}

// decodeFields turns a trigger's JSON object into canonical strings; a
// NULL column is left out, since no group has a null value.
func decodeFields(b []byte) (map[string]string, error) {
	if b == nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v == nil {
			continue
		}
		s, err := live.Canonical(v)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}
