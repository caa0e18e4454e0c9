package live

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
)

// The protocol has two dialects (see PROTOCOL.md): the seed one, whose
// frames carry "request_id", and django-rest-live 0.4's, whose frames carry
// "type" and "id". A reply is written in the dialect of the frame it answers.
type dialect uint8

const (
	dialectSeed dialect = iota
	dialectTyped
)

func (d dialect) idKey() string {
	if d == dialectTyped {
		return "id"
	}
	return "request_id"
}

// message is one decoded client frame.
type message struct {
	dialect dialect
	// id is the request id as the client wrote it (a JSON number or
	// string), echoed verbatim; nil when the frame has none that can be read.
	id json.RawMessage

	unsubscribe bool
	ack         bool

	model   string
	action  string // "retrieve" or "list"
	groupBy string // PK for "retrieve", "" for a "list" of the whole model
	value   string
	args    map[string]string
	query   url.Values
}

// decodeMessage decodes and validates a client frame. A non-nil error is a
// 400 *Error; the returned message still carries the dialect and the id if
// they could be read, so the error can name its request.
func decodeMessage(data []byte) (*message, error) {
	m := &message{}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		if !json.Valid(data) {
			return m, Errorf(400, "the frame is not valid JSON")
		}
		return m, Errorf(400, "the frame must be a JSON object")
	}
	if raw, ok := fields["type"]; ok {
		m.dialect = dialectTyped
		var typ string
		if err := json.Unmarshal(raw, &typ); err != nil {
			m.id = readID(fields, "id")
			return m, Errorf(400, `"type" must be a string`)
		}
		m.id = readID(fields, "id")
		switch typ {
		case "subscribe":
		case "unsubscribe":
			m.unsubscribe = true
		default:
			return m, Errorf(400, "unknown message type %q: expected \"subscribe\" or \"unsubscribe\"", typ)
		}
	} else {
		m.id = readID(fields, "request_id")
		if raw, ok := fields["unsubscribe"]; ok {
			if err := json.Unmarshal(raw, &m.unsubscribe); err != nil {
				return m, Errorf(400, `"unsubscribe" must be true or false`)
			}
		}
	}
	key := m.dialect.idKey()
	if m.id == nil {
		if _, ok := fields[key]; ok {
			return m, Errorf(400, "%q must be an integer or a string", key)
		}
		return m, Errorf(400, "%q is missing", key)
	}
	if raw, ok := fields["ack"]; ok {
		if err := json.Unmarshal(raw, &m.ack); err != nil {
			return m, Errorf(400, `"ack" must be true or false`)
		}
	}
	if m.unsubscribe {
		return m, nil
	}

	if err := decodeString(fields, "model", &m.model); err != nil {
		return m, err
	}
	if m.model == "" {
		return m, Errorf(400, `"model" is missing`)
	}
	var err error
	if m.dialect == dialectTyped {
		err = m.decodeTyped(fields)
	} else {
		err = m.decodeSeed(fields)
	}
	if err != nil {
		return m, err
	}
	for _, k := range []string{"arguments", "view_kwargs"} {
		if raw, ok := fields[k]; ok {
			if m.args, err = decodeArgs(k, raw); err != nil {
				return m, err
			}
		}
	}
	if raw, ok := fields["query_params"]; ok {
		if m.query, err = decodeQuery(raw); err != nil {
			return m, err
		}
	}
	return m, nil
}

func (m *message) decodeSeed(fields map[string]json.RawMessage) error {
	m.groupBy = PK
	if err := decodeString(fields, "group_by", &m.groupBy); err != nil {
		return err
	}
	if m.groupBy == "id" || m.groupBy == "" {
		m.groupBy = PK
	}
	m.action = "list"
	if m.groupBy == PK {
		m.action = "retrieve"
	}
	raw, ok := fields["value"]
	if !ok {
		return Errorf(400, `"value" is missing`)
	}
	var err error
	m.value, err = decodeValue("value", raw)
	return err
}

func (m *message) decodeTyped(fields map[string]json.RawMessage) error {
	if err := decodeString(fields, "action", &m.action); err != nil {
		return err
	}
	switch m.action {
	case "retrieve":
		m.groupBy = PK
		raw, ok := fields["lookup_by"]
		if !ok {
			return Errorf(400, `"lookup_by" is missing for action "retrieve"`)
		}
		var err error
		m.value, err = decodeValue("lookup_by", raw)
		return err
	case "list":
		return nil
	case "":
		return Errorf(400, `"action" is missing: expected "retrieve" or "list"`)
	}
	return Errorf(400, "unknown action %q: expected \"retrieve\" or \"list\"", m.action)
}

