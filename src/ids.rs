//! Random ids: a prefix and 12 lowercase hex digits (`tsk_3f9a0c1b7d2e`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Makes a new id with `prefix` (`"tsk"`, `"str"`, `"ses"`, `"prj"`).
///
/// The bits come from hashing a counter with a key that the standard
/// library seeds from the operating system's random source, once per
/// process, so ids from different processes do not follow each other. The
/// database's unique constraint catches the rare collision.
pub fn new_id(prefix: &str) -> String {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    let key = KEY.get_or_init(RandomState::new);
    let mut h = key.build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{prefix}_{:012x}", h.finish() & 0xffff_ffff_ffff)
}

/// Returns true if and only if `s` looks like an id SparkQ makes: one of
/// its prefixes, `_`, and 12 lowercase hex digits.
pub fn is_id_shaped(s: &str) -> bool {
    let Some((prefix, hex)) = s.split_once('_') else {
        return false;
    };
    matches!(prefix, "prj" | "ses" | "str" | "tsk")
        && hex.len() == 12
        && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_twelve_hex_digits() {
        let id = new_id("tsk");
        assert_eq!(id.len(), 16);
        assert!(id.starts_with("tsk_"));
        assert!(id[4..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn id_shape_is_recognised() {
        assert!(is_id_shaped(&new_id("str")));
        assert!(!is_id_shaped("str_0123456789aB"));
        assert!(!is_id_shaped("build_0123456789ab"));
        assert!(!is_id_shaped("str_0123"));
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_id("tsk")).collect();
        assert_eq!(ids.len(), 10_000);
    }
}
