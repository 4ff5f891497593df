# Multi-stage build: SQLite, libpq and OpenSSL are compiled from the crates' bundled
# sources, so the runtime image needs only libc and CA certificates.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock diesel.toml ./
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin rally

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data rally \
    && mkdir -p /data && chown rally /data
COPY --from=build /src/target/release/rally /usr/local/bin/rally
USER rally
WORKDIR /data
ENV RALLY_BIND=0.0.0.0:8000 \
    DATABASE_URL=/data/rally.sqlite3
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/8000 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["rally"]
CMD ["serve"]
