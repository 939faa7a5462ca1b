//! How settings are shown to people: `check-config`'s TOML and `HttpConfig`'s `Debug`, with
//! secrets (the HTTP token, secret-looking librdkafka properties) masked.

use super::{HttpConfig, Settings};

/// librdkafka properties whose values must never be printed.
pub fn is_secret(key: &str) -> bool {
    // `sasl.oauthbearer.config` holds client credentials (e.g. `clientSecret=…`).
    ["password", "secret", "key.pem", "token", "jaas", "oauthbearer.config", "private.key"].iter().any(|w| key.contains(w))
}

impl Settings {
    /// The resolved configuration as TOML, for `check-config`, with secrets masked.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if !shown.http.token.is_empty() {
            shown.http.token = "***".into();
        }
        for (k, v) in shown.kafka.properties.iter_mut() {
            if is_secret(k) {
                *v = "***".into();
            }
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("listen", &self.listen)
            .field("token", &if self.token.is_empty() { "" } else { "***" })
            .field("stale_after", &self.stale_after)
            .field("header_timeout", &self.header_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}


#[cfg(test)]
mod tests {
    use crate::config::{env, load};

    #[test]
    fn oauthbearer_config_is_masked() {
        let s = load(
            None,
            env(&[("KIZASHI__KAFKA__PROPERTIES__SASL_OAUTHBEARER_CONFIG", "principal=kz clientSecret=s3cr3t")]),
        )
        .unwrap();
        assert!(!s.to_toml().contains("s3cr3t"));
    }
}
