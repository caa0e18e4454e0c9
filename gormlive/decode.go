package gormlive

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/restlive/restlive/live"
)

// NonFieldErrors is the FieldErrors key of failures that concern the body
// as a whole rather than one field, as in Django REST Framework.
const NonFieldErrors = "non_field_errors"

// FieldErrors are the validation failures of a request body, messages by
// JSON field name: package rest answers them with 400 and the map as the
// JSON body, {"name": ["This field is required."]}.
type FieldErrors map[string][]string

// Add appends a message for field.
func (e FieldErrors) Add(field, message string) { e[field] = append(e[field], message) }

// Err returns e as an error, or nil when it holds no failure, so that a
// validator can collect into a FieldErrors and end with return errs.Err().
func (e FieldErrors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

func (e FieldErrors) Error() string {
	fields := make([]string, 0, len(e))
	for f := range e {
		fields = append(fields, f)
	}
	slices.Sort(fields)
	var b strings.Builder
	b.WriteString("invalid fields:")
	for _, f := range fields {
		fmt.Fprintf(&b, " %s: %s;", f, strings.Join(e[f], " "))
	}
	return strings.TrimSuffix(b.String(), ";")
}

// DecodeJSON decodes body, which must hold one JSON object, into v with
// encoding/json; fields of the object that v lacks are ignored, as Django
// REST Framework ignores them, so a client may send back what it read. A
// body that is not JSON is an *live.Error with code 400 that names the
// problem; a value of the wrong type is FieldErrors for its field.
func DecodeJSON(body []byte, v any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] != '{' && json.Valid(body) {
		return FieldErrors{NonFieldErrors: {"Invalid data. Expected an object, but got " + jsonKind(trimmed[0]) + "."}}
	}
	return JSONError(json.Unmarshal(body, v))
}

// JSONError translates an error of encoding/json decoding a request body
// into the answer a client should get: *json.SyntaxError becomes a 400
// *live.Error "JSON parse error - ..." and *json.UnmarshalTypeError becomes
// FieldErrors for its field. Other errors, and nil, are returned as they are.
func JSONError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return live.Errorf(400, "JSON parse error - %s at offset %d", syntax.Error(), syntax.Offset)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = NonFieldErrors
		}
		return FieldErrors{field: {expected(typ.Type) + ", got " + typ.Value + "."}}
	}
	return err
}

func expected(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "Must be a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "Must be an integer"
	case reflect.Float32, reflect.Float64:
		return "Must be a number"
	case reflect.String:
		return "Must be a string"
	case reflect.Slice, reflect.Array:
		return "Must be a list"
	case reflect.Struct, reflect.Map:
		return "Must be an object"
	}
	return "Must be a " + t.String()
}

func jsonKind(first byte) string {
	switch first {
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}
