//! The event-time merge of a partition's input streams: usage, support and account records (in
//! `replay`, each of those may be several files). Records are taken in event-time order across
//! the streams, ties to the stream listed first (usage, support, accounts; files in the order
//! given), so the order is total and the same however the records arrived: a restart, another
//! instance and `replay` all apply the same records in the same order.

use crate::event::{Event, Reject};

/// Where a stream's records go in the merge: a record at its event time; a rejected one, which
/// has no time to trust, at the time of the stream's last good record before it, so it stays
/// where it was in its stream (before any good record, first).
#[derive(Debug, Clone, Copy)]
pub struct Placer {
    last_good: i64,
}

impl Default for Placer {
    fn default() -> Self {
        Placer { last_good: i64::MIN }
    }
}

impl Placer {
    /// The merge time of the stream's next record (records are placed in stream order).
    pub fn place(&mut self, decoded: Result<&Event<'_>, &Reject>) -> i64 {
        if let Ok(e) = decoded {
            self.last_good = e.ts_ms();
        }
        self.last_good
    }
}

/// What an input stream offers the merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// Its next record, at this merge time ([`Placer::place`]).
    At(i64),
    /// Nothing, and nothing is on its way (a caught-up topic, a file's end).
    Done,
    /// Nothing yet, but a record may be on its way that could go first: the merge waits.
    Waiting,
}

/// The merge's choice ([`next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Next {
    /// The input whose record goes next (its index in the heads given).
    pub input: usize,
    /// The best other head as (time, input): the chosen input's following records go next too,
    /// without asking again, as long as they sort before it. None: no other input has a record.
    pub until: Option<(i64, usize)>,
}

impl Next {
    /// Whether the chosen input's following record, at merge time `at`, still goes before every
    /// other input's.
    pub fn goes_before(&self, at: i64) -> bool {
        self.until.is_none_or(|u| (at, self.input) < u)
    }
}

/// The input whose record goes next: the lowest (time, input index) of the heads, unless an
/// input that may still bring an earlier record is waited for (then None, as when no input has
/// a record).
pub fn next(heads: impl IntoIterator<Item = Head>) -> Option<Next> {
    let mut best: Option<(i64, usize)> = None;
    let mut second: Option<(i64, usize)> = None;
    for (i, h) in heads.into_iter().enumerate() {
        match h {
            Head::At(t) => {
                if best.is_none_or(|b| (t, i) < b) {
                    second = best;
                    best = Some((t, i));
                } else if second.is_none_or(|s| (t, i) < s) {
                    second = Some((t, i));
                }
            }
            Head::Done => {}
            Head::Waiting => return None,
        }
    }
    best.map(|(_, input)| Next { input, until: second })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{decode, DecodeLimits, EventKind};
    use Head::*;

    #[test]
    fn lowest_time_goes_first_and_ties_go_to_the_first_input() {
        assert_eq!(next([At(5), At(3), At(3)]), Some(Next { input: 1, until: Some((3, 2)) }));
        assert_eq!(next([At(3), Done, At(3)]), Some(Next { input: 0, until: Some((3, 2)) }));
        assert_eq!(next([Done, At(9), Done]), Some(Next { input: 1, until: None }));
        assert_eq!(next([Done, Done, Done]), None);
    }

    #[test]
    fn a_stream_that_may_bring_an_earlier_record_is_waited_for() {
        assert_eq!(next([At(1), Waiting, Done]), None);
    }

    #[test]
    fn the_chosen_input_goes_on_while_its_records_sort_before_the_others() {
        let n = next([At(1), At(4)]).expect("a record");
        assert!(n.goes_before(3));
        assert!(n.goes_before(4), "a tie goes to the earlier input");
        assert!(!n.goes_before(5));
        let n = next([At(4), At(1)]).expect("a record");
        assert!(n.goes_before(3));
        assert!(!n.goes_before(4), "a tie goes to the earlier input");
    }

    #[test]
    fn a_reject_is_placed_at_its_streams_last_good_time() {
        let limits = DecodeLimits { max_id_len: 64, max_name_len: 64, max_future_ms: 0, now_ms: i64::MAX / 2, max_record_bytes: 1 << 20 };
        let good = decode(EventKind::Usage, br#"{"account_id":"a","user_id":"u","event":"e","ts":5000}"#, None, &limits);
        let bad = decode(EventKind::Usage, b"{oops", None, &limits);
        let mut p = Placer::default();
        assert_eq!(p.place(bad.as_ref()), i64::MIN, "before any good record: first");
        assert_eq!(p.place(good.as_ref()), 5000);
        assert_eq!(p.place(bad.as_ref()), 5000);
    }
}
