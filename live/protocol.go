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
	action  Action // ActionRetrieve or ActionList
	groupBy string // PK for a retrieve, "" for a list of the whole model
	value   string
	args    map[string]string
	query   url.Values

	// snapshot asks for the scope's members before the broadcasts, and
	// offsets with them; since (with hasSince) asks to resume from an
	// offset, which implies both.
	snapshot bool
	since    string
	hasSince bool
}

// limits bound what one frame may make the server keep: the request id is
// kept and echoed for as long as the subscription lasts, values name groups.
type limits struct {
	maxID    int // bytes of the request id as the client wrote it
	maxValue int // bytes of each value, argument and query parameter
	maxArgs  int // arguments plus query parameter values
}

// decodeMessage decodes and validates a client frame. A non-nil error is a
// 400 *Error; the returned message still carries the dialect and the id if
// they could be read, so the error can name its request.
func decodeMessage(data []byte, lim limits) (*message, error) {
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
	if len(m.id) > lim.maxID {
		id := m.id
		m.id = nil // too long to echo
		return m, Errorf(400, "%q is %d bytes long: at most %d", key, len(id), lim.maxID)
	}
	if raw, ok := fields["ack"]; ok {
		if err := json.Unmarshal(raw, &m.ack); err != nil {
			return m, Errorf(400, `"ack" must be true or false`)
		}
	}
	if m.unsubscribe {
		return m, nil
	}
	if err := m.decodeResume(fields); err != nil {
		return m, err
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
	return m, m.checkSizes(lim)
}

// decodeResume reads the snapshot and resume extension (PROTOCOL.md,
// "Snapshot and resume"): "snapshot": true, "since": "<offset>".
func (m *message) decodeResume(fields map[string]json.RawMessage) error {
	if raw, ok := fields["snapshot"]; ok {
		if err := json.Unmarshal(raw, &m.snapshot); err != nil {
			return Errorf(400, `"snapshot" must be true or false`)
		}
	}
	if raw, ok := fields["since"]; ok {
		// An offset the server cannot use is answered with a snapshot,
		// never refused: it may come from a server that forgot it.
		if err := json.Unmarshal(raw, &m.since); err != nil {
			return Errorf(400, `"since" must be a string: an offset the server sent`)
		}
		m.hasSince, m.snapshot = true, true
	}
	return nil
}

// checkSizes refuses values, arguments and query parameters beyond lim:
// they name the subscription's scope, which the server keeps.
func (m *message) checkSizes(lim limits) error {
	if len(m.value) > lim.maxValue {
		return Errorf(400, "the value is %d bytes long: at most %d", len(m.value), lim.maxValue)
	}
	n := len(m.args)
	for k, v := range m.args {
		if len(k)+len(v) > lim.maxValue {
			return Errorf(400, "argument %q is longer than %d bytes", k, lim.maxValue)
		}
	}
	for k, vs := range m.query {
		n += len(vs)
		for _, v := range vs {
			if len(k)+len(v) > lim.maxValue {
				return Errorf(400, "query parameter %q is longer than %d bytes", k, lim.maxValue)
			}
		}
	}
	if n > lim.maxArgs {
		return Errorf(400, "%d arguments and query parameter values: at most %d", n, lim.maxArgs)
	}
	return nil
}

func (m *message) decodeSeed(fields map[string]json.RawMessage) error {
	m.groupBy = PK
	if err := decodeString(fields, "group_by", &m.groupBy); err != nil {
		return err
	}
	if m.groupBy == "id" || m.groupBy == "" {
		m.groupBy = PK
	}
	m.action = ActionList
	if m.groupBy == PK {
		m.action = ActionRetrieve
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
	var action string
	if err := decodeString(fields, "action", &action); err != nil {
		return err
	}
	m.action = Action(action)
	switch m.action {
	case ActionRetrieve:
		m.groupBy = PK
		raw, ok := fields["lookup_by"]
		if !ok {
			return Errorf(400, `"lookup_by" is missing for action "retrieve"`)
		}
		var err error
		m.value, err = decodeValue("lookup_by", raw)
		return err
	case ActionList:
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

// encodeSubscribed returns the "subscribed" frame that ends a snapshot or
// a resume: it carries the offset the client's state now stands at and,
// after a resume, whether it resumed (true) or was sent a whole snapshot.
func encodeSubscribed(d dialect, id json.RawMessage, offset string, resumed *bool) []byte {
	b := appendHead(nil, "subscribed", d, id)
	b = append(b, `,"offset":`...)
	b = appendJSONString(b, offset)
	if resumed != nil {
		b = append(b, `,"resumed":`...)
		b = strconv.AppendBool(b, *resumed)
	}
	return append(b, '}')
}

// snapshotHead returns the start of a subscription's snapshot frames, up
// to the opening of the instances array.
func snapshotHead(d dialect, id json.RawMessage, model string) []byte {
	b := appendHead(nil, "snapshot", d, id)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, model)
	return append(b, `,"instances":[`...)
}

// broadcastHead returns the part of a subscription's broadcast frames that
// is the same for all of them: everything up to the offset, if the
// subscription carries offsets, and the action.
func broadcastHead(d dialect, id json.RawMessage, model string) []byte {
	b := appendHead(nil, "broadcast", d, id)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, model)
	return append(b, ',')
}

// offsetField returns the `"offset":"...",` part of the broadcasts of
// subscriptions that carry offsets. It is built once per batch of a scope
// and shared by their frames.
func offsetField(offset string) []byte {
	b := append(make([]byte, 0, len(offset)+12), `"offset":`...)
	b = appendJSONString(b, offset)
	return append(b, ',')
}

// broadcastTail returns the rest of a broadcast frame: the action and the
// instance. It is built once per change and scope and shared by every
// subscriber of the scope.
func broadcastTail[T ~string | ~[]byte](action string, instance T) []byte {
	b := make([]byte, 0, len(action)+len(instance)+26)
	b = append(b, `"action":"`...)
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
