-- The databases of the compose stack, on one PostgreSQL server: `temporal` and `temporal_visibility`
-- (Temporal's persistence and visibility stores) and `batchway` (batchway's own tables), each owned by
-- its own role so that neither application can touch the other's data.
--
-- The postgres image runs this once, as the superuser, on the first start of an empty data volume
-- (/docker-entrypoint-initdb.d). Changing it later does nothing to an existing volume: change the roles
-- or passwords by hand then (ALTER ROLE ... PASSWORD ...).
--
-- Passwords come from the container's environment (psql's \getenv, PostgreSQL 15+), so they live only in
-- .env. Schemas are not made here: the temporal-schema job and batchway's own migrations make them.
\set ON_ERROR_STOP on

\getenv temporal_password TEMPORAL_DB_PASSWORD
\getenv batchway_password APP_DB_PASSWORD
-- An unset variable would otherwise surface as a puzzling syntax error below.
\if :{?temporal_password}
\else
    \warn 'TEMPORAL_DB_PASSWORD is not set in the postgresql container'
    SELECT 1 / 0;
\endif
\if :{?batchway_password}
\else
    \warn 'APP_DB_PASSWORD is not set in the postgresql container'
    SELECT 1 / 0;
\endif

CREATE ROLE temporal LOGIN PASSWORD :'temporal_password';
-- Owning the databases gives the role CREATE on their public schema (not granted to everyone since
-- PostgreSQL 15), which Temporal's schema tool needs.
CREATE DATABASE temporal OWNER temporal;
CREATE DATABASE temporal_visibility OWNER temporal;

CREATE ROLE batchway LOGIN PASSWORD :'batchway_password';
CREATE DATABASE batchway OWNER batchway;

-- Every role may connect to every database by default; only each database's owner may here.
REVOKE ALL ON DATABASE temporal, temporal_visibility, batchway FROM PUBLIC;

-- Temporal's visibility schema creates btree_gin itself when it is missing; creating it here as the
-- superuser keeps that step from depending on the extension being "trusted" for a non-superuser.
\connect temporal_visibility
CREATE EXTENSION IF NOT EXISTS btree_gin;
