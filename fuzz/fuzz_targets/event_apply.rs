//! Decoded events applied to one account's state and evaluated, as the engine does (stream time,
//! the too-late check, `advance`, `apply`, re-scoring, due timers); then the state must encode and
//! decode back to itself. Input: lines, each one kind byte (`u`, `s`, `a`, else by value) then a
//! record. With `KIZASHI_FUZZ_DUMP_STATES=DIR` each final state's encoding is also written to DIR
//! (seeds for `state_decode` and `records_decode`: run over a corpus with `-runs=0`).
#![no_main]

use std::sync::OnceLock;

use kizashi::config::Settings;
use kizashi::core::{evaluate, AccountState, Applied, Params};
use kizashi::event::timestamp::day_of;
use kizashi::event::{decode, DecodeLimits, EventKind};
use kizashi::store::codec;
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits { max_id_len: 256, max_name_len: 256, max_future_ms: 3_600_000, now_ms: 1_800_000_000_000, max_record_bytes: 1 << 20 };

fn params() -> &'static Params {
    static P: OnceLock<Params> = OnceLock::new();
    P.get_or_init(|| Params::new(&Settings::default()))
}

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
    let p = params();
    let mut state = AccountState::default();
    let mut stream_time: Option<i64> = None;
    for line in data.split(|b| *b == b'\n').take(256) {
        let Some((&k, record)) = line.split_first() else { continue };
        let Ok(event) = decode(kind(k), record, None, &LIMITS) else { continue };
        let ts = event.ts_ms();
        // As `Engine::process`: account records and actions never move stream time.
        let now = match (stream_time, event.kind()) {
            (Some(s), EventKind::Account | EventKind::Action) => s,
            (Some(s), _) => s.max(ts),
            (None, _) => ts,
        };
        if event.kind().is_activity() {
            let horizon = day_of(now) - p.state.retention_days as i32 + 1;
            if day_of(ts) < horizon {
                continue; // too_late
            }
        }
        stream_time = Some(now);
        if state.score.next_due_ms.is_some_and(|d| d <= now - p.grace_ms) {
            state.score.next_due_ms = None;
            evaluate(&mut state, "acct", now, p);
        }
        state.advance(day_of(now), &p.state);
        if state.apply(&event, day_of(now), &p.state) == Applied::Changed {
            evaluate(&mut state, event.account_id(), now, p);
        }
    }
    let bytes = codec::encode_to_vec(&state);
    let back = codec::decode(&bytes).unwrap_or_else(|e| panic!("a state the core built does not decode: {e}"));
    assert_eq!(back, state);
    if let Some(dir) = std::env::var_os("KIZASHI_FUZZ_DUMP_STATES") {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        let _ = std::fs::write(std::path::Path::new(&dir).join(format!("{:016x}", h.finish())), &bytes);
    }
});
