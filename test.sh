#!/usr/bin/env bash
# Runs every check and test of the project: formatting, go vet,
# staticcheck, and `go test -race ./...` against real PostgreSQL, Redis, NATS and Chromium.
# What is missing is installed (Debian packages, as root or with sudo) and
# started on loopback for the run, then stopped. Extra arguments go to
# `go test`, e.g. ./test.sh -run TestHub ./live/ (and skip the client's tests).
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '== %s\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		log "need root to run: $*"; return 1
	fi
}

# Debian packages the tests need, installed only when missing.
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v sqlite3 >/dev/null || missing+=(sqlite3)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/restlive-test.XXXXXX)
chmod 755 "$work" # the postgres user must reach its cluster inside
cleanup() {
	[ -n "${pgctl:-}" ] && $pgctl stop -m immediate >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

# A throwaway PostgreSQL cluster on a free loopback port. initdb refuses to
# run as root, so as root the cluster belongs to the postgres user.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgport=$(free_port)
run_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
log "starting PostgreSQL on 127.0.0.1:$pgport"
run_pg "$pgbin/initdb" -D "$work/pg/data" -A trust -U postgres >/dev/null
pgctl="run_pg $pgbin/pg_ctl -D $work/pg/data"
# wal_level=logical for capture from the write-ahead log (capture/pgwal),
# whose tests each hold a replication slot and a WAL sender. A slot sends
# only what the server has flushed, which with synchronous_commit=off the
# WAL writer does every wal_writer_delay (200ms by default).
pgopts="-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=300"
pgopts+=" -c wal_level=logical -c max_replication_slots=100 -c max_wal_senders=100 -c wal_writer_delay=10ms"
$pgctl -w -l "$work/pg/log" -o "$pgopts" start >/dev/null
export RESTLIVE_POSTGRES_URL="postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable"
export RESTLIVE_REDIS_SERVER="$(command -v redis-server)"

# nats-server, built from its Go module (not a requirement of this one).
natsbin="${XDG_CACHE_HOME:-$HOME/.cache}/restlive/nats-server-v2.15.2"
if [ ! -x "$natsbin/nats-server" ]; then
	log "building nats-server"
	GOBIN="$natsbin" go install github.com/nats-io/nats-server/v2@v2.15.2
fi
export RESTLIVE_NATS_SERVER="$natsbin/nats-server"
export RESTLIVE_CHROMIUM=/usr/bin/chromium

# playwright-core for the browser test, from the npm registry.
for dir in $(find . -name package.json -not -path '*/node_modules/*' -printf '%h\n'); do
	[ -d "$dir/node_modules" ] || (cd "$dir" && npm install --no-audit --no-fund --silent)
done

# Every module of the workspace (go.work): the library, the example app,
# the benchmark, and the tests that need what the library does not (the
# PostgreSQL GORM driver), kept apart so that they are no requirements of
# the library's users.
modules=$(go list -m -f '{{.Dir}}' | sed "s|^$PWD|.|; s|$|/...|")

log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then log "gofmt would change: $unformatted"; exit 1; fi
log "go vet"
go vet $modules
if [ $# -eq 0 ]; then # a whole run; a run of chosen tests skips the slow linter
	log "staticcheck"
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $modules
fi

log "go test -race"
whole=$([ $# -eq 0 ] && echo yes || true)
if [ -n "$whole" ]; then set -- $modules; fi
go test -race -timeout 20m "$@"

# A short, bounded run of each fuzz target: the protocol codec, the layer
# codec, value parsing by column type, and frames through a router with a
# GORM view on SQLite, and sqlview's conditions. A crasher is written under the package's
# testdata/fuzz and fails the run. The runs are counted in executions,
# about 10 s each here: with a duration, Go 1.26's fuzzing coordinator can
# fail a run that found nothing with "context deadline exceeded" when the
# time runs out under load (golang/go#75804, fixed in Go 1.27).
# RESTLIVE_FUZZTIME (a count, 100000x, or a duration) overrides them.
if [ -n "$whole" ]; then
	while read -r pkg target count; do
		budget=${RESTLIVE_FUZZTIME:-$count}
		log "fuzz $target ($pkg, $budget)"
		go test -run '^$' -fuzz "^$target\$" -fuzztime "$budget" "$pkg"
	done <<-EOF
		./live FuzzDecodeMessage 30000x
		./layer/internal/fanout FuzzDecode 100000x
		./internal/model FuzzParse 60000x
		./gormlive FuzzSubscribe 5000x
		./sqlview FuzzCondition 10000x
	EOF
fi

# The TypeScript client (client/): type-check and tests, against the
# example app built from this checkout.
if [ -n "$whole" ]; then
	log "client: tsc and node --test"
	(cd client && npm test --silent)
fi
