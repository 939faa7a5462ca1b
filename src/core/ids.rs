//! Stable hashes: FNV-1a, fixed by its published constants, so ids and de-duplication keys are
//! the same across runs, machines and versions.

/// A hash map for keys an attacker may choose (user ids, features, ticket ids, account ids):
/// seeded at random per process, so nobody can prepare keys that all collide. Iteration order is
/// not stable across runs; nothing kizashi outputs depends on it.
pub type KeyedMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Heap bytes of a hash map (hashbrown layout) that can hold `capacity` entries: its buckets
/// (capacity is 7/8 of them) of one entry and one control byte each.
pub fn map_heap_bytes<K, V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    alloc_bytes((capacity * 8 / 7 + 1) * (std::mem::size_of::<(K, V)>() + 1))
}

/// What an allocation of `n` bytes costs the allocator: its jemalloc size class (no header):
/// 8, then multiples of 16 up to 128, then four classes per doubling (160, 192, 224, 256, 320, …).
pub fn alloc_bytes(n: usize) -> usize {
    match n {
        0 => 0,
        1..=8 => 8,
        9..=128 => n.div_ceil(16) * 16,
        _ => {
            let spacing = 1usize << ((usize::BITS - (n - 1).leading_zeros() - 1) - 2);
            n.div_ceil(spacing) * spacing
        }
    }
}

#[cfg(test)]
mod alloc_tests {
    #[test]
    fn size_classes_are_jemallocs() {
        let classes: Vec<usize> = [1, 8, 9, 16, 17, 128, 129, 160, 161, 256, 257, 320, 4097, 5000, 1 << 20].map(super::alloc_bytes).to_vec();
        assert_eq!(classes, [8, 8, 16, 16, 32, 128, 160, 160, 192, 256, 320, 320, 5120, 5120, 1 << 20]);
        assert_eq!(super::alloc_bytes(0), 0);
    }
}

pub fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // Separate parts so ("ab","c") and ("a","bc") differ.
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub fn fnv128(parts: &[&[u8]]) -> u128 {
    let prime: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for part in parts {
        for &b in *part {
            h ^= u128::from(b);
            h = h.wrapping_mul(prime);
        }
        h ^= 0xff;
        h = h.wrapping_mul(prime);
    }
    h
}

/// Deterministic alert id: 32 hex digits from account, rule and trigger time.
pub fn alert_id(account_id: &str, rule: &str, trigger_ms: i64) -> String {
    format!("{:032x}", fnv128(&[account_id.as_bytes(), rule.as_bytes(), &trigger_ms.to_be_bytes()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_separation() {
        assert_ne!(fnv64(&[b"ab", b"c"]), fnv64(&[b"a", b"bc"]));
        assert_eq!(alert_id("acme", "inactive", 5), alert_id("acme", "inactive", 5));
        assert_ne!(alert_id("acme", "inactive", 5), alert_id("acme", "inactive", 6));
        assert_eq!(alert_id("acme", "inactive", 5).len(), 32);
        // Pinned (computed independently): a change of this value breaks consumers that
        // de-duplicate by alert_id across versions.
        assert_eq!(alert_id("acme", "entered_red", 1_763_632_800_000), "9f55a2a29e3193723efeb8afeb0e219b");
    }
}
