package live

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

var testLimits = limits{maxID: 64, maxValue: 256, maxArgs: 32}

func TestDecodeMessage(t *testing.T) {
	for _, tc := range []struct {
		frame string
		want  message
	}{
		{`{"request_id": 1337, "model": "todolist.Task", "value": 1}`,
			message{id: json.RawMessage(`1337`), model: "todolist.Task", action: "retrieve", groupBy: PK, value: "1"}},
		{`{"request_id": "a", "model": "todolist.Task", "group_by": "list_id", "value": "14", "query_params": {"search": "milk", "tag": [1, "2"]}}`,
			message{id: json.RawMessage(`"a"`), model: "todolist.Task", action: "list", groupBy: "list_id", value: "14"}},
		{`{"request_id": 1, "model": "todolist.Task", "group_by": "id", "value": 14.0, "arguments": {"list": 14}}`,
			message{id: json.RawMessage(`1`), model: "todolist.Task", action: "retrieve", groupBy: PK, value: "14"}},
		{`{"request_id": 1338, "unsubscribe": true}`,
			message{id: json.RawMessage(`1338`), unsubscribe: true}},
		{`{"type": "subscribe", "id": 1, "model": "todolist.Task", "action": "retrieve", "lookup_by": 5, "ack": true}`,
			message{dialect: dialectTyped, id: json.RawMessage(`1`), model: "todolist.Task", action: "retrieve", groupBy: PK, value: "5", ack: true}},
		{`{"type": "subscribe", "id": 2, "model": "todolist.Task", "action": "list", "view_kwargs": {"list": 14}}`,
			message{dialect: dialectTyped, id: json.RawMessage(`2`), model: "todolist.Task", action: "list"}},
		{`{"type": "unsubscribe", "id": 2}`,
			message{dialect: dialectTyped, id: json.RawMessage(`2`), unsubscribe: true}},
		{`{"request_id": 7, "model": "todolist.Task", "group_by": "list_id", "value": 14, "snapshot": true}`,
			message{id: json.RawMessage(`7`), model: "todolist.Task", action: "list", groupBy: "list_id", value: "14", snapshot: true}},
		{`{"type": "subscribe", "id": 7, "model": "todolist.Task", "action": "retrieve", "lookup_by": 5, "since": "e1.2s"}`,
			message{dialect: dialectTyped, id: json.RawMessage(`7`), model: "todolist.Task", action: "retrieve", groupBy: PK, value: "5", snapshot: true, since: "e1.2s", hasSince: true}},
	} {
		m, err := decodeMessage([]byte(tc.frame), testLimits)
		if err != nil {
			t.Errorf("%s: %v", tc.frame, err)
			continue
		}
		got := *m
		got.args, got.query = nil, nil
		if string(got.id) != string(tc.want.id) {
			t.Errorf("%s: id %s, want %s", tc.frame, got.id, tc.want.id)
		}
		got.id, tc.want.id = nil, nil
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.frame, got, tc.want)
		}
	}
	m, _ := decodeMessage([]byte(`{"request_id": 1, "model": "m.M", "value": 1, "arguments": {"list": 14}, "query_params": {"tag": [1, "2"], "q": "x"}}`), testLimits)
	if m.args["list"] != "14" || m.query.Get("q") != "x" || len(m.query["tag"]) != 2 || m.query["tag"][0] != "1" {
		t.Errorf("args %v, query %v", m.args, m.query)
	}
}

