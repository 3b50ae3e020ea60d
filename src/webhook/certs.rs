//! The webhook's serving certificate: read from PEM files at start, and read again when they
//! change (cert-manager renews it by updating the Secret, which the kubelet swaps in), so a
//! renewal needs no restart. Each TLS handshake takes the certificate in force then.

use crate::reload::watch::{settle, FileWatch};
use arc_swap::ArcSwap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;

/// The certificate and key files, and the pair last read from them.
pub struct Certs {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for Certs {
    /// Names the files only: the key stays out of every output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certs")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Certs {
    /// Reads the pair, or says which file is wrong and why.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Certs>, String> {
        Ok(Arc::new(Certs {
            current: ArcSwap::from_pointee(read(cert, key)?),
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }))
    }

    /// A TLS server config that asks this for its certificate at each handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, String> {
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Reads the files again after each change; never returns. A pair that does not read (a
    /// half-written renewal) keeps the previous one in force.
    pub async fn follow(&self) {
        let (tx, mut changed) = mpsc::unbounded_channel();
        let _watch = FileWatch::new(&[self.cert.clone(), self.key.clone()], tx);
        while changed.recv().await.is_some() {
            settle(&mut changed).await;
            match read(&self.cert, &self.key) {
                Ok(pair) => {
                    self.current.store(Arc::new(pair));
                    tracing::info!("webhook certificate reloaded");
                }
                Err(e) => tracing::warn!("webhook certificate kept as it was: {e}"),
            }
        }
        // Not watched (the warning is logged): the certificate stays as it was read.
        std::future::pending().await
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The certificate chain and its private key, checked to belong together.
fn read(cert: &Path, key: &Path) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert.display()));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let signer =
        ring::sign::any_supported_type(&private).map_err(|e| format!("{}: {e}", key.display()))?;
    let pair = CertifiedKey::new(chain, signer);
    pair.keys_match()
        .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
    Ok(pair)
}
