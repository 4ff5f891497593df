-- Issue 9: every refresh token belongs to a session (its rotation family), and a password
-- change makes every token issued before it fail.
ALTER TABLE users ADD COLUMN tokens_valid_after TIMESTAMP;

-- `current_jti` is the one refresh token of the session that may still be used: presenting
-- an older one is a replay, which ends the session.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    user_agent TEXT NOT NULL DEFAULT '' CHECK (length(user_agent) <= 500),
    ended_at TIMESTAMP,
    current_jti TEXT NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id, last_used_at);