// readID returns the frame's request id if it is a JSON number or string.
func readID(fields map[string]json.RawMessage, key string) json.RawMessage {
	raw := bytes.TrimSpace(fields[key])
	if len(raw) == 0 {
		return nil
	}
	switch c := raw[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return raw
	}
	return nil
}

func decodeString(fields map[string]json.RawMessage, key string, dst *string) error {
	raw, ok := fields[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return Errorf(400, "%q must be a string", key)
	}
	return nil
}

// decodeValue reads a scalar into its canonical form: 14 and "14" are the
// same value.
func decodeValue(key string, raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", Errorf(400, "%q is not a valid string", key)
		}
		return s, nil
	}
	if len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		if s, err := canonicalNumber(string(raw)); err == nil {
			return s, nil
		}
	}
	if bytes.Equal(raw, []byte("true")) || bytes.Equal(raw, []byte("false")) {
		return string(raw), nil
	}
	return "", Errorf(400, "%q must be a number, a string or a boolean", key)
}

func decodeArgs(key string, raw json.RawMessage) (map[string]string, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, Errorf(400, "%q must be an object", key)
	}
	args := make(map[string]string, len(obj))
	for k, v := range obj {
		s, err := decodeValue(key+"."+k, v)
		if err != nil {
			return nil, err
		}
		args[k] = s
	}
	return args, nil
}

func decodeQuery(raw json.RawMessage) (url.Values, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, Errorf(400, `"query_params" must be an object`)
	}
	q := make(url.Values, len(obj))
	for k, v := range obj {
		name := "query_params." + k
		if v = bytes.TrimSpace(v); len(v) > 0 && v[0] == '[' {
			var list []json.RawMessage
			if err := json.Unmarshal(v, &list); err != nil {
				return nil, Errorf(400, "%q is not a valid list", name)
			}
			for _, item := range list {
				s, err := decodeValue(name, item)
				if err != nil {
					return nil, err
				}
				q.Add(k, s)
			}
			continue
		}
		s, err := decodeValue(name, v)
		if err != nil {
			return nil, err
		}
		q.Set(k, s)
	}
	return q, nil
}

// Replies. Every frame is built by appending to a byte slice, in the order
// PROTOCOL.md shows, without reflection: broadcasts are the hot path.

// appendHead appends `{"type":<typ>,<idKey>:<id>` and leaves the object open.
func appendHead(b []byte, typ string, d dialect, id json.RawMessage) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","`...)
	b = append(b, d.idKey()...)
	b = append(b, `":`...)
	if id == nil {
		return append(b, "null"...)
	}
	return append(b, id...)
}

// encodeError returns an error frame.
func encodeError(d dialect, id json.RawMessage, code int, msg string) []byte {
	b := appendHead(make([]byte, 0, 64+len(msg)), "error", d, id)
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, msg)
	return append(b, '}')
}

// encodeNotice returns a frame that only names its request: "subscribed",
// "unsubscribed" or "resync".
func encodeNotice(typ string, d dialect, id json.RawMessage) []byte {
	return append(appendHead(nil, typ, d, id), '}')
}

// broadcastHead returns the part of a subscription's broadcast frames that
// is the same for all of them: everything up to the action's value.
func broadcastHead(d dialect, id json.RawMessage, model string) []byte {
	b := appendHead(nil, "broadcast", d, id)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, model)
	return append(b, `,"action":"`...)
}

// broadcastTail returns the rest of a broadcast frame after its head: the
// action and the instance. It is built once per change and scope and shared
// by every subscriber of the scope.
func broadcastTail(action string, instance json.RawMessage) []byte {
	b := make([]byte, 0, len(action)+len(instance)+16)
	b = append(b, action...)
	b = append(b, `","instance":`...)
	b = append(b, instance...)
	return append(b, '}')
}

func appendJSONString(b []byte, s string) []byte {
	q, err := json.Marshal(s)
	if err != nil { // cannot happen for a string
		panic(fmt.Sprintf("live: encode %q: %v", s, err))
	}
	return append(b, q...)
}
