-- Registers the admin API token of the Secret trellis-admin-token, so that
-- the token deploy/generate-secrets wrote for the operator works with the
-- `trellis` client. trellisd's init container runs it with psql after
-- `trellisd migrate`:
--
--   psql --no-psqlrc --set=ON_ERROR_STOP=1 --set=token_file=FILE \
--        --file=register-admin-token.sql --dbname=DATABASE_URL
--
-- Why not trellisd's bootstrap_admin_token_file: trellisd creates an admin
-- token only when that file is MISSING, and leaves an existing file alone
-- without registering the token in it. A Secret mounted read-only always
-- exists, so its token would never be registered (docs/deploying.md).
--
-- The token is stored as trellisd stores every API token: only its SHA-256
-- (api_token.token_hash), under the name `deploy-admin`, role admin. Running
-- this again with the same token changes nothing, and a token revoked with
-- `trellis tokens revoke deploy-admin` stays revoked; a NEW token in the
-- Secret (rotation) replaces the old one, which stops working.
-- Tests/DeployTests runs this very file against a migrated database and
-- authenticates with the token through TrellisStore.

\set token `cat :'token_file'`

SELECT length(btrim(:'token', E' \t\r\n')) >= 32 AS token_ok \gset
\if :token_ok
\else
    DO 'BEGIN RAISE EXCEPTION ''register-admin-token: the admin token file holds no token of 32 characters or more''; END';
\endif

INSERT INTO api_token (name, role, token_hash)
VALUES ('deploy-admin', 'admin', sha256(convert_to(btrim(:'token', E' \t\r\n'), 'UTF8')))
ON CONFLICT (name) DO UPDATE
    SET token_hash = EXCLUDED.token_hash, revoked_at = NULL, created_at = now(), last_used_at = NULL
    WHERE api_token.token_hash IS DISTINCT FROM EXCLUDED.token_hash;
