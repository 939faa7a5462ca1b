//! Event decoder: arbitrary bytes as a record of each kind, with and without a message key.
//! Input: one byte choosing the kind (`u`, `s`, `a`, else by value) and whether a key is given,
//! then the record. The flat reading of usage records must agree with serde's on every input.
#![no_main]

use kizashi::event::{decode, decode_with_serde_only, DecodeLimits, Event, EventKind};
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits { max_id_len: 256, max_name_len: 256, max_future_ms: 3_600_000, now_ms: 1_800_000_000_000, max_record_bytes: 1 << 20 };

fn kind(b: u8) -> EventKind {
    match b {
        b'u' => EventKind::Usage,
        b's' => EventKind::Support,
        b'a' => EventKind::Account,
        b'c' => EventKind::Action,
        _ => EventKind::ALL[usize::from(b) % EventKind::ALL.len()],
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, record)) = data.split_first() else { return };
    for k in EventKind::ALL {
        // Usage records of the common shape are read without serde: the same event or rejection.
        assert_eq!(decode(k, record, None, &LIMITS), decode_with_serde_only(k, record, &LIMITS));
    }
    let k = kind(head);
    if let Ok(e) = decode(k, record, None, &LIMITS) {
        assert_eq!(e.kind(), k);
        let id = e.account_id().to_string();
        assert!(!id.is_empty() && id.len() <= LIMITS.max_id_len, "account id {id:?}");
        assert!(e.ts_ms() <= LIMITS.now_ms + LIMITS.max_future_ms);
        // The matching key is accepted, any other is not.
        assert!(decode(k, record, Some(id.as_bytes()), &LIMITS).is_ok());
        assert!(decode(k, record, Some(b"\xff not the id"), &LIMITS).is_err());
        let owned: Event<'static> = e.clone().into_owned();
        assert_eq!(owned, e);
    }
});
