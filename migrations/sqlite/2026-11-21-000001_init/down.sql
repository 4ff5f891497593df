DROP TABLE token_blacklist;
DROP TABLE attendances;
DROP TABLE events;
DROP TABLE users;
