//! `ironvault serve`: repositories under one root (a directory or an `s3:`
//! location), each by name, over HTTPS (docs/server.md). Every request
//! carries a bearer token whose role (tokens.rs) decides what it may do to
//! each kind of object (access.rs); objects are stored through the engine's
//! own `Backend`, whose puts are atomic, and an upload is committed only
//! once its whole body has arrived, so a server killed mid-upload leaves no
//! partial object.

pub mod access;
mod handler;
pub mod tokens;

use ironvault_core::{Error, Result};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where the repositories live: a directory, or `s3:...` (each
    /// repository NAME is ROOT/NAME).
    pub root: String,
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; None serves plain HTTP,
    /// which is allowed only on a loopback address.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The token file (tokens.rs), re-read when it changes.
    pub tokens: PathBuf,
}

fn tls_config(cert: &std::path::Path, key: &std::path::Path) -> Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<std::result::Result<_, _>>())
        .map_err(|e| {
            Error::Usage(format!(
                "--tls-cert {}: not a PEM certificate file ({e})",
                cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "--tls-cert {}: no certificate in it",
            cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        Error::Usage(format!(
            "--tls-key {}: not a PEM private key file ({e})",
            key.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::Usage(format!(
                "--tls-cert/--tls-key: the key does not fit the certificate or is not usable ({e})"
            ))
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// Serve until SIGINT or SIGTERM. `ready` is called with the address
/// listened on once connections are accepted.
pub fn serve(opts: &ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    if opts.tls.is_none() && !opts.listen.ip().is_loopback() {
        return Err(Error::Usage(format!(
            "--listen {}: plain HTTP is allowed only on a loopback address; pass --tls-cert and --tls-key",
            opts.listen
        )));
    }
    if opts.root.starts_with("rest:") {
        return Err(Error::Usage(
            "--root: use a directory or an s3: location".into(),
        ));
    }
    if !opts.root.starts_with("s3:") && !std::path::Path::new(&opts.root).is_dir() {
        return Err(Error::Usage(format!(
            "--root {}: no such directory; create it first",
            opts.root
        )));
    }
    // Fail now, not on the first request, on an unreadable token file.
    tokens::TokenFile::load(&opts.tokens, false)?;
    let acceptor = match &opts.tls {
        Some((c, k)) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(c, k)?))),
        None => None,
    };
    let state = Arc::new(handler::State::new(opts.root.clone(), opts.tokens.clone()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("ironvault-serve")
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the server runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| {
                Error::Usage(format!(
                    "--listen {}: cannot listen there ({e})",
                    opts.listen
                ))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("listening socket: {e}")))?;
        ready(addr);
        loop {
            // SIGINT/SIGTERM (the CLI's handler) ends the server between
            // connections; uploads in flight are lost whole, never half.
            if ironvault_core::interrupt::requested() {
                return Ok(());
            }
            let accepted =
                tokio::time::timeout(std::time::Duration::from_millis(200), listener.accept())
                    .await;
            let (stream, _) = match accepted {
                Err(_) => continue,
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    eprintln!("warning: accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match acceptor {
                    Some(a) => match a.accept(stream).await {
                        Ok(tls) => handler::serve_connection(state, tls).await,
                        Err(e) => eprintln!("warning: TLS handshake failed: {e}"),
                    },
                    None => handler::serve_connection(state, stream).await,
                }
            });
        }
    })
}
