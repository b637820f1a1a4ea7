# Stand-in for rust:1.95-slim-bookworm (scripts/compose-smoke): the debian:bookworm-slim stand-in,
# gcc and libc headers as in the official slim image, and this machine's Rust toolchain copied in
# (the build context is a folder the script lays out: toolchain/ and ca.crt).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/rust
# The machine reaches crates.io through an intercepting proxy whose CA is in its own bundle; a
# test-environment fact only (the official image needs nothing of the kind).
COPY ca.crt /usr/local/share/compose-smoke-ca.crt
RUN mkdir -p /usr/local/cargo/bin \
 && for b in cargo rustc rustdoc; do ln -s /usr/local/rust/bin/$b /usr/local/cargo/bin/$b; done
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HTTP_CAINFO=/usr/local/share/compose-smoke-ca.crt
