package live

import (
	"encoding/json"
	"fmt"
	"testing"
)

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
	} {
		m, err := decodeMessage([]byte(tc.frame))
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
	m, _ := decodeMessage([]byte(`{"request_id": 1, "model": "m.M", "value": 1, "arguments": {"list": 14}, "query_params": {"tag": [1, "2"], "q": "x"}}`))
	if m.args["list"] != "14" || m.query.Get("q") != "x" || len(m.query["tag"]) != 2 || m.query["tag"][0] != "1" {
		t.Errorf("args %v, query %v", m.args, m.query)
	}
}

func TestEncodeFramesAreJSON(t *testing.T) {
	for _, b := range [][]byte{
		encodeError(dialectSeed, nil, 400, `bad "frame"`),
		encodeError(dialectTyped, json.RawMessage(`"x"`), 404, "not found"),
		encodeNotice("subscribed", dialectSeed, json.RawMessage(`1`)),
		append(broadcastHead(dialectSeed, json.RawMessage(`1`), "a.B"), broadcastTail("CREATED", json.RawMessage(`{"id":1}`))...),
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
		m, err := decodeMessage(data)
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
		if _, err := decodeMessage(frame); err != nil {
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
