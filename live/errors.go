package live

import (
	"errors"
	"fmt"
)

// An Error is a refusal a client is told about: Code is the protocol's
// error code (400, 403, 404, 429) and Message says what is wrong.
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Refusals views return most often.
var (
	ErrForbidden = &Error{Code: 403, Message: "You do not have permission to perform this action."}
	ErrNotFound  = &Error{Code: 404, Message: "Not found."}
)

// errorCode returns the client-facing code and message of err: those of an
// *Error it wraps, or 500 with no detail.
func errorCode(err error) (int, string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Code, e.Message
	}
	return 500, "internal error"
}