// TestDecodeRefusals checks that what a client could make the server
// keep is bounded, and that each refusal says what is wrong.
func TestDecodeRefusals(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tc := range []struct {
		frame, want string
	}{
		{`{"request_id": "` + strings.Repeat("x", 63) + `", "model": "a.B", "value": 1}`, `"request_id" is 65 bytes long: at most 64`},
		{`{"request_id": {"a": 1}, "model": "a.B", "value": 1}`, `"request_id" must be an integer or a string`},
		{`{"request_id": 1, "model": "a.B", "value": "` + long + `"}`, "the value is 300 bytes long: at most 256"},
		{`{"request_id": 1, "model": "a.B", "value": 1, "arguments": {"a": "` + long + `"}}`, `argument "a" is longer than 256 bytes`},
		{`{"request_id": 1, "model": "a.B", "value": 1, "query_params": {"q": ["` + long + `"]}}`, `query parameter "q" is longer than 256 bytes`},
		{`{"request_id": 1, "model": "a.B", "value": 1, "query_params": {"q": [` + strings.Repeat(`1,`, 32) + `1]}}`, "33 arguments and query parameter values: at most 32"},
		{`{"request_id": 1, "model": "a.B", "value": 1, "since": 5}`, `"since" must be a string: an offset the server sent`},
		{`{"request_id": 1, "model": "a.B", "value": 1, "snapshot": "yes"}`, `"snapshot" must be true or false`},
	} {
		_, err := decodeMessage([]byte(tc.frame), testLimits)
		if code, msg := errorCode(err); code != 400 || msg != tc.want {
			t.Errorf("%.80s: %d %q, want 400 %q", tc.frame, code, msg, tc.want)
		}
	}
}

func TestEncodeFramesAreJSON(t *testing.T) {
	for _, b := range [][]byte{
		encodeError(dialectSeed, nil, 400, `bad "frame"`),
		encodeError(dialectTyped, json.RawMessage(`"x"`), 404, "not found"),
		encodeNotice("subscribed", dialectSeed, json.RawMessage(`1`)),
		append(broadcastHead(dialectSeed, json.RawMessage(`1`), "a.B"), broadcastTail("CREATED", json.RawMessage(`{"id":1}`))...),
		append(append(broadcastHead(dialectTyped, json.RawMessage(`"x"`), "a.B"), offsetField("e1.a")...), broadcastTail("DELETED", json.RawMessage(`{"id":1}`))...),
		encodeSubscribed(dialectSeed, json.RawMessage(`1`), "e1.a", nil),
		encodeSubscribed(dialectTyped, json.RawMessage(`1`), "e1.a", new(bool)),
		(&frame{head: snapshotHead(dialectSeed, json.RawMessage(`1`), "a.B"), items: []string{`{"id":1}`, `{"id":2}`}, tail: snapshotTail}).appendTo(nil),
		(&frame{head: snapshotHead(dialectSeed, json.RawMessage(`1`), "a.B"), tail: snapshotTail}).appendTo(nil),
	} {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("%s: %v", b, err)
		}
	}
}

// FuzzDecodeMessage checks that no frame panics the decoder, that every
// refusal is a 400, and that an accepted subscribe names a model.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		`{"request_id": 1337, "model": "todolist.Task", "value": 1}`,
		`{"request_id": 1338, "model": "todolist.Task", "group_by": "list_id", "value": 14, "query_params": {"search": ["milk"]}}`,
		`{"type": "subscribe", "id": 2, "model": "todolist.Task", "action": "list", "view_kwargs": {"list": 14}}`,
		`{"type": "unsubscribe", "id": 2}`, `{"request_id": 1, "unsubscribe": true}`, `[]`, `null`, `"x"`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data, testLimits)
		if m == nil {
			t.Fatal("nil message")
		}
		if err != nil {
			if code, _ := errorCode(err); code != 400 {
				t.Fatalf("code %d for %q", code, data)
			}
			return
		}
		if m.id == nil {
			t.Fatalf("accepted %q without an id", data)
		}
		if !m.unsubscribe && m.model == "" {
			t.Fatalf("accepted %q without a model", data)
		}
		var v any
		if err := json.Unmarshal(encodeError(m.dialect, m.id, 400, "x"), &v); err != nil {
			t.Fatalf("error reply for %q is not JSON: %v", data, err)
		}
	})
}

func BenchmarkDecodeMessage(b *testing.B) {
	frame := []byte(`{"request_id": 1338, "model": "todolist.Task", "group_by": "list_id", "value": 14, "query_params": {"search": "milk"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeMessage(frame, testLimits); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBroadcastTail(b *testing.B) {
	instance := json.RawMessage(`{"id":1,"text":"buy milk","done":true,"list":14}`)
	b.ReportAllocs()
	for b.Loop() {
		broadcastTail("UPDATED", instance)
	}
}
