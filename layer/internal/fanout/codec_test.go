package fanout

import (
	"encoding/json"
	"maps"
	"strconv"
	"testing"

	"github.com/restlive/restlive/live"
)

func sameChange(a, b live.Change) bool {
	return a.Seq == b.Seq && a.Model == b.Model && a.PK == b.PK && a.Op == b.Op &&
		(a.Old == nil) == (b.Old == nil) && maps.Equal(a.Old, b.Old) &&
		(a.New == nil) == (b.New == nil) && maps.Equal(a.New, b.New)
}

func encodeMessage(publisher, batch uint64, size int, changes []indexed) []byte {
	b := appendHeader(nil, publisher, batch, size, len(changes))
	for _, x := range changes {
		b = appendChange(b, x.index, &x.change)
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	changes := []indexed{
		{0, live.Change{Seq: 1, Model: "todolist.Task", PK: "5", Op: live.OpInsert, New: map[string]string{"list_id": "14"}}},
		{3, live.Change{Model: "m", PK: "", Op: live.OpDelete, Old: map[string]string{"": ""}}},
		{4, live.Change{Seq: 1<<64 - 1, Model: "日本", PK: "\x00\xff", Op: live.OpUpdate, Old: map[string]string{}, New: map[string]string{"a": "b", "c": ""}}},
	}
	payload := encodeMessage(0xdeadbeefcafe, 7, 5, changes)
	m, err := decode(string(payload))
	if err != nil {
		t.Fatal(err)
	}
	if m.publisher != 0xdeadbeefcafe || m.batch != 7 || m.size != 5 || len(m.changes) != len(changes) {
		t.Fatalf("decoded header %x/%d/%d with %d changes", m.publisher, m.batch, m.size, len(m.changes))
	}
	for i, x := range m.changes {
		if x.index != changes[i].index || !sameChange(x.change, changes[i].change) {
			t.Errorf("change %d = %d %+v, want %d %+v", i, x.index, x.change, changes[i].index, changes[i].change)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := encodeMessage(1, 1, 2, []indexed{{1, live.Change{Model: "m", PK: "1", Op: live.OpInsert}}})
	for name, payload := range map[string]string{
		"empty":          "",
		"version":        "\x02" + string(good[1:]),
		"truncated":      string(good[:len(good)-1]),
		"trailing":       string(good) + "x",
		"index too high": string(encodeMessage(1, 1, 1, []indexed{{1, live.Change{}}})),
		"zero batch":     string(encodeMessage(1, 0, 1, []indexed{{0, live.Change{}}})),
		"huge count":     string(appendHeader(nil, 1, 1, 2, 1<<40)),
		"huge size":      string(appendHeader(nil, 1, 1, 1<<40, 0)),
	} {
		if _, err := decode(payload); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzDecode: no payload makes decode panic, and what it accepts encodes
// back to something that decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add(string(encodeMessage(1, 1, 3, []indexed{
		{0, live.Change{Seq: 9, Model: "m", PK: "1", Op: live.OpUpdate, Old: map[string]string{"a": "1"}, New: map[string]string{"a": "2"}}},
		{2, live.Change{Model: "m", PK: "2", Op: live.OpDelete}},
	})))
	f.Add("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01\x00")
	f.Fuzz(func(t *testing.T, payload string) {
		m, err := decode(payload)
		if err != nil {
			return
		}
		again, err := decode(string(encodeMessage(m.publisher, m.batch, m.size, m.changes)))
		if err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		if len(again.changes) != len(m.changes) {
			t.Fatalf("re-encoded %d changes, got %d", len(m.changes), len(again.changes))
		}
		for i := range m.changes {
			if m.changes[i].index != again.changes[i].index || !sameChange(m.changes[i].change, again.changes[i].change) {
				t.Fatalf("change %d: %+v, then %+v", i, m.changes[i], again.changes[i])
			}
		}
	})
}

