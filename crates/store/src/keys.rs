//! Site keys: generated from the OS's random source, shown once, stored only hashed.

use std::io::Read;

use sha2::{Digest, Sha256};

use crate::StoreError;

/// A freshly made key pair, in clear text: the only time the keys are visible.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SiteKeys {
    pub public_key: String,
    pub secret_key: String,
}

fn random_hex(bytes: usize) -> Result<String, StoreError> {
    let path = std::path::Path::new("/dev/urandom");
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut buffer)).map_err(crate::io_error(path))?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

impl SiteKeys {
    pub fn generate() -> Result<SiteKeys, StoreError> {
        Ok(SiteKeys {
            public_key: format!("up_pub_{}", random_hex(16)?),
            secret_key: format!("up_sec_{}", random_hex(24)?),
        })
    }
}

/// SHA-256 of a key, hex encoded, as stored in the site record.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}
