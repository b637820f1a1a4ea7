//! The HTTP client's TLS: rustls with the `ring` crypto provider, installed once per process.
//!
//! `reqwest` is built without a bundled provider (the default, aws-lc-rs, is a large C build), so
//! every client in the workspace starts from [`http_client_builder`], which installs `ring` as the
//! process default before the first client is built. Certificates are verified as before.

/// A `reqwest` client builder whose TLS uses the `ring` provider (installed on first use).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    install_ring_provider();
    reqwest::Client::builder()
}

/// Installs `ring` as the process's rustls provider unless one is installed already.
pub fn install_ring_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another thread installing the same provider is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_client_that_verifies_certificates() {
        let client = http_client_builder().build();
        assert!(client.is_ok(), "{client:?}");
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
