DROP TABLE account_tokens;
ALTER TABLE users DROP COLUMN is_verified;
