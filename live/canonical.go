package live

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Canonical returns the canonical string form of a field value, so that the
// value 14 a client sends, the string "14", and the int64 a database returns
// compare equal. It accepts the types encoding/json and database/sql
// produce.
func Canonical(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case []byte:
		return string(v), nil
	case json.Number:
		return canonicalNumber(string(v))
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
			return strconv.FormatInt(int64(v), 10), nil
		}
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case float32:
		return Canonical(float64(v))
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprint(v), nil
	case bool:
		return strconv.FormatBool(v), nil
	case fmt.Stringer:
		return v.String(), nil
	}
	return "", fmt.Errorf("live: %T is not a scalar value", v)
}

func canonicalNumber(s string) (string, error) {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return s, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return "", fmt.Errorf("live: %q is not a number", s)
	}
	return Canonical(f)
}
