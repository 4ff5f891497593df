-- Password resets look accounts up by address, case-insensitively, for anyone who asks:
-- from an index, not a scan of every user (on SQLite, inside the write lock).
CREATE INDEX users_email_lower_idx ON users (lower(email));
