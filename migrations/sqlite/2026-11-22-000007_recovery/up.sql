-- Issue 9: password reset and email verification by mailed, single-use tokens. Accounts
-- that exist already start unverified: nobody has proved they own the address.
ALTER TABLE users ADD COLUMN is_verified BOOLEAN NOT NULL DEFAULT 0 CHECK (is_verified IN (0, 1));

-- Only the SHA-256 of a token is kept, so a database leak reveals no usable link. `email`
-- is the address the token was mailed to: the per-address mail limit counts by it.
CREATE TABLE account_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('password_reset', 'email_verification')),
    token_sha256 TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_email_idx ON account_tokens (lower(email), purpose, created_at);
