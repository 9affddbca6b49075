//! The site record: identity, time zone, currency, hashed keys and settings.

use serde::{Deserialize, Serialize};
use upshot_model::site::{validate_currency, validate_site_id, validate_time_zone};
use upshot_model::Settings;

use crate::keys::{hash_key, SiteKeys};
use crate::{io_error, Store, StoreError};

pub(crate) const SITE_FILE: &str = "site.json";
/// Owner read and write only.
const SITE_FILE_MODE: u32 = 0o600;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteRecord {
    pub site: String,
    pub timezone: String,
    pub currency: String,
    pub public_key_sha256: String,
    pub secret_key_sha256: String,
    #[serde(default)]
    pub settings: Settings,
    /// When true, the public (browser) key may not send `order` or `refund` events:
    /// they must come from the shop's backend, with the secret key.
    #[serde(default)]
    pub orders_from_backend: bool,
    /// The shared secret Shopify signs its webhooks with (`X-Shopify-Hmac-Sha256`);
    /// the Shopify endpoint is closed while it is unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shopify_webhook_secret: Option<String>,
}

impl Store {
    /// Creates a site and returns its keys in clear text (stored only hashed).
    pub fn create_site(
        &self,
        site: &str,
        timezone: &str,
        currency: &str,
    ) -> Result<(SiteRecord, SiteKeys), StoreError> {
        validate_site_id(site)?;
        validate_time_zone(timezone)?;
        validate_currency(currency)?;
        let dir = self.site_dir(site);
        if dir.join(SITE_FILE).exists() {
            return Err(StoreError::SiteExists(site.to_string()));
        }
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        let keys = SiteKeys::generate()?;
        let record = SiteRecord {
            site: site.to_string(),
            timezone: timezone.to_string(),
            currency: currency.to_string(),
            public_key_sha256: hash_key(&keys.public_key),
            secret_key_sha256: hash_key(&keys.secret_key),
            settings: Settings::default(),
            orders_from_backend: false,
            shopify_webhook_secret: None,
        };
        self.save_site(&record)?;
        Ok((record, keys))
    }

    pub fn load_site(&self, site: &str) -> Result<SiteRecord, StoreError> {
        validate_site_id(site)?;
        let path = self.site_dir(site).join(SITE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::UnknownSite(site.to_string()))
            }
            Err(error) => return Err(io_error(&path)(error)),
        };
        serde_json::from_str(&text).map_err(|error| StoreError::Corrupt {
            path: path.clone(),
            line: error.line() as u64,
            reason: error.to_string(),
        })
    }

    /// Writes the record atomically (temporary file, fsync, rename), readable by its
    /// owner only: it holds the Shopify webhook secret in clear.
    pub fn save_site(&self, record: &SiteRecord) -> Result<(), StoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.site_dir(&record.site);
        let path = dir.join(SITE_FILE);
        let temporary = dir.join("site.json.tmp");
        let text = serde_json::to_string_pretty(record).expect("a site record always serializes");
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SITE_FILE_MODE)
            .open(&temporary)
            .map_err(io_error(&temporary))?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_error(&temporary))?;
        std::fs::rename(&temporary, &path).map_err(io_error(&path))?;
        Ok(())
    }

    /// Site files written by versions before 0600 was the rule are narrowed to it.
    pub(crate) fn restrict_site_files(&self) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt;
        for site in self.site_ids()? {
            let path = self.site_dir(&site).join(SITE_FILE);
            let mode = std::fs::metadata(&path).map_err(io_error(&path))?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(SITE_FILE_MODE))
                    .map_err(io_error(&path))?;
            }
        }
        Ok(())
    }

    /// Changes one setting (or the time zone) of a site, validated.
    pub fn set_site_setting(&self, site: &str, key: &str, value: &str) -> Result<SiteRecord, StoreError> {
        let mut record = self.load_site(site)?;
        if key == "timezone" {
            validate_time_zone(value)?;
            record.timezone = value.to_string();
        } else if key == "orders_from_backend" {
            record.orders_from_backend = match value {
                "true" => true,
                "false" => false,
                _ => {
                    let reason = format!("{value:?} is not true or false");
                    return Err(upshot_model::site::SettingError::Value { key: key.to_string(), reason }.into());
                }
            };
        } else if key == "shopify_webhook_secret" {
            record.shopify_webhook_secret = (!value.is_empty()).then(|| value.to_string());
        } else {
            record.settings.set(key, value)?;
        }
        self.save_site(&record)?;
        Ok(record)
    }
}
