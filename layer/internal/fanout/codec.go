package fanout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/restlive/restlive/live"
)

// The wire format of one message: the changes of one Publish batch that
// have one topic. Every integer is a uvarint unless said otherwise; every
// string is a uvarint length and its bytes.
//
//	version    byte (1)
//	publisher  8 bytes, little endian: random per Layer value
//	batch      the publisher's batch counter, from 1
//	size       number of changes in the whole batch
//	count      number of changes in this message
//	count times:
//	  index    position of the change in the batch, < size
//	  seq      Change.Seq
//	  op       byte
//	  model, pk string
//	  old, new  number of pairs plus one (0 means a nil map), then
//	            that many field, value string pairs
//
// (publisher, batch, index) identifies a change: a process that receives
// it on several topics delivers it once. A binary format rather than JSON
// because every change is decoded once per process and message, and the
// strings of a decoded change can share the payload's memory.
const wireVersion = 1

// headerMax bounds the encoded header: version, publisher and four uvarints.
const headerMax = 1 + 8 + 4*binary.MaxVarintLen64

// maxBatch bounds a batch's declared size so a corrupt message cannot make
// a receiver allocate without limit.
const maxBatch = 1 << 20

// appendHeader appends a message header to b.
func appendHeader(b []byte, publisher, batch uint64, size, count int) []byte {
	b = append(b, wireVersion)
	b = binary.LittleEndian.AppendUint64(b, publisher)
	b = binary.AppendUvarint(b, batch)
	b = binary.AppendUvarint(b, uint64(size))
	return binary.AppendUvarint(b, uint64(count))
}

// appendChange appends the encoding of c, at index in its batch, to b.
func appendChange(b []byte, index int, c *live.Change) []byte {
	b = binary.AppendUvarint(b, uint64(index))
	b = binary.AppendUvarint(b, c.Seq)
	b = append(b, byte(c.Op))
	b = appendString(b, c.Model)
	b = appendString(b, c.PK)
	b = appendMap(b, c.Old)
	return appendMap(b, c.New)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(m))+1)
	for k, v := range m {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

// A message is a decoded wire message.
type message struct {
	publisher uint64
	batch     uint64
	size      int
	changes   []indexed
}

// An indexed change is a change and its position in its batch.
type indexed struct {
	index  int
	change live.Change
}

var errShort = errors.New("truncated")

// decoder reads a payload held as a string, so that the strings of the
// decoded changes are substrings of it and cost no allocation.
type decoder struct {
	s   string
	off int
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	var shift uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		if d.off >= len(d.s) {
			d.err = errShort
			return 0
		}
		c := d.s[d.off]
		d.off++
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				d.err = errors.New("uvarint overflows")
				return 0
			}
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	d.err = errors.New("uvarint overflows")
	return 0
}

// length reads a uvarint that counts items of at least min bytes each
// still to come, and checks that they can fit in what is left.
func (d *decoder) length(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.s)-d.off)/uint64(min) {
		d.err = errShort
		return 0
	}
	return int(n)
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.s) {
		d.err = errShort
		return 0
	}
	c := d.s[d.off]
	d.off++
	return c
}

func (d *decoder) string() string {
	n := d.length(1)
	if d.err != nil {
		return ""
	}
	s := d.s[d.off : d.off+n]
	d.off += n
	return s
}

func (d *decoder) stringMap() map[string]string {
	n := d.uvarint()
	if d.err != nil || n == 0 {
		return nil
	}
	n--
	// Each pair takes at least two bytes: two empty strings.
	if n > uint64(len(d.s)-d.off)/2 {
		d.err = errShort
		return nil
	}
	m := make(map[string]string, n)
	for ; n > 0 && d.err == nil; n-- {
		k := d.string()
		m[k] = d.string()
	}
	return m
}

// decode parses a wire message. Payloads come from a broker that anyone
// with access can publish to, so every length is checked against what is
// left and no input makes it panic or allocate without bound.
func decode(payload string) (message, error) {
	var m message
	if len(payload) < 9 {
		return m, fmt.Errorf("decode message: %w", errShort)
	}
	if payload[0] != wireVersion {
		return m, fmt.Errorf("decode message: unknown version %d", payload[0])
	}
	m.publisher = binary.LittleEndian.Uint64([]byte(payload[1:9]))
	d := decoder{s: payload, off: 9}
	m.batch = d.uvarint()
	size := d.uvarint()
	if d.err == nil && (size == 0 || size > maxBatch) {
		return m, fmt.Errorf("decode message: batch size %d out of range", size)
	}
	m.size = int(size)
	// The smallest change is 7 bytes: index, seq, op, two empty strings,
	// two nil maps.
	count := d.length(7)
	if d.err == nil && count > m.size {
		return m, fmt.Errorf("decode message: %d changes in a batch of %d", count, m.size)
	}
	if d.err != nil {
		return m, fmt.Errorf("decode message: %w", d.err)
	}
	m.changes = make([]indexed, count)
	for i := range m.changes {
		x := &m.changes[i]
		index := d.uvarint()
		if d.err == nil && index >= uint64(m.size) {
			return m, fmt.Errorf("decode message: change index %d in a batch of %d", index, m.size)
		}
		x.index = int(index)
		x.change.Seq = d.uvarint()
		x.change.Op = live.Op(d.byte())
		x.change.Model = d.string()
		x.change.PK = d.string()
		x.change.Old = d.stringMap()
		x.change.New = d.stringMap()
		if d.err != nil {
			return m, fmt.Errorf("decode message: change %d: %w", i, d.err)
		}
	}
	if d.off != len(d.s) {
		return m, fmt.Errorf("decode message: %d bytes after the last change", len(d.s)-d.off)
	}
	if m.batch == 0 || m.batch == math.MaxUint64 {
		return m, fmt.Errorf("decode message: batch %d out of range", m.batch)
	}
	return m, nil
}
