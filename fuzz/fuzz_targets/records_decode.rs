//! Outbox entries and changelog records (states and checkpoints, with their keys): arbitrary bytes
//! decode to an error or a value that encodes and decodes back to itself. Input: one byte choosing
//! the decoder, one byte giving the key length (changelog records), then the bytes.
#![no_main]

use kizashi::pipeline::changelog::{decode_record, Checkpoint, Record};
use kizashi::pipeline::outbox::OutboxEntry;
use kizashi::store::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [which, key_len, rest @ ..] = data else { return };
    match which % 3 {
        0 => {
            if let Ok(e) = OutboxEntry::decode(rest) {
                assert_eq!(OutboxEntry::decode(&e.encode()).as_ref(), Ok(&e));
                let _ = e.partition(12);
            }
        }
        1 => {
            if let Ok(c) = Checkpoint::decode(rest) {
                assert_eq!(Checkpoint::decode(&c.encode()).as_ref(), Ok(&c));
                assert!(c.offsets.iter().all(|(_, o)| *o >= 0));
            }
        }
        _ => {
            let (key, value) = rest.split_at(usize::from(*key_len).min(rest.len()));
            let partition = key.get(..4).map_or(0, |p| u32::from_be_bytes(p.try_into().expect("4 bytes")));
            match decode_record(partition, key, value) {
                Ok(Record::State { account, state }) => {
                    assert!(!account.is_empty());
                    assert!(codec::decode(&codec::encode_to_vec(&state)).is_ok());
                }
                Ok(Record::Checkpoint(c)) => assert_eq!(Checkpoint::decode(&c.encode()).as_ref(), Ok(&c)),
                Err(_) => {}
            }
        }
    }
});
