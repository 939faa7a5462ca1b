//! State codec: arbitrary bytes decode to an error or a state; a state re-encodes and decodes back
//! to itself.
#![no_main]

use kizashi::core::AccountState;
use kizashi::store::codec;
use libfuzzer_sys::fuzz_target;

/// NaN never equals itself: compare states with every NaN made one value.
fn without_nan(mut s: AccountState) -> AccountState {
    let fix = |x: &mut f64| {
        if x.is_nan() {
            *x = f64::NEG_INFINITY;
        }
    };
    if let Some(a) = &mut s.facts.arr {
        fix(a);
    }
    let snaps = s.score.last.iter_mut().chain(s.score.best.iter_mut().map(|(_, b)| b));
    for snap in snaps {
        fix(&mut snap.score);
        for i in 0..kizashi::core::measures::N_MEASURES {
            if let Some(mut x) = snap.values.get(i) {
                fix(&mut x);
                snap.values.set(i, Some(x));
            }
        }
    }
    if let Some((score, _)) = &mut s.score.emitted {
        fix(score);
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let Ok(state) = codec::decode(data) else { return };
    let bytes = codec::encode_to_vec(&state);
    let back = codec::decode(&bytes).unwrap_or_else(|e| panic!("a decoded state re-encodes to bytes that do not decode: {e}"));
    assert_eq!(without_nan(back), without_nan(state));
});
