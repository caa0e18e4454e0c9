package pgwal

import (
	"testing"

	"github.com/restlive/restlive/capture"
	"github.com/restlive/restlive/capture/internal/capturetest"
	"github.com/restlive/restlive/capture/pgcapture"
	"github.com/restlive/restlive/live"
)

// TestSameAsTriggers makes the same writes to a table with group fields
// of many types under the triggers and from the write-ahead log: the
// changes are the same, values included (NULL, NaN, infinity, quotes,
// dates and times, written by a session in UTC), so that subscribers
// cannot tell which way they were captured.
func TestSameAsTriggers(t *testing.T) {
	fields := []string{"i", "n", "f", "b", "t", "u", "d", "ts", "tz", "tm", "tmz"}
	table := capture.Table{Model: "test.Typed", Table: "typed", PK: "id", Fields: fields}
	writes := []string{
		`INSERT INTO typed VALUES (1, 7, 1.50, 2.5, true, 'x', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
			'2024-01-02', '2024-01-02 03:04:05.5', '2024-01-02 03:04:05+02', '03:04:05', '03:04:05+02')`,
		`UPDATE typed SET f = 'NaN', n = 'NaN', b = false, t = 'quo"te\', i = -3 WHERE id = 1`,
		`UPDATE typed SET i = NULL, ts = 'infinity', tz = '-infinity', f = 1e300, n = 123456789012345678901234567890.5 WHERE id = 1`,
		`UPDATE typed SET id = 2 WHERE id = 1`,
		`DELETE FROM typed WHERE id = 2`,
	}
	run := func(d *capturetest.DB) []live.Change {
		t.Helper()
		d.Exec(t, `CREATE TABLE typed (id bigint PRIMARY KEY, i int, n numeric, f float8, b boolean, t text, u uuid,
			d date, ts timestamp, tz timestamptz, tm time, tmz timetz)`)
		d.Install(t, table)
		rec := capturetest.NewRecorder()
		capturetest.StartReader(t, d, capture.Config{Publisher: rec})
		for _, w := range writes {
			d.Exec(t, `BEGIN; SET LOCAL TIME ZONE 'UTC'; `+w+`; COMMIT`)
		}
		return rec.Wait(t, 6)
	}
	want := run(capturetest.OpenPostgres(t, pgcapture.Dialect))
	got := run(open(t))
	capturetest.CheckChanges(t, got, want)
}
