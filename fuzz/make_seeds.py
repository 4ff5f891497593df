#!/usr/bin/env python3
"""Writes the committed seed corpus (corpus/<target>/seed-*): realistic inputs, valid and not.

Tokens are signed with the fuzz targets' test secret (see fuzz_targets/tokens.rs); valid ones
expire in 2100. Run from anywhere: python3 fuzz/make_seeds.py
"""
import base64, hashlib, hmac, json, os, pathlib

ROOT = pathlib.Path(__file__).resolve().parent / "corpus"
SECRET = b"rally-fuzz-test-secret-0123456789"
OTHER = b"another-secret-another-secret-xx"
FAR = 4102444800  # 2100-01-01
PAST = 1000000000  # 2001-09-09


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, header=None, secret=SECRET, alg="HS256"):
    header = header or {"alg": alg, "typ": "JWT"}
    msg = f"{b64(json.dumps(header, separators=(',', ':')).encode())}.{b64(json.dumps(claims, separators=(',', ':')).encode())}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return f"{msg}.{b64(hmac.new(secret, msg.encode(), digest).digest())}"


def claims(**kw):
    c = {"token_type": "access", "exp": FAR, "iat": 1767225600,
         "jti": "5f0c8a3e9b2d4c61a7e8f9d0c1b2a394", "user_id": "7"}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


def write(target, name, data):
    path = ROOT / target / f"seed-{name}"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


access = jwt(claims())
refresh = jwt(claims(token_type="refresh", jti="a1b2c3d4e5f60718293a4b5c6d7e8f90"))
tampered = access.split(".")
tampered[1] = b64(json.dumps(claims(user_id="1"), separators=(",", ":")).encode())
tokens = {
    "access": access,
    "refresh": refresh,
    "bearer-header": f"Bearer {access}",
    "bearer-tabs": f"  Bearer\t{access}  ",
    "bearer-extra": f"Bearer {access} extra",
    "bearer-empty": "Bearer",
    "bearer-lowercase": f"bearer {access}",
    "basic": "Basic YWRhOmFuYWx5dGljYWwtZW5naW5lLTE4NDM=",
    "expired": jwt(claims(exp=PAST)),
    "other-key": jwt(claims(), secret=OTHER),
    "tampered": ".".join(tampered),
    "alg-none": b64(b'{"alg":"none","typ":"JWT"}') + "." + access.split(".")[1] + ".",
    "hs512": jwt(claims(), alg="HS512"),
    "numeric-user": jwt(claims(user_id=7)),
    "no-user": jwt(claims(user_id=None)),
    "no-jti": jwt(claims(jti=None)),
    "bad-type": jwt(claims(token_type="sliding")),
    "four-parts": access + ".x",
    "garbage": "eyJhbGciOiJIUzI1NiJ9.not-base64!.sig",
    # Starting with `{`: claims the harness signs itself (optionally after a header line).
    "signed-claims": json.dumps(claims()),
    "signed-refresh-numeric": json.dumps(claims(token_type="refresh", user_id=42)),
    "signed-header-and-claims": '{"alg":"HS256","typ":"JWT","kid":"1"}\n' + json.dumps(claims()),
    "signed-alg-none": '{"alg":"none"}\n' + json.dumps(claims()),
    "signed-expired": json.dumps(claims(exp=PAST)),
    "signed-float-exp": json.dumps(claims(exp=4102444800.5)),
    "signed-string-exp": json.dumps(claims(exp="4102444800")),
    "signed-huge-exp": json.dumps(claims(exp=18446744073709551615)),
    "signed-aud": json.dumps(claims(aud="rally")),
    "signed-nbf": json.dumps(claims(nbf=FAR)),
    "signed-bad-user": json.dumps(claims(user_id="7; DROP TABLE users")),
    "signed-big-user": json.dumps(claims(user_id="99999999999999999999")),
    "signed-empty-jti": json.dumps(claims(jti="")),
    "signed-null-type": json.dumps(claims(token_type=None)),
}
for name, data in tokens.items():
    write("tokens", name, data)

