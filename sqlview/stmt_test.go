package sqlview

import (
	"strings"
	"testing"
)

func TestStatementParameters(t *testing.T) {
	for _, c := range []struct {
		d    Dialect
		cond string
		args []any
		want string
	}{
		{Postgres, "a = ? AND b LIKE '%?%' AND c = ?", []any{1, 2}, "a = $1 AND b LIKE '%?%' AND c = $2"},
		{SQLite, `a = ? AND "we?ird" = ?`, []any{1, 2}, `a = ? AND "we?ird" = ?`},
		{Postgres, "a = 'it''s ?' OR b = ?", []any{1}, "a = 'it''s ?' OR b = $1"},
	} {
		s := (&stmt{d: c.d}).cond(c.cond, c.args)
		if s.err != nil || s.String() != c.want || len(s.args) != len(c.args) {
			t.Errorf("cond(%q) = %q %v %v, want %q", c.cond, s, s.args, s.err, c.want)
		}
	}
}

// FuzzCondition checks that any condition text either becomes a
// statement whose parameters are exactly its arguments, or is refused:
// never a statement with a parameter unbound or an argument left over.
func FuzzCondition(f *testing.F) {
	for _, s := range []string{"a = ?", "'?' = ?", `"?"`, "? -- ?", "/* ? */ ?", "'unterminated ?", "??", "$1 = ?"} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, cond string, n uint8) {
		args := make([]any, n%8)
		for i := range args {
			args[i] = i
		}
		for _, d := range []Dialect{SQLite, Postgres} {
			s := (&stmt{d: d}).cond(cond, args)
			if s.err != nil {
				continue
			}
			if len(s.args) != len(args) {
				t.Fatalf("cond(%q) with %d arguments bound %d", cond, len(args), len(s.args))
			}
			if d == SQLite && strings.Count(s.String(), "?") < len(args) {
				t.Fatalf("cond(%q) = %q has fewer parameters than %d arguments", cond, s, len(args))
			}
		}
	})
}
