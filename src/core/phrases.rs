//! Alert summaries kept with an account, packed: each phrase of the alerts' own wording (the
//! rules' leads, `alerts::summary`'s joins, the measures' labels) is one byte. An account keeps
//! its last few summaries, and they were a quarter of its encoded state; packed, a summary takes a
//! fifth to a half of its bytes. Exact for any text: a byte below 0x20 that is not a phrase is
//! escaped.

use std::sync::OnceLock;

/// The phrases, written as bytes 0x01 to 0x1F in this order. Part of the state encoding
/// (version 5): changing one changes what stored bytes mean.
const PHRASES: [&str; 31] = [
    "No product usage for ",
    "no product usage for ",
    " days",
    "Health score is red at ",
    "weekly seat utilisation is ",
    "No product usage recorded (",
    " have no data and count 0 points).",
    "seat_utilization",
    "active_users_trend",
    "usage_trend",
    "feature_breadth_30d",
    "Health score dropped ",
    " points in ",
    "Nobody has used the product in the ",
    " days since ",
    "features used (30 d)",
    "An urgent ticket has been open for ",
    " hours",
    "Health score entered red at ",
    "active users (30 d)",
    "active users (7 d)",
    "daily active users last week were ",
    " of their norm",
    " of its norm",
    "usage last week was ",
    "Renewal in ",
    " with the health score ",
    " tickets were opened in ",
    " urgent ticket",
    " fell from ",
    " and ",
];

/// Marks the next byte as itself (a byte below 0x20 in the text).
const ESCAPE: u8 = 0;

/// Per first byte, the phrases that start with it, as (bytes, code), longest first.
type ByFirstByte = [Vec<(&'static [u8], u8)>; 256];

fn by_first_byte() -> &'static ByFirstByte {
    static TABLE: OnceLock<ByFirstByte> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: ByFirstByte = std::array::from_fn(|_| Vec::new());
        for (i, p) in PHRASES.iter().enumerate() {
            t[p.as_bytes()[0] as usize].push((p.as_bytes(), i as u8 + 1));
        }
        for v in &mut t {
            v.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        }
        t
    })
}

/// A packed text.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Packed(Box<[u8]>);

impl Packed {
    /// Packs `text`, the longest phrase first wherever one starts.
    pub fn new(text: &str) -> Packed {
        let table = by_first_byte();
        let b = text.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let rest = &b[i..];
            if let Some((p, code)) = table[rest[0] as usize].iter().find(|(p, _)| rest.starts_with(p)) {
                out.push(*code);
                i += p.len();
                continue;
            }
            if rest[0] < 0x20 {
                out.push(ESCAPE);
            }
            out.push(rest[0]);
            i += 1;
        }
        Packed(out.into_boxed_slice())
    }

    /// Bytes as `as_bytes` gave them; `None` if they do not unpack to text (a corrupt state).
    /// Checked without unpacking: the phrases and escaped bytes are ASCII, so the text is UTF-8
    /// exactly when each run of bytes between them is.
    pub fn from_bytes(bytes: &[u8]) -> Option<Packed> {
        let mut run = 0;
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c < 0x20 {
                std::str::from_utf8(&bytes[run..i]).ok()?;
                if c == ESCAPE {
                    i += 1;
                    if *bytes.get(i)? >= 0x20 {
                        return None;
                    }
                }
                run = i + 1;
            }
            i += 1;
        }
        std::str::from_utf8(&bytes[run..]).ok()?;
        Some(Packed(bytes.into()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn unpack(&self) -> Option<String> {
        let mut out = Vec::with_capacity(self.0.len() * 3);
        let mut it = self.0.iter();
        while let Some(&c) = it.next() {
            match c {
                ESCAPE => out.push(*it.next()?),
                0x01..=0x1f => out.extend_from_slice(PHRASES[c as usize - 1].as_bytes()),
                _ => out.push(c),
            }
        }
        String::from_utf8(out).ok()
    }

    /// The text.
    pub fn text(&self) -> String {
        self.unpack().unwrap_or_default()
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.text())
    }
}

impl From<&str> for Packed {
    fn from(text: &str) -> Packed {
        Packed::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_alerts_own_wording_packs_small() {
        for (text, most) in [
            ("No product usage for 14 days: weekly seat utilisation is 0%.", 10),
            ("Health score dropped 33.3 points in 14 days to 28.6: weekly seat utilisation is 0% and no product usage for 10 days.", 29),
            ("", 0),
        ] {
            let p = Packed::new(text);
            assert!(p.as_bytes().len() <= most, "{text:?}: {} bytes", p.as_bytes().len());
            assert_eq!(p.text(), text);
        }
    }

    #[test]
    fn control_bytes_and_phrase_codes_in_the_text_stay_themselves() {
        for text in ["\u{0}\u{1}\u{1f} days\u{7f}", "\n No product usage for \t", "日本語 and ünïcode"] {
            let p = Packed::new(text);
            assert_eq!(p.text(), text);
            assert_eq!(Packed::from_bytes(p.as_bytes()), Some(p));
        }
    }

    #[test]
    fn bytes_that_do_not_unpack_to_text_are_refused() {
        assert_eq!(Packed::from_bytes(&[ESCAPE]), None, "an escape with nothing after it");
        assert_eq!(Packed::from_bytes(&[0xff, 0x20]), None, "not UTF-8");
        assert_eq!(Packed::from_bytes(&[0xe6, 0x03, 0x97, 0xa5]), None, "a character cut by a phrase");
        assert_eq!(Packed::from_bytes(&[ESCAPE, b'a']), None, "an escape of a byte that needs none");
        assert!(Packed::from_bytes("日本".as_bytes()).is_some());
        assert!(Packed::from_bytes(&[0x03, b'x']).is_some());
    }

    #[test]
    fn the_phrases_fit_their_codes() {
        assert!(PHRASES.len() < 0x20);
        assert!(PHRASES.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b >= 0x20)));
    }

    proptest! {
        #[test]
        fn any_text_round_trips(text in "\\PC*|[ -~\u{0}-\u{1f}]*|( days| and |No product usage for |x)*") {
            let p = Packed::new(&text);
            prop_assert_eq!(p.text(), text.clone());
            prop_assert!(p.as_bytes().len() <= 2 * text.len());
            prop_assert_eq!(Packed::from_bytes(p.as_bytes()), Some(p));
        }

        /// Bytes accepted unpack to text; bytes refused do not.
        #[test]
        fn any_bytes_are_accepted_exactly_when_they_unpack(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let unpacked = Packed(bytes.clone().into_boxed_slice()).unpack();
            let strict = unpacked.is_some() && bytes.windows(2).all(|w| w[0] != ESCAPE || w[1] < 0x20);
            prop_assert_eq!(Packed::from_bytes(&bytes).is_some(), strict);
        }
    }
}
