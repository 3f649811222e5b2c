#!/usr/bin/env bash
# The first deployment of docs/operations.md (section 1), rehearsed on one machine with the simulator standing in
# for Zoho: two databases on a local PostgreSQL, the ERP schema, then the four roles as processes of their own,
# the simulator delivering its admin edits to the receiver as Zoho's workflow rules would. Ctrl-C stops it all.
# Every setting below may be given from the environment instead (PGHOST, PGPORT, PGUSER, TDS_UI_PORT, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/tds ] && PATH="$PWD/.venv/bin:$PATH"

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
ERP_DB=${TDS_REHEARSAL_ERP_DB:-tds_erp}
export TDS_DATABASE_URL=${TDS_DATABASE_URL:-postgresql://$PGUSER@$PGHOST:$PGPORT/$ERP_DB}
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/.tds/rehearsal} DAGSTER_PG_DB=${DAGSTER_PG_DB:-tds_dagster}
export DAGSTER_PG_HOST=$PGHOST DAGSTER_PG_PORT=$PGPORT DAGSTER_PG_USERNAME=$PGUSER DAGSTER_PG_PASSWORD=${PGPASSWORD:-}
export TDS_BIND_HOST=${TDS_BIND_HOST:-127.0.0.1} TDS_CODE_SERVER_HOST=127.0.0.1
export TDS_CODE_SERVER_PORT=${TDS_CODE_SERVER_PORT:-4000} TDS_UI_PORT=${TDS_UI_PORT:-3000}
export TDS_WEBHOOK_PORT=${TDS_WEBHOOK_PORT:-8000}
export TDS_WEBHOOK_TOKEN=${TDS_WEBHOOK_TOKEN:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')}
# Section 2, with the simulator's credentials instead of a Zoho self client.
SIMULATOR_PORT=${TDS_SIMULATOR_PORT:-8765}
SIMULATOR=http://127.0.0.1:$SIMULATOR_PORT
export ZOHO_CLIENT_ID=sim-client ZOHO_CLIENT_SECRET=sim-secret ZOHO_REFRESH_TOKEN=sim-refresh
export ZOHO_ORGANIZATION_ID=10234695 ZOHO_ACCOUNTS_URL=$SIMULATOR ZOHO_API_URL=$SIMULATOR

# 1. Two databases: the ERP's and Dagster's.
for db in "$ERP_DB" "$DAGSTER_PG_DB"; do
  psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 || createdb "$db"
done
# 3. DAGSTER_HOME holds the repository's dagster.yaml.
mkdir -p "$DAGSTER_HOME/logs"
cp dagster.yaml "$DAGSTER_HOME/"
# 4. The ERP schema.
tds db upgrade

listening() {  # port, role: wait (bounded) until something listens on the port
  for _ in $(seq 120); do
    (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
    sleep 1
  done
  echo "the $2 does not listen on port $1 after 120 s: see $DAGSTER_HOME/logs/$2.log" >&2
  exit 1
}

trap 'trap - EXIT INT TERM; kill 0' EXIT INT TERM
tds simulator --host 127.0.0.1 --port "$SIMULATOR_PORT" --records 25 --webhook-token "$TDS_WEBHOOK_TOKEN" \
  --webhook-url "http://127.0.0.1:$TDS_WEBHOOK_PORT/webhooks/zoho" >"$DAGSTER_HOME/logs/simulator.log" 2>&1 &
# 5. The four roles (`tds roles` prints their commands), the code server first: the others find it at start.
tds role code-server >"$DAGSTER_HOME/logs/code-server.log" 2>&1 &
listening "$TDS_CODE_SERVER_PORT" code-server
for role in webserver daemon receiver; do
  tds role "$role" >"$DAGSTER_HOME/logs/$role.log" 2>&1 &
done
echo "TDS rehearsal: UI http://127.0.0.1:$TDS_UI_PORT, receiver http://127.0.0.1:$TDS_WEBHOOK_PORT, Zoho $SIMULATOR"
echo "logs in $DAGSTER_HOME/logs; Ctrl-C stops everything"
wait
