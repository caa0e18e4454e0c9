package fanout

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/restlive/restlive/live"
)

// Naming turns topics into broker channel (Redis) or subject (NATS) names:
// Prefix, Sep, the model and, unless the topic is a whole model's, Sep,
// the field, Sep, the value. Every part is escaped so that the result is a
// valid NATS subject whatever the topic holds.
type Naming struct {
	Prefix string
	Sep    byte
}

// longValue is the escaped length above which a value is replaced by its
// hash, to keep names short (NATS bounds a protocol line to 4 KiB). Two
// topics that then share a name cost bandwidth, not correctness: receivers
// pick changes by their topics, never by the name they came by.
const longValue = 128

// Channel returns the name of topic t.
func (n Naming) Channel(t live.Topic) string {
	var b strings.Builder
	b.Grow(len(n.Prefix) + len(t.Model) + len(t.Field) + len(t.Value) + 8)
	b.WriteString(n.Prefix)
	b.WriteByte(n.Sep)
	escape(&b, t.Model)
	if t.Field == "" && t.Value == "" {
		return b.String()
	}
	b.WriteByte(n.Sep)
	escape(&b, t.Field)
	b.WriteByte(n.Sep)
	if escapedLen(t.Value) > longValue {
		sum := sha256.Sum256([]byte(t.Value))
		// '~' is never produced by escape, so a hash cannot be mistaken
		// for an escaped value.
		b.WriteByte('~')
		b.WriteString(hex.EncodeToString(sum[:16]))
	} else {
		escape(&b, t.Value)
	}
	return b.String()
}

func plain(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

const hexDigits = "0123456789ABCDEF"

// escape writes s with every byte outside [A-Za-z0-9_-] as %XX, and the
// empty string as "%", which no escaped string can be: NATS forbids empty
// tokens, and '.', '*', '>' and white space inside them.
func escape(b *strings.Builder, s string) {
	if s == "" {
		b.WriteByte('%')
		return
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			n += 2
		}
	}
	return n
}

// CheckPrefix reports whether prefix can start a NATS subject and a Redis
// channel: non-empty dot-separated tokens of printable ASCII without white
// space or wildcards.
func CheckPrefix(prefix string) error {
	if prefix == "" {
		return fmt.Errorf("empty prefix")
	}
	for _, token := range strings.Split(prefix, ".") {
		if token == "" {
			return fmt.Errorf("prefix %q has an empty token", prefix)
		}
		for i := 0; i < len(token); i++ {
			if c := token[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				return fmt.Errorf("prefix %q: character %q is not allowed", prefix, c)
			}
		}
	}
	return nil
}
