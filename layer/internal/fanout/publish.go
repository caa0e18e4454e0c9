package fanout

import (
	"context"
	"fmt"

	"github.com/restlive/restlive/live"
)

// An Outgoing message is one payload for one channel.
type Outgoing struct {
	Channel string
	Data    []byte
}

// Publish encodes changes as one message per topic per batch and hands
// each batch's messages to send, in order. A batch whose encoding would
// exceed maxBytes is split into several batches. Publish calls are
// serialised: one publisher's batches reach the broker in order, which is
// what lets receivers tell a finished batch.
func (f *Fanout) Publish(ctx context.Context, changes []live.Change, maxBytes int, send func(context.Context, []Outgoing) error) error {
	f.pubMu.Lock()
	defer f.pubMu.Unlock()
	e := &f.enc
	if e.names == nil {
		e.names = make(map[live.Topic]string)
	}
	for len(changes) > 0 {
		f.batch++
		n, msgs, err := e.encode(f.naming, f.id, f.batch, changes, maxBytes)
		if err != nil {
			return fmt.Errorf("%s: publish: %w", f.name, err)
		}
		if err := send(ctx, msgs); err != nil {
			return fmt.Errorf("%s: publish: %w", f.name, err)
		}
		f.sent.Add(uint64(len(msgs)))
		changes = changes[n:]
	}
	return nil
}

// encoder keeps its buffers between batches. Used with Fanout.pubMu held.
type encoder struct {
	names  map[live.Topic]string // recent topics' channel names
	arena  []byte
	spans  []int // end offset of each change in arena
	groups map[string]int
	order  []group
}

type group struct {
	channel string
	changes []int
}

// maxNames bounds the cache of channel names: busy topics stay in it,
// and it is emptied when it fills up.
const maxNames = 4096

// encode encodes the longest prefix of changes that fits in maxBytes per
// message, and returns its length and its messages.
func (e *encoder) encode(naming Naming, publisher, batch uint64, changes []live.Change, maxBytes int) (int, []Outgoing, error) {
	e.arena, e.spans, e.order = e.arena[:0], e.spans[:0], e.order[:0]
	if e.groups == nil {
		e.groups = make(map[string]int)
	}
	clear(e.groups)
	for i := range changes {
		start := len(e.arena)
		e.arena = appendChange(e.arena, i, &changes[i])
		if len(e.arena)+headerMax > maxBytes {
			if i == 0 {
				return 0, nil, fmt.Errorf("change %s %s: %d bytes encoded, more than the %d a message may carry", changes[i].Model, changes[i].PK, len(e.arena)-start, maxBytes-headerMax)
			}
			e.arena = e.arena[:start]
			break
		}
		e.spans = append(e.spans, len(e.arena))
		for _, t := range changes[i].Topics() {
			ch, ok := e.names[t]
			if !ok {
				if len(e.names) >= maxNames {
					clear(e.names)
				}
				ch = naming.Channel(t)
				e.names[t] = ch
			}
			g, ok := e.groups[ch]
			if !ok {
				g = len(e.order)
				e.groups[ch] = g
				e.order = append(e.order, group{channel: ch})
			}
			// Two topics may share a channel (hashed values): once is enough.
			if cs := e.order[g].changes; len(cs) == 0 || cs[len(cs)-1] != i {
				e.order[g].changes = append(cs, i)
			}
		}
	}
	n := len(e.spans)
	total := 0
	for _, g := range e.order {
		total += headerMax
		for _, i := range g.changes {
			total += e.span(i)
		}
	}
	// One allocation for all the messages: their payloads are handed to
	// the broker client, which may keep them after send returns.
	buf := make([]byte, 0, total)
	msgs := make([]Outgoing, len(e.order))
	for k, g := range e.order {
		start := len(buf)
		buf = appendHeader(buf, publisher, batch, n, len(g.changes))
		for _, i := range g.changes {
			end := e.spans[i]
			buf = append(buf, e.arena[end-e.span(i):end]...)
		}
		msgs[k] = Outgoing{Channel: g.channel, Data: buf[start:len(buf):len(buf)]}
	}
	return n, msgs, nil
}

func (e *encoder) span(i int) int {
	if i == 0 {
		return e.spans[0]
	}
	return e.spans[i] - e.spans[i-1]
}
