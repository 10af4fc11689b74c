#!/usr/bin/env bash
# Proves the module's migrations with Prisma's own schema engine, the way users run them:
# `migrate deploy` on an empty database, `migrate status` clean, `migrate diff` from the migrations
# to prisma/schema empty (no drift), and the same deploy into a non-default PostgreSQL schema.
# `prisma migrate` cannot download its native engine here; Prisma 7.10.1's WebAssembly build of the
# same engine runs through `prisma-engine` (set PRISMA_ENGINE, or it is looked for beside the repo).
set -euo pipefail
cd "$(dirname "$0")/.."

engine="${PRISMA_ENGINE:-}"
for candidate in "$engine" ../shared/tools/prisma-engine /work/shared/tools/prisma-engine; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then engine="$candidate"; break; fi
done
if [[ -z "$engine" || ! -x "$engine" ]]; then
  echo "prove-migrations: Prisma's schema engine runner (prisma-engine) was not found; set PRISMA_ENGINE" >&2
  exit 1
fi

server="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
url_of() { node -e 'const u = new URL(process.argv[1]); u.pathname = "/" + process.argv[2]; u.search = process.argv[3] ?? ""; console.log(u.toString())' "$server" "$@"; }
main="po_prove_$$"
shadow="po_prove_$$_shadow"
other="po_prove_$$_schema"
psql_admin() { psql "$server" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
cleanup() { for db in "$main" "$shadow" "$other"; do psql_admin "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true; done; }
trap cleanup EXIT
psql_admin "CREATE DATABASE $main"
psql_admin "CREATE DATABASE $shadow"
psql_admin "CREATE DATABASE $other"

export DATABASE_URL SHADOW_DATABASE_URL
DATABASE_URL="$(url_of "$main")"
SHADOW_DATABASE_URL="$(url_of "$shadow")"
expected=$(ls prisma/migrations | grep -v '\.toml$' | sort | paste -sd, -)

echo "--- deploy on an empty database"
out=$("$engine" deploy)
echo "$out"
[[ "$out" == *"[\"${expected//,/\",\"}\"]"* ]] || { echo "deploy did not apply exactly: $expected" >&2; exit 1; }

echo "--- status"
status=$("$engine" status)
echo "$status"
node -e 'const s = JSON.parse(process.argv[1]); if (s.history !== null || s.failedMigrationNames.length || s.editedMigrationNames.length || !s.hasMigrationsTable) { console.error("status is not clean"); process.exit(1) }' "$status"

echo "--- diff from the migrations to prisma/schema (must be empty)"
diff=$("$engine" diff-migrations)
echo "$diff"
[[ "$diff" == "-- This is an empty migration." ]] || { echo "the migrations and prisma/schema differ" >&2; exit 1; }

echo "--- deploy into a non-default schema (search_path)"
psql "$(url_of "$other")" -qc "CREATE SCHEMA app"
out=$(DATABASE_URL="$(url_of "$other" "?options=-c%20search_path%3Dapp")" "$engine" deploy)
echo "$out"
tables=$(psql "$(url_of "$other")" -qAt -c "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'app'")
[[ "$tables" == *operations* && "$tables" == *operation_batches* ]] || { echo "tables not in schema app: $tables" >&2; exit 1; }
echo "migrations proven with Prisma's schema engine ($("$engine" version 2>/dev/null | head -1))"
