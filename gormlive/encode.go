package gormlive

import (
	"context"
	"encoding/json"
	"fmt"

	"gorm.io/gorm"

	"github.com/restlive/restlive/live"
)

// What REST responses and real-time broadcasts share. Both sides call these
// two methods rather than Query and Serialize directly, so that an instance
// is selected and encoded the same way wherever it is sent.

// Queryset returns the instances req may see: the model's table bound to
// ctx (and to the transaction it carries, see DB) and narrowed by Query. The result is a new GORM session, so each query
// built on it starts from the same conditions. An error from Query is
// returned as is (an *live.Error refuses the request with its code).
func (v *View[M]) Queryset(ctx context.Context, req *live.Request) (*gorm.DB, error) {
	db := DB(ctx, v.DB).Model(new(M))
	if v.Query != nil {
		var err error
		if db, err = v.Query(ctx, db, req); err != nil {
			return nil, err
		}
	}
	return db.Session(&gorm.Session{}), nil
}

// Encode returns the JSON of m as req sees it: json.Marshal of what
// Serialize returns (of m itself by default). It is compact, HTML-escaped
// as encoding/json does by default, and has no trailing newline: the exact
// bytes a REST response body and a broadcast's "instance" carry.
func (v *View[M]) Encode(ctx context.Context, req *live.Request, m *M) ([]byte, error) {
	var out any = m
	if v.Serialize != nil {
		var err error
		if out, err = v.Serialize(ctx, req, m); err != nil {
			return nil, fmt.Errorf("gormlive: serialize %s: %w", v.Label, err)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("gormlive: encode %s: %w", v.Label, err)
	}
	return b, nil
}
