package pgwal

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The stream is pgoutput's protocol, version 1: each transaction that
// touched a table of the publication, sent whole once it has committed,
// in the order of the commits (Begin, the changes, Commit), with a
// Relation message before a table's first change and after the table
// changes; and keepalives, which say how far the server has read its log.

// An event is what the receiving goroutine hands the session: a message
// of the stream, a keepalive, or the error that ended the stream.
type event struct {
	msg       pglogrepl.Message
	keepalive *pglogrepl.PrimaryKeepaliveMessage
	err       error
}

// fencePrefix is the prefix of the logical decoding messages History
// writes to make the reader log what came before (see history.go).
const fencePrefix = "restlive.fence"

// receiving starts the goroutine that receives the stream, which
// Close stops. Receiving apart lets the session wait for the stream and
// for a nudge or a timer at once, and costs one blocking read per
// message rather than a deadline each.
func (s *session) receiving(ctx context.Context) {
	ctx, s.stopReceive = context.WithCancel(context.WithoutCancel(ctx))
	s.events = make(chan event, 1024)
	s.received = make(chan struct{})
	go func() {
		defer close(s.received)
		defer close(s.events)
		for {
			msg, err := s.repl.ReceiveMessage(ctx)
			var ev *event
			if err == nil {
				ev, err = parse(msg)
			}
			if err != nil {
				if ctx.Err() == nil {
					ev = &event{err: fmt.Errorf("capture: stream: %w", err)}
				}
			}
			if ev != nil {
				select {
				case s.events <- *ev:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
}

// parse reads a message of the stream; nil if it says nothing the
// session needs. What it returns owns its memory: the connection reuses
// the message's.
func parse(msg pgproto3.BackendMessage) (*event, error) {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return nil, nil
		}
		switch m.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return nil, err
			}
			return &event{keepalive: &k}, nil
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil || len(x.WALData) == 0 {
				return nil, err
			}
			lm, err := pglogrepl.Parse(x.WALData)
			if err != nil {
				return nil, fmt.Errorf("decode %q message: %w", x.WALData[0], err)
			}
			if dm, ok := lm.(*pglogrepl.LogicalDecodingMessage); ok {
				dm.Content = bytes.Clone(dm.Content)
			}
			return &event{msg: lm}, nil
		}
	case *pgproto3.ErrorResponse:
		return nil, pgconn.ErrorResponseToPgError(m)
	case *pgproto3.CopyDone:
		return nil, errors.New("the server ended the stream")
	}
	return nil, nil
}

// handle takes an event in; ok false means the stream ended.
func (s *session) handle(ev event, ok bool) {
	switch {
	case !ok:
		if s.err == nil {
			s.err = errStreamEnded
		}
	case ev.err != nil:
		s.err = ev.err
	case ev.keepalive != nil:
		if ev.keepalive.ReplyRequested {
			s.replyDue = true
		}
		// Between transactions, every one that committed before the
		// server's position has been sent: once the changes received
		// are published, the slot may confirm it.
		if s.txn == nil && ev.keepalive.ServerWALEnd > s.pos {
			s.pos = ev.keepalive.ServerWALEnd
			s.marks = append(s.marks, mark{seq: s.assigned(), lsn: s.pos})
		}
	default:
		s.apply(ev.msg)
	}
}

// assigned is the seq the last change received gets.
func (s *session) assigned() uint64 { return uint64(s.cur.seq) + uint64(len(s.batch)) }

func (s *session) apply(msg pglogrepl.Message) {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		s.rels[m.RelationID] = newRelation(m)
	case *pglogrepl.BeginMessage:
		s.txn = &txn{lsn: m.FinalLSN}
	case *pglogrepl.InsertMessage:
		s.change(m.RelationID, 'I', nil, 0, m.Tuple)
	case *pglogrepl.UpdateMessage:
		s.change(m.RelationID, 'U', m.OldTuple, m.OldTupleType, m.NewTuple)
	case *pglogrepl.DeleteMessage:
		s.change(m.RelationID, 'D', m.OldTuple, m.OldTupleType, nil)
	case *pglogrepl.LogicalDecodingMessage:
		if s.txn != nil && m.Prefix == fencePrefix && string(m.Content) == s.n.slot {
			s.txn.fence = true
		}
	case *pglogrepl.CommitMessage:
		s.pos = m.TransactionEndLSN
		s.marks = append(s.marks, mark{seq: s.assigned(), lsn: s.pos})
		if s.txn != nil && s.txn.fence {
			s.fence = s.pos
		}
		s.txn = nil
	}
}

// change takes in a change of a table: of restlive_wal_tables, it
// changes what is captured from here on; of a captured table, it joins
// the batch, unless it was logged before this session (the stream
// starts again from the position the slot confirmed, which may be
// before the last change logged).
func (s *session) change(relID uint32, op byte, oldData *pglogrepl.TupleData, oldType uint8, newData *pglogrepl.TupleData) {
	rel := s.rels[relID]
	if rel == nil || s.txn == nil {
		s.err = fmt.Errorf("capture: stream: a change of relation %d out of place", relID)
		return
	}
	old := tuple{rel: rel, data: oldData, old: true, full: oldType == pglogrepl.UpdateMessageTupleTypeOld}
	new := tuple{rel: rel, data: newData}
	if rel.name == s.own {
		s.configure(op, old, new)
		return
	}
	conf := s.tables[rel.name]
	if conf == nil {
		return // another publication's, sharing this one's name? ignored
	}
	rows, problem := conf.rows(op, old, new)
	if problem != "" {
		s.warn(rel.name, problem)
	}
	for _, row := range rows {
		ord := s.txn.n
		s.txn.n++
		if s.txn.lsn < s.cur.lsn || s.txn.lsn == s.cur.lsn && ord <= s.cur.ord {
			continue // logged already
		}
		s.batch = append(s.batch, captured{row: row, lsn: s.txn.lsn, ord: ord})
	}
}

// configure applies a change of restlive_wal_tables: Install and Remove
// write it in the transaction that adds a table to the publication or
// drops it from it, so the stream says which tables are captured, and
// how, at each point. The session starts from the list as it was at a
// position of the stream, which the cursor records (see log), and
// applies the changes of the transactions from there on; one that began
// before it is applied again, which ends where it did.
func (s *session) configure(op byte, old, new tuple) {
	if s.txn.lsn < s.tablesAt {
		return
	}
	s.tablesDirty = true
	if op == 'D' {
		if name, ok := pkText(old, "name"); ok {
			delete(s.tables, name)
		}
		return
	}
	name, ok1 := pkText(new, "name")
	model, ok2 := pkText(new, "model")
	pk, ok3 := pkText(new, "pk")
	fields, ok4 := pkText(new, "fields")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		s.err = errors.New("capture: stream: a row of restlive_wal_tables without its values")
		return
	}
	s.tables[name] = &tableConf{model: model, pk: pk, fields: splitList(fields)}
}

// warn logs a table's problem once per session.
func (s *session) warn(table, problem string) {
	if s.warned[table] {
		return
	}
	s.warned[table] = true
	s.b.s.Logger.Error("capture: a change lacks values capture needs, and is published with them unknown: "+
		"check the table's REPLICA IDENTITY (capture.Install sets it)", "table", table, "change", problem)
}
