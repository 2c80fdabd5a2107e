#!/bin/sh
# One-shot job (temporalio/admin-tools image): creates Temporal's two schemas on a new database, or brings
# them up to the schema version of the pinned admin-tools image. Safe to run on every `up`: setup-schema
# leaves a database that already has a newer version alone, and update-schema applies only what is
# missing. Run it again after bumping TEMPORAL_VERSION, before the new server starts (compose does).
#
# The databases themselves come from deploy/postgres/init.sql: `temporal-sql-tool create` would fail on
# the second run (PostgreSQL has no CREATE DATABASE IF NOT EXISTS). The password is read from
# SQL_PASSWORD in the environment, so it is never on a command line.
set -eu

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep postgresql -p 5432 -u temporal "$@"
}

for store in temporal:temporal temporal_visibility:visibility; do
    database=${store%%:*}
    schema=${store#*:}
    echo "temporal-schema: $database"
    sql_tool --db "$database" setup-schema -v 0.0
    sql_tool --db "$database" update-schema -d "/etc/temporal/schema/postgresql/v12/$schema/versioned"
done
echo "temporal-schema: done"