func TestChannel(t *testing.T) {
	nats := Naming{Prefix: "restlive", Sep: '.'}
	for _, tc := range []struct {
		topic live.Topic
		want  string
	}{
		{live.Topic{Model: "todolist.Task"}, "restlive.todolist%2ETask"},
		{live.Topic{Model: "todolist.Task", Field: "pk", Value: "5"}, "restlive.todolist%2ETask.pk.5"},
		{live.Topic{Model: "m", Field: "list_id", Value: ""}, "restlive.m.list_id.%"},
		{live.Topic{Model: "m", Field: "f", Value: "a b.*>%"}, "restlive.m.f.a%20b%2E%2A%3E%25"},
		{live.Topic{Model: "m", Field: "f", Value: "ü"}, "restlive.m.f.%C3%BC"},
	} {
		if got := nats.Channel(tc.topic); got != tc.want {
			t.Errorf("Channel(%v) = %q, want %q", tc.topic, got, tc.want)
		}
	}
	long := nats.Channel(live.Topic{Model: "m", Field: "f", Value: string(make([]byte, 1000))})
	if len(long) > 100 {
		t.Errorf("a long value makes a %d-byte name", len(long))
	}
}

// TestChannelDistinct: distinct topics get distinct, valid NATS subjects.
func TestChannelDistinct(t *testing.T) {
	n := Naming{Prefix: "p.q", Sep: '.'}
	values := []string{"", "%", "%25", "a", "A", ".", "a.b", "a%2Eb", "*", ">", " ", "\t", "~", "~x", "pk", "x\x00"}
	seen := make(map[string]live.Topic)
	check := func(topic live.Topic) {
		name := n.Channel(topic)
		if other, ok := seen[name]; ok {
			t.Errorf("%v and %v are both %q", topic, other, name)
		}
		seen[name] = topic
		for i := 0; i < len(name); i++ {
			if c := name[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				t.Errorf("%q has %q", name, c)
			}
		}
		for _, tok := range splitDots(name) {
			if tok == "" {
				t.Errorf("%q has an empty token", name)
			}
		}
	}
	for _, m := range values[:6] {
		check(live.Topic{Model: m})
		for _, f := range values {
			for _, v := range values {
				if f != "" || v != "" {
					check(live.Topic{Model: m, Field: f, Value: v})
				}
			}
		}
	}
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}

func benchChanges(n int) []live.Change {
	changes := make([]live.Change, n)
	for i := range changes {
		changes[i] = live.Change{Seq: uint64(1000 + i), Model: "todolist.Task", PK: strconv.Itoa(i), Op: live.OpUpdate,
			Old: map[string]string{"list_id": "14"}, New: map[string]string{"list_id": "14"}}
	}
	return changes
}

// jsonChange is what a JSON encoding would carry, for comparison.
type jsonChange struct {
	Index int               `json:"i"`
	Seq   uint64            `json:"s,omitempty"`
	Op    live.Op           `json:"o"`
	Model string            `json:"m"`
	PK    string            `json:"p"`
	Old   map[string]string `json:"old,omitempty"`
	New   map[string]string `json:"new,omitempty"`
}

type jsonMessage struct {
	Publisher uint64       `json:"pub"`
	Batch     uint64       `json:"b"`
	Size      int          `json:"n"`
	Changes   []jsonChange `json:"c"`
}

// BenchmarkCodec compares the wire format with JSON on a batch of 100
// changes to one list (one message).
func BenchmarkCodec(b *testing.B) {
	changes := benchChanges(100)
	indexedChanges := make([]indexed, len(changes))
	js := jsonMessage{Publisher: 1, Batch: 1, Size: len(changes)}
	for i, c := range changes {
		indexedChanges[i] = indexed{i, c}
		js.Changes = append(js.Changes, jsonChange{i, c.Seq, c.Op, c.Model, c.PK, c.Old, c.New})
	}
	payload := string(encodeMessage(1, 1, len(changes), indexedChanges))
	jsonPayload, _ := json.Marshal(js)
	b.Run("binary/encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 8192)
		for b.Loop() {
			buf = appendHeader(buf[:0], 1, 1, len(changes), len(changes))
			for i := range changes {
				buf = appendChange(buf, i, &changes[i])
			}
		}
		b.ReportMetric(float64(len(payload)), "bytes/msg")
	})
	b.Run("binary/decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decode(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json/encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(js); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(jsonPayload)), "bytes/msg")
	})
	b.Run("json/decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m jsonMessage
			if err := json.Unmarshal(jsonPayload, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
