package pgwal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/internal/outbox"
	"github.com/restlive/restlive/live"
)

// Config configures capture from the write-ahead log. Its zero value is
// ready to use.
type Config struct {
	// Slot is the name of the logical replication slot the reader streams
	// from. Slots belong to the server, not to one database, so two
	// deployments on one server need two names. Defaults to "restlive_"
	// and the database's name (and "_" and the schema's, when it is not
	// public), lower-cased, with characters other than a-z, 0-9 and _
	// made _, and shortened with a hash past 63 bytes.
	Slot string
	// Publication is the name of the publication of the captured tables.
	// Defaults to "restlive" (and "_" and the schema's name, when it is
	// not public).
	Publication string
	// ConnString is what the reader streams with: a URL or key=value
	// connection string, to which it adds replication=database. Its role
	// needs the REPLICATION attribute. Defaults to the settings of db's
	// own connections, which then must be pgx's
	// (github.com/jackc/pgx/v5/stdlib, as gorm.io/driver/postgres opens
	// them).
	ConnString string
}

// A Dialect captures the changes of PostgreSQL tables from the server's
// write-ahead log. Pass it to capture.Install, capture.Remove,
// capture.NewReader and capture.NewHistory, as pgcapture.Dialect. Its
// methods may be called concurrently.
type Dialect struct {
	cfg   Config
	hooks *testHooks
}

var _ capture.Dialect = (*Dialect)(nil)

// testHooks let a test see or break what the reader does. Nil but in
// tests.
type testHooks struct {
	// collecting is called before the reader logs a batch of changes,
	// with their pks.
	collecting func(pks []string)
	// logged is called after the reader logs a batch, before it
	// publishes it; an error fails the reader as a crash would.
	logged func(rows []outbox.Row) error
	// fenced is called when History has written a fence.
	fenced func()
}

// New returns the dialect of capture from the write-ahead log.
func New(cfg Config) *Dialect { return &Dialect{cfg: cfg} }

func (d *Dialect) String() string { return "postgres (write-ahead log)" }

// Defaults: the stream wakes the reader, so the poll is only how often
// it checks its lock when idle; while changes keep coming it gathers
// them for a millisecond, logging them in one statement.
func (d *Dialect) Defaults() outbox.Defaults {
	return outbox.Defaults{PollInterval: time.Second, BatchDelay: time.Millisecond}
}

// Backend elects the reader: see session.go.
func (d *Dialect) Backend(db *sql.DB, s outbox.Settings) outbox.Backend {
	return &backend{d: d, db: db, s: s}
}

// Head is where the log stands: the reader logs each change before it
// publishes it, so every change up to it has committed, and every
// change a process has published is at or before it.
func (d *Dialect) Head(ctx context.Context, db *sql.DB) (live.Position, error) {
	c, err := readCursor(ctx, db)
	if err != nil {
		return live.Position{}, err
	}
	return live.Position{Epoch: c.epoch, Seq: uint64(c.seq)}, nil
}

// names are the slot's and the publication's, defaults resolved.
type names struct{ slot, publication string }

// A querier is a *sql.DB, *sql.Conn or *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

var slotPattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// names resolves the defaults against the database q is connected to.
func (d *Dialect) names(ctx context.Context, q querier) (names, error) {
	n := names{slot: d.cfg.Slot, publication: d.cfg.Publication}
	if n.slot == "" || n.publication == "" {
		var db, schema string
		if err := q.QueryRowContext(ctx, `SELECT current_database(), current_schema()`).Scan(&db, &schema); err != nil {
			return n, fmt.Errorf("read database name: %w", err)
		}
		suffix := ""
		if schema != "public" {
			suffix = "_" + schema
		}
		if n.slot == "" {
			n.slot = slotName("restlive_" + db + suffix)
		}
		if n.publication == "" {
			n.publication = "restlive" + suffix
		}
	}
	if !slotPattern.MatchString(n.slot) {
		return n, fmt.Errorf("bad slot name %q: lower-case letters, digits and _, up to 63", n.slot)
	}
	if n.publication == "" || len(n.publication) > 63 {
		return n, fmt.Errorf("bad publication name %q", n.publication)
	}
	return n, nil
}

// slotName makes s a valid slot name.
func slotName(s string) string {
	out := []byte(strings.ToLower(s))
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			out[i] = '_'
		}
	}
	if len(out) <= 63 {
		return string(out)
	}
	sum := sha256.Sum256([]byte(s))
	return string(out[:50]) + "_" + hex.EncodeToString(sum[:6])
}

// quoteIdent quotes one identifier, whatever it holds.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// lockKey is the advisory lock the reader of the slot $1 holds while it
// reads.
const lockKey = "hashtextextended('restlive_wal.' || $1, 0)"

// installLockKey is the advisory lock Install takes for its
// transaction, as pgcapture's does.
const installLockKey int64 = 0x7265_7374_6c69_7603 // "restliv" 3
