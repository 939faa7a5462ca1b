//! `ByteSize`: a size in bytes, read from a number or a string with a unit (`512MiB`, `800MB`).

use serde::{Deserialize, Serialize};

/// A size in bytes, read as a number of bytes or a string with a unit: `B`, `KiB`/`MiB`/`GiB`/
/// `TiB` (powers of 1024) or `KB`/`MB`/`GB`/`TB` (powers of 1000), case-insensitive, e.g.
/// `"512MiB"`, `"1.5GiB"`, `"800 MB"`, `1073741824`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
        let (num, unit) = (&t[..split], t[split..].trim());
        let bad = || format!("`{text}` is not a size such as 512MiB, 1GiB or 800MB");
        let n: f64 = num.parse().map_err(|_| bad())?;
        let mult: f64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kib" => 1024.0,
            "mib" => 1048576.0,
            "gib" => 1073741824.0,
            "tib" => 1099511627776.0,
            "kb" => 1e3,
            "mb" => 1e6,
            "gb" => 1e9,
            "tb" => 1e12,
            _ => return Err(bad()),
        };
        let bytes = n * mult;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(bad());
        }
        Ok(ByteSize(bytes.round() as u64))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let b = self.0;
        for (unit, m) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if b >= m && b % m == 0 {
                return write!(f, "{}{unit}", b / m);
            }
        }
        write!(f, "{b}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as \"512MiB\" or a number of bytes")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v).map(ByteSize).map_err(|_| E::custom(format!("{v} is negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ByteSize, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{env, load, ByteSize};

    #[test]
    fn memory_budget_takes_bytes_or_units_and_refuses_the_old_account_count() {
        for (text, bytes) in [
            ("512MiB", 512u64 << 20),
            ("1GiB", 1 << 30),
            ("1.5GiB", 3 << 29),
            ("800 MB", 800_000_000),
            ("2gb", 2_000_000_000),
            ("67108864", 64 << 20),
        ] {
            let s = load(None, env(&[("KIZASHI__STATE__MEMORY_BUDGET", text)])).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(s.state.memory_budget, ByteSize(bytes), "{text}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, "[state]\nmemory_budget = 1073741824\n").unwrap();
        assert_eq!(load(Some(&path), env(&[])).unwrap().state.memory_budget, ByteSize(1 << 30));
        assert_eq!(ByteSize(512 << 20).to_string(), "512MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");

        for (text, want) in [("lots", "not a size"), ("12 parsecs", "not a size"), ("1MiB", "below the smallest")] {
            let err = load(None, env(&[("KIZASHI__STATE__MEMORY_BUDGET", text)])).unwrap_err();
            let all = err.0.join("\n");
            assert!(all.contains("state.memory_budget") && all.contains(want), "{text}: {all}");
        }
        std::fs::write(&path, "[state]\ncache_accounts = 200000\n").unwrap();
        let err = load(Some(&path), env(&[])).unwrap_err();
        let all = err.0.join("\n");
        assert!(all.contains("state.cache_accounts") && all.contains("state.memory_budget"), "{all}");
    }
}