queries = {
    "readme": "search=rust&date_after=2026-01-01&ordering=-date&limit=20",
    "empty": "",
    "paging": "limit=10&offset=20",
    "all": "search=%22rust+meetup%22,berlin&organizer=1&date_after=2026-1-5&date_before=2026-12-31&ordering=name,-date&limit=1000&offset=0",
    "capped": "limit=5000",
    "repeated": "limit=x&limit=5&ordering=date&ordering=-name",
    "bad": "limit=x&offset=-1&ordering=size&date_after=2026-13-01&organizer=me",
    "escapes": "search=caf%C3%A9%20%E2%98%95&organizer=%2B7&ordering=%20-date%20",
    "bad-escape": "search=%ZZ%C3&limit=%31%30",
    "many-terms": "search=a+b+c+d+e+f+g+h+i+j+k",
    "huge-offset": "offset=9223372036854775807&limit=1000",
    "sqli": "search=%27%3B+DROP+TABLE+events%3B--&ordering=date%3B--",
    "unknown": "page=2&format=json&search=",
    "leap": "date_after=2028-02-29&date_before=2027-02-29",
}
for name, data in queries.items():
    write("list_query", name, data)

bodies = {
    "event": {"name": "Rust meetup", "date": "2026-12-01"},
    "event-padded": {"name": "  Rust meetup  ", "date": " 2026-1-5 "},
    "event-blank": {"name": "   ", "date": "2026-02-30"},
    "event-null": {"name": None, "date": None},
    "event-number": {"name": 2026, "date": 20261201},
    "event-long": {"name": "x" * 101, "date": "2026-12-01T10:00"},
    "event-nul": {"name": "a\u0000b", "date": "2026-12-01"},
    "event-organizer": {"name": "Rust meetup", "date": "2026-12-01", "organizer": 1, "id": "x"},
    "status-going": {"status": "Going"},
    "status-not-going": {"status": "Not Going"},
    "status-bad": {"status": "going"},
    "status-number": {"status": 1},
    "register": {"username": "ada", "email": "ada@example.com", "password": "analytical-engine-1843"},
    "register-bad": {"username": "ada lovelace", "email": "ada@example", "password": "password"},
    "register-similar": {"username": "lovelace", "email": "Ada@Example.COM", "password": "lovelace1"},
    "register-numeric": {"username": "bob", "email": "bob@[127.0.0.1]", "password": 12345678901},
    "register-unicode": {"username": "zoë.ä+1", "email": "\"zoe\"@bücher.example", "password": "  spaces count  "},
    "login": {"username": "ada", "password": "analytical-engine-1843"},
    "refresh": {"refresh": refresh},
    # Regression: 137 chars as sent, 261 once the domain is lower-cased ('İ' → 'i̇'), which
    # passed validation and then failed the users.email CHECK with a 500.
    "register-idn-email-too-long": {"username": "ada", "email": "a@" + ".".join(["\u0130" * 31] * 4) + ".example", "password": "correct horse battery"},
}
for name, data in bodies.items():
    write("json_body", name, json.dumps(data, ensure_ascii=False))
raw = {
    "empty": "",
    "whitespace": " \n\t ",
    "array": "[1, 2]",
    "null": "null",
    "string": "\"Rust meetup\"",
    "truncated": "{\"name\": \"Rust",
    "deep": "[" * 200 + "]" * 200,
    "dupe-keys": "{\"name\": \"a\", \"name\": \"b\", \"date\": \"2026-12-01\"}",
    "big-number": "{\"name\": 1e400}",
    "escapes": "{\"name\": \"\\ud83e\\udd80 crab \\u0000\", \"date\": \"\\u0032026-12-01\"}",
}
for name, data in raw.items():
    write("json_body", name, data)
