CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE CHECK (length(username) BETWEEN 1 AND 150),
    email TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    password TEXT NOT NULL,
    is_staff BOOLEAN NOT NULL DEFAULT 0 CHECK (is_staff IN (0, 1)),
    is_active BOOLEAN NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    date_joined TIMESTAMP NOT NULL
);

CREATE TABLE events (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    date DATE NOT NULL,
    organizer_id INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX events_date_id_idx ON events (date, id);
CREATE INDEX events_organizer_date_idx ON events (organizer_id, date);

CREATE TABLE attendances (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('Going', 'Maybe', 'Not Going')),
    UNIQUE (event_id, user_id)
);
CREATE INDEX attendances_user_idx ON attendances (user_id);

CREATE TABLE token_blacklist (
    jti TEXT PRIMARY KEY NOT NULL,
    user_id INTEGER REFERENCES users (id) ON DELETE CASCADE,
    expires_at TIMESTAMP NOT NULL,
    blacklisted_at TIMESTAMP NOT NULL
);
CREATE INDEX token_blacklist_expires_idx ON token_blacklist (expires_at);
