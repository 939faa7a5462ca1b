use super::*;
use crate::core::state::Values;
use proptest::prelude::*;

/// `AccountState::growable_bytes` bounds what users, features and event ids add to the
/// encoding, and `Settings::changelog_record_bytes` the whole record, for a state as large as
/// the settings let one grow: ids of the longest length, every ticket the cap keeps, a day
/// count, score and history on every day of retention.
#[test]
fn the_largest_state_the_settings_allow_fits_its_changelog_record() {
    use crate::config::{ByteSize, Settings};
    let mut settings = Settings::default();
    settings.state.max_account_bytes = ByteSize(256 << 10);
    settings.events.max_open_tickets = 40;
    let params = crate::core::Params::new(&settings);
    // The latest event time accepted (9999-12-31T23:59:59.999Z).
    const MAX_MS: i64 = 253_402_300_799_999;
    let id_len = settings.events.max_id_len;
    let long = |tag: &str, i: usize| format!("{tag}{i:0>w$}", w = id_len - tag.len());
    let name = "n".repeat(settings.events.max_name_len);
    let first = 20_000;
    let last = first + settings.events.retention_days as i32 - 1;
    let mut s = AccountState { facts: Facts { name: Some(name.clone()), owner: Some(name), segment: Some(long("s", 0)), seats: Some(u32::MAX), arr: Some(1e300), renewal_day: Some(last + 30), start_day: Some(first), ts_ms: Some(MAX_MS), ended: Some(crate::core::state::Ended { status: crate::event::AccountStatus::Cancelled, day: MIN_STORED_DAY }) }, ..AccountState::default() };
    let max_tickets = 3 * settings.events.max_open_tickets as usize;
    for (n, day) in (first..=last).enumerate() {
        let ms = i64::from(day) * 86_400_000;
        s.advance(day, &params.state);
        s.usage.add(day, u32::MAX);
        for c in [&mut s.opened, &mut s.csat_sum, &mut s.csat_count, &mut s.nps_count, &mut s.nps_promoters, &mut s.nps_detractors] {
            c.add(day, u32::MAX);
        }
        s.last_usage_ms = Some(ms);
        s.first_day.get_or_insert(day);
        if n < max_tickets {
            let open = n < settings.events.max_open_tickets as usize;
            s.tickets.insert(&long("t", n), Ticket { priority: Priority::Urgent, opened_ms: 0, last_ms: MAX_MS - n as i64, open });
        }
        let mut i = 0;
        while s.growable_bytes() <= params.state.max_account_bytes {
            let k = n * 1_000_000 + i;
            s.users.observe(&long("u", k), day);
            s.features.observe(&long("f", k), day);
            s.seen_ids.insert((k as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), MAX_MS - k as i64);
            i += 1;
        }
        crate::core::evaluate(&mut s, &long("a", 0), ms + 86_399_999, &params);
    }
    let encoded = |s: &AccountState| {
        let mut w = Writer::default();
        encode(s, &mut w);
        w.buf.len()
    };
    let whole = encoded(&s);
    let mut bare = s.clone();
    bare.users = Distinct::default();
    bare.features = Distinct::default();
    bare.seen_ids.clear();
    assert!(s.growable_bytes() > params.state.max_account_bytes);
    assert!(whole - encoded(&bare) <= s.growable_bytes(), "{} > {}", whole - encoded(&bare), s.growable_bytes());
    // The key: the partition and the account id.
    let key = 4 + id_len;
    assert!(whole + key <= settings.changelog_record_bytes() as usize, "{whole} + {key} > {}", settings.changelog_record_bytes());
    assert!(whole > 256 << 10, "the state is as large as the bound lets it be ({whole} bytes)");
}

/// A state with every field set, some days at the ends of the range.
fn rich_state() -> AccountState {
    let mut s = AccountState {
        facts: Facts {
            name: Some("Acme \"Corp\"".into()),
            seats: Some(40),
            segment: Some("enterprise".into()),
            owner: Some("Ana Souza".into()),
            arr: Some(125_000.5),
            renewal_day: Some(MAX_STORED_DAY),
            start_day: Some(MIN_STORED_DAY),
            ts_ms: Some(-5),
            ended: None,
        },
        first_day: Some(20_000),
        last_usage_ms: Some(20_100 * 86_400_000),
        day: 20_100,
        applied: [7, 0, 1 << 40, 0],
        ..AccountState::default()
    };
    for (i, day) in [20_011, 20_050, 20_100, 20_100].into_iter().enumerate() {
        s.usage.add(day, 3);
        s.users.observe(&format!("u{i}"), day);
        s.features.observe("export", day - i as i32);
        s.opened.add(day, 1);
        s.csat_sum.add(day, 4);
        s.csat_count.add(day, 1);
        s.seen_ids.insert((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15), i64::from(day) * 86_400_000);
    }
    s.tickets.insert("t-1", Ticket { priority: Priority::Urgent, opened_ms: 1, last_ms: 2, open: true });
    s.tickets.insert("t-2", Ticket { priority: Priority::Low, opened_ms: i64::MIN, last_ms: i64::MAX, open: false });
    let snap = |at_ms, score, band| Snapshot { at_ms, score, band, values: {
        let mut v = [None; N_MEASURES];
        v[0] = Some(1.5);
        v[2] = Some(-0.0);
        v[N_MEASURES - 1] = Some(f64::MAX);
        v.into()
    } };
    s.score = ScoreState {
        last: Some(snap(9, 42.5, Band::Yellow)),
        scorecard: "default@1".into(),
        band: Some(Band::Yellow),
        best: [(20_090, snap(8, 80.0, Band::Green)), (20_100, snap(9, 42.5, Band::Yellow))].into(),
        // The fixtures of version 4 (`testdata/state-v4.hex`) were written with the ten rules
        // of that release: the rules added since (champion_quiet) read back as never fired.
        rules: std::array::from_fn(|i| if i < 10 { RuleMark { armed: false, last_fired_ms: Some(3) } } else { RuleMark::default() }),
        emitted: Some((42.5, Band::Yellow)),
        next_due_ms: Some(10),
        recent_alerts: [AlertRef { rule: 1, at_ms: 9, summary: "No product usage for 14 days.".into() }].into(),
        alerts_live: true,
        drop_since: Some(20_090),
        score_drop_since: Some(MIN_STORED_DAY),
        expansion_since: Some(MAX_STORED_DAY),
        renewal_alerted: Some(20_400),
        history: [(20_010, 1000, Band::Green, 0), (20_011, 0, Band::Red, 0b11), (20_099, 425, Band::Yellow, 1 << 9)]
            .map(|(day, tenths, band, alerts)| crate::core::state::HistoryDay { day, tenths, band, alerts })
            .into(),
    };
    s.nps_count.add(20_050, 2);
    s.nps_promoters.add(20_050, 1);
    s.nps_detractors.add(20_100, 1);
    s
}

#[test]
fn a_history_that_goes_back_or_spans_too_long_is_refused() {
    let mut s = rich_state();
    let h = |day, tenths| crate::core::state::HistoryDay { day, tenths, band: Band::Red, alerts: 0 };
    s.score.history = [h(20_010, 10), h(20_200, 20)].into();
    assert_eq!(decode(&encode_to_vec(&s)), Err(CodecError::Invalid("history")), "a gap of 190 days");
    s.score.history = [h(20_010, 1001)].into();
    assert_eq!(decode(&encode_to_vec(&s)), Err(CodecError::Invalid("history")), "a score above 100");
}

/// Versions 1 to 3, made from version 4 by cutting the fields each later version added (each
/// added its own at the end), read back with what they lacked defaulted.
#[test]
fn versions_1_to_3_read_with_what_they_lacked_defaulted() {
    let v4 = |s: &AccountState| {
        let mut w = Writer::default();
        legacy::encode_v4(s, "acct-1", &mut w);
        w.buf
    };
    let older = |v4: &[u8], version: u8, cut: usize| {
        let mut b = v4[..v4.len() - cut].to_vec();
        b[0] = version;
        b
    };
    // Version 3: no owner, score history or summaries.
    let mut s = rich_state();
    s.facts.owner = None;
    s.score.history.clear();
    for a in &mut s.score.recent_alerts {
        a.summary = Default::default();
    }
    // The owner's tag, the history's count and first day, and an empty summary per alert.
    let v4_fields = 3 + s.score.recent_alerts.len();
    assert_eq!(decode(&older(&v4(&s), 3, v4_fields)).unwrap(), s);
    // Version 2: nor NPS answers, the later rules' marks, whether alerts are live (they are once
    // the account has been scored) or the runs' first days.
    s.nps_count = DayCounts::default();
    s.nps_promoters = DayCounts::default();
    s.nps_detractors = DayCounts::default();
    for m in &mut s.score.rules[LEGACY_RULES..] {
        *m = RuleMark::default();
    }
    s.score.alerts_live = s.score.last.is_some();
    s.score.drop_since = None;
    s.score.expansion_since = None;
    s.score.renewal_alerted = None;
    s.score.score_drop_since = None;
    // Three empty day counts (2 bytes each), the marks' count and each mark (2 bytes), the
    // alerts' flag and four absent days.
    let later_rules = s.score.rules.len() - LEGACY_RULES;
    let v3_fields = 6 + 1 + 2 * later_rules + 1 + 4;
    assert_eq!(decode(&older(&v4(&s), 2, v4_fields + v3_fields)).unwrap(), s);
    // Version 1: nor the applied offsets.
    s.applied = [0; crate::event::N_KINDS];
    assert_eq!(decode(&older(&v4(&s), 1, v4_fields + v3_fields + 3)).unwrap(), s);
    // Versions 1 and 2 cannot tell that a scored account's alerts are not live yet: they read
    // them live.
    s.score.alerts_live = false;
    assert_ne!(decode(&older(&v4(&s), 2, v4_fields + v3_fields)).unwrap(), s, "version 2 has no such state");
}

/// `rich_state` with one more alert.
fn rich_state_with_a_made_alert_id() -> AccountState {
    let mut s = rich_state();
    let at_ms = 20_100 * 86_400_000;
    s.score.recent_alerts.push_back(AlertRef { rule: 2, at_ms, summary: "Health score 31.0 (red).".into() });
    s
}

#[test]
fn a_state_written_by_version_4_reads_the_same_and_is_written_smaller() {
    // `rich_state_with_a_made_alert_id` as the release before version 5 encoded it (with
    // alert ids "a1" and the one `ids::alert_id` made; version 5 makes them again instead).
    let hex = include_str!("testdata/state-v4.hex").trim();
    let v4: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    assert_eq!(v4[0], 4);
    let s = decode(&v4).unwrap();
    assert_eq!(s, rich_state_with_a_made_alert_id());
    let mut w = Writer::default();
    encode_v5_sections(&s, &mut w, 5);
    let v5 = w.buf;
    assert_eq!(v5[0], 5);
    assert_eq!(decode(&v5).unwrap(), s);
    // Three snapshots of a score and three values, 35 bytes each before: the daily bests
    // repeat the last one's values, so they take their code word (4 bytes) and at most an
    // integer score. The alert ids take none, not 3 and 33; the summaries 24 fewer (their
    // phrases a byte each: "No product usage for ", " days"); the history's days 5 fewer
    // (each has a gap or an alert here, so only band and score share bytes); the eight
    // user and feature keys' last days 9 fewer (days before the state's day).
    // And champion_quiet's mark, a rule added since, 2 bytes more (armed, never fired).
    assert_eq!(v4.len() - v5.len(), 1108 - 985, "{} bytes, version 4 took {}", v5.len(), v4.len());
}

/// Version 4 as the release before the one before wrote it (what the tests make versions 1 to 3
/// from): the fixture it wrote reads the same and has the same length, but for the first alert's
/// id ("a1", which that release was handed; ids are now made from the account, rule and time, as
/// the alert was given it). (Not byte for byte: user and feature maps are written in their hash
/// order, which is seeded per process.)
#[test]
fn version_4_is_written_as_that_release_wrote_it() {
    let hex = include_str!("testdata/state-v4.hex").trim();
    let old: Vec<u8> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect();
    let s = rich_state_with_a_made_alert_id();
    let mut w = Writer::default();
    legacy::encode_v4(&s, "acct-1", &mut w);
    assert_eq!(w.buf[0], 4);
    assert_eq!(decode(&w.buf).unwrap(), s);
    // The made alert id (33 bytes, not "a1"'s 3) and champion_quiet's mark (2 bytes: a rule
    // added since, which that release skips as one it does not know).
    assert_eq!(w.buf.len(), old.len() - 3 + 33 + 2);
    for a in &s.score.recent_alerts {
        let id = a.alert_id("acct-1").unwrap();
        let mut field = vec![id.len() as u8];
        field.extend_from_slice(id.as_bytes());
        assert!(w.buf.windows(field.len()).any(|x| x == field), "alert id {id} written");
    }
    // And this build's version by the same call.
    let mut w = Writer::default();
    encode_version(&s, STATE_VERSION, &mut w);
    assert_eq!(decode(&w.buf).unwrap(), s);
    assert_eq!(w.buf.len(), encode_to_vec(&s).len());
}

proptest! {
    /// A state written in version 4 reads back as itself: any score history, snapshot values
    /// and summary text.
    #[test]
    fn version_4_round_trips(
        history in prop::collection::vec((1i32..30, 0u16..=1000, 0u8..3, any::<u16>()), 0..40),
        values in prop::collection::vec(prop::option::of(prop_oneof![-1e6f64..1e6, (-1000i64..1000).prop_map(|v| v as f64)]), N_MEASURES),
        summary in "\\PC{0,80}",
    ) {
        let mut s = rich_state();
        let mut day = 20_000;
        s.score.history = history
            .iter()
            .map(|&(gap, tenths, band, alerts)| {
                day += gap;
                crate::core::state::HistoryDay { day, tenths, band: Band::from_code(band).unwrap(), alerts }
            })
            .collect();
        let last = s.score.last.as_mut().unwrap();
        let mut a = [None; N_MEASURES];
        a.copy_from_slice(&values);
        last.values = a.into();
        s.score.best.push_back((20_101, last.clone()));
        s.score.recent_alerts[0].summary = summary.as_str().into();
        let mut w = Writer::default();
        legacy::encode_v4(&s, "acct-7", &mut w);
        prop_assert_eq!(w.buf[0], 4);
        prop_assert_eq!(decode(&w.buf).unwrap(), s);
    }
}

#[test]
fn snapshot_values_round_trip_to_the_same_bits() {
    let mut s = rich_state();
    let odd = [f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0, -7.0, 2f64.powi(53), 2f64.powi(53) + 2.0, -(2f64.powi(53)), 1e300, 5e-324, 0.1];
    let mut prev = s.score.last.clone().unwrap();
    s.score.best.clear();
    for (day, chunk) in odd.chunks(4).enumerate() {
        let mut snap = prev.clone();
        for (i, v) in chunk.iter().enumerate() {
            snap.values.set(i * 3, Some(*v));
        }
        snap.score = chunk[0];
        s.score.best.push_back((20_090 + day as i32, snap.clone()));
        prev = snap;
    }
    let back = decode(&encode_to_vec(&s)).unwrap();
    let bits = |s: &AccountState| -> Vec<Option<u64>> {
        s.score.best.iter().flat_map(|(_, b)| std::iter::once(Some(b.score.to_bits())).chain(b.values.iter().map(|v| v.map(f64::to_bits)))).collect()
    };
    assert_eq!(bits(&back), bits(&s));
}

#[test]
fn a_snapshot_slot_the_same_as_a_previous_one_that_is_absent_is_refused() {
    let mut s = AccountState::default();
    let snap = Snapshot { at_ms: 1, score: 50.0, band: Band::Yellow, values: Values::NONE };
    s.score.last = Some(snap);
    let bytes = encode_to_vec(&s);
    // The code word follows the time (1 byte) and band of the only snapshot: score as an
    // integer (code 2), the rest absent. Set the first measure's code to "same".
    let at = bytes.windows(4).position(|w| w == 2u32.to_le_bytes()).unwrap();
    let mut bad = bytes.clone();
    bad[at] |= (SLOT_SAME << 2) as u8;
    assert_eq!(decode(&bad), Err(CodecError::Invalid("snapshot")));
    let mut bad = bytes.clone();
    bad[at] = SLOT_SAME as u8;
    assert_eq!(decode(&bad), Err(CodecError::Invalid("snapshot")), "the first snapshot's score the same as none");
    assert!(decode(&bytes).is_ok());
}

#[test]
fn a_rich_state_round_trips_exactly() {
    let s = rich_state();
    assert_eq!(decode(&encode_to_vec(&s)).unwrap(), s);
    assert_eq!(decode(&encode_to_vec(&AccountState::default())).unwrap(), AccountState::default());
}

/// A default state whose users were last seen on `days` (one user per day).
fn users_last_seen_on(days: &[i32]) -> Vec<u8> {
    let mut s = AccountState::default();
    for (i, d) in days.iter().enumerate() {
        s.users.seen.insert(format!("u{i}").into(), Seen { last_day: *d, days: 1 });
    }
    encode_to_vec(&s)
}

/// A version-3 encoding whose version-3 fields are all default, as version 2 (the fields are
/// the same but for that tail; a default state takes 49 bytes in version 2).
fn as_version_2(v3: &[u8]) -> Vec<u8> {
    let tail = encode_to_vec(&AccountState::default()).len() - 49;
    let mut v2 = v3[..v3.len() - tail].to_vec();
    v2[0] = 2;
    v2
}

#[test]
fn last_seen_days_2e9_apart_are_an_error_not_an_abort() {
    // The corrupt value of the issue (version 2): before, decoding it sized a day array to
    // the distance and aborted.
    let bytes = as_version_2(&users_last_seen_on(&[0, 2_000_000_000]));
    assert_eq!(bytes.len(), 63);
    assert_eq!(decode(&bytes), Err(CodecError::Invalid("day")));
    assert_eq!(decode(&as_version_2(&users_last_seen_on(&[0, 1]))).map(|s| s.users.len()), Ok(2), "the same value with sane days decodes");
    assert_eq!(decode(&users_last_seen_on(&[0, 2_000_000_000])), Err(CodecError::Invalid("day")));
    assert_eq!(decode(&users_last_seen_on(&[-2_000_000_000, 2_000_000_000])), Err(CodecError::Invalid("day")));
    assert_eq!(decode(&users_last_seen_on(&[MIN_STORED_DAY - 1])), Err(CodecError::Invalid("day")));
    assert_eq!(decode(&users_last_seen_on(&[MAX_STORED_DAY + 1])), Err(CodecError::Invalid("day")));
    // Version 5 writes a last day as days before the state's: any i64 there is refused, none
    // overflows.
    let s = encode_to_vec(&AccountState::default());
    let at = 13;
    for before in [i64::MIN, i64::MAX, i64::from(i32::MIN), -i64::from(MAX_STORED_DAY) - 1] {
        let mut w = Writer { buf: s[..at].to_vec() };
        w.var(1);
        w.str("u");
        w.int(before);
        w.var(1);
        w.buf.extend_from_slice(&s[at + 1..]);
        assert_eq!(decode(&w.buf), Err(CodecError::Invalid("day")), "{before}");
    }
}

#[test]
fn last_seen_days_far_apart_in_range_keep_one_span() {
    let s = decode(&users_last_seen_on(&[MIN_STORED_DAY, 0, MAX_STORED_DAY - 10, MAX_STORED_DAY])).unwrap();
    let mut kept: Vec<i32> = s.users.seen.values().map(|s| s.last_day).collect();
    kept.sort_unstable();
    assert_eq!(kept, [MAX_STORED_DAY - 10, MAX_STORED_DAY], "keys more than a span before the newest are dropped");
    assert_eq!(s.users.count_since(MIN_STORED_DAY), 2);
    assert!(s.users.last_seen.iter().count() <= MAX_SPAN_DAYS);
}

#[test]
fn days_out_of_range_or_spans_too_long_are_errors() {
    // Version, no facts, no first day or last usage, day, then `usage` (start, count, counts).
    let prefix = |day: i64| {
        let mut w = Writer::default();
        w.u8(STATE_VERSION);
        for _ in 0..9 {
            w.u8(0);
        }
        w.int(day);
        w
    };
    for day in [-2_000_000_000, 2_000_000_000, i64::from(i32::MAX) + 1, i64::MIN] {
        assert_eq!(decode(&prefix(day).buf), Err(CodecError::Invalid("day")), "{day}");
    }
    let mut w = prefix(0);
    w.int(0);
    w.var(MAX_SPAN_DAYS as u64 + 1);
    w.buf.extend(std::iter::repeat_n(1, MAX_SPAN_DAYS + 1));
    assert_eq!(decode(&w.buf), Err(CodecError::Invalid("day span")));
    let mut w = prefix(0);
    w.int(i64::from(MAX_STORED_DAY));
    w.var(2);
    w.buf.extend([1, 1]);
    assert_eq!(decode(&w.buf), Err(CodecError::Invalid("day span")), "a span past the last day");
    let mut w = prefix(0);
    w.int(0);
    w.var(1);
    w.var(u64::from(u32::MAX) + 1);
    assert_eq!(decode(&w.buf), Err(CodecError::Invalid("day count")));
}

#[test]
fn a_length_or_count_larger_than_the_buffer_is_an_error() {
    // A name of a billion bytes.
    let mut w = Writer::default();
    w.u8(STATE_VERSION);
    w.u8(1);
    w.var(1_000_000_000);
    w.buf.extend_from_slice(b"abc");
    assert_eq!(decode(&w.buf), Err(CodecError::Truncated));
    // A user count of 2^62 after a valid prefix, and one just beyond what the bytes can hold.
    let s = encode_to_vec(&AccountState::default());
    // After the version, nine absent options, the day and the empty usage (start, length).
    let at = 13;
    assert_eq!(s[at], 0, "the users' count");
    for n in [1u64 << 62, u64::MAX, 1 + (s.len() as u64 - 14) / 3] {
        let mut w = Writer { buf: s[..at].to_vec() };
        w.var(n);
        w.buf.extend_from_slice(&s[at + 1..]);
        assert_eq!(decode(&w.buf), Err(CodecError::Truncated), "{n}");
        assert_ne!(w.buf, s);
    }
}

#[test]
fn every_truncation_and_every_byte_flip_is_an_error_or_a_value() {
    let bytes = encode_to_vec(&rich_state());
    for n in 0..bytes.len() {
        assert!(decode(&bytes[..n]).is_err(), "truncated to {n} bytes");
    }
    for i in 0..bytes.len() {
        for x in [0x01, 0x80, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= x;
            let _ = decode(&b);
        }
    }
}

/// Version 6 keeps whether and when the account ended; version 5 is version 6 without that last
/// section (the release that wrote it cannot say it: it reads the account as active).
#[test]
fn an_ended_account_round_trips_and_version_5_is_version_6_without_it() {
    use crate::core::state::Ended;
    use crate::event::AccountStatus;
    let mut s = rich_state();
    for (status, day) in [(AccountStatus::Churned, 20_101), (AccountStatus::Cancelled, MIN_STORED_DAY)] {
        s.facts.ended = Some(Ended { status, day });
        assert_eq!(decode(&encode_to_vec(&s)).unwrap(), s);
        let mut w = Writer::default();
        encode_v6_sections(&s, &mut w, 6);
        assert_eq!(decode(&w.buf).unwrap(), s, "version 6 keeps the end");
        let mut w = Writer::default();
        encode_v5_sections(&s, &mut w, 5);
        let mut back = decode(&w.buf).unwrap();
        assert_eq!(back.facts.ended, None, "version 5 has no end");
        back.facts.ended = s.facts.ended;
        assert_eq!(back, s);
    }
    s.facts.ended = None;
    let mut w = Writer::default();
    encode_v6_sections(&s, &mut w, 6);
    let v6 = w.buf;
    let mut w = Writer::default();
    encode_v5_sections(&s, &mut w, 5);
    assert_eq!((&v6[1..v6.len() - 1], v6[v6.len() - 1]), (&w.buf[1..], 0), "one byte more: not ended");
    // An end whose status is unknown is corrupt ("active" is written as no end at all).
    for code in [3u8, 200] {
        let mut b = v6.clone();
        *b.last_mut().unwrap() = code;
        b.push(2);
        assert_eq!(decode(&b), Err(CodecError::Invalid("status")), "{code}");
    }
}

/// `rich_state` with every CS action's trace: a snooze on its newest alert, an assignee, an
/// override, and a `cs-actions` offset applied.
fn state_with_actions() -> AccountState {
    use crate::core::actions::{CsState, Marked, Override, Status};
    let mut s = rich_state();
    s.applied[3] = 4_321;
    s.cs = Some(Box::new(CsState {
        marked: Some(Marked { status: Status::Snoozed, by: Some("dana@example.com".into()), at_ms: 1_765_000_000_000, until_day: Some(20_120), note: Some("on holiday — 休暇".into()), alert: Some((2, -7)) }),
        assignee: Some("lee".into()),
        overridden: Some(Override { band: Band::Green, reason: "sponsor renewed verbally".into(), by: None, at_ms: 5, until_day: MAX_STORED_DAY }),
    }));
    s
}

/// Version 7 keeps the CS team's actions; `state.upgrade_from = 6` writes version 6, which is
/// version 7 without them (the release before shows the account as if no action was taken).
#[test]
fn the_cs_teams_actions_round_trip_and_version_6_is_version_7_without_them() {
    let s = state_with_actions();
    let v7 = encode_to_vec(&s);
    assert_eq!(v7[0], STATE_VERSION);
    assert_eq!(decode(&v7).unwrap(), s);
    let mut w = Writer::default();
    encode_version(&s, PREVIOUS_VERSION, &mut w);
    assert_eq!(w.buf[0], 6);
    let back = decode(&w.buf).unwrap();
    assert_eq!((back.cs.as_ref(), back.applied[3]), (None, 0), "version 6 has no actions");
    assert_eq!(AccountState { cs: s.cs.clone(), applied: s.applied, ..back }, s);
    // Without actions: the offset and one byte.
    let plain = rich_state();
    let mut w = Writer::default();
    encode_version(&plain, PREVIOUS_VERSION, &mut w);
    assert_eq!(encode_to_vec(&plain).len(), w.buf.len() + 2);
    for n in 0..v7.len() {
        assert!(decode(&v7[..n]).is_err(), "truncated to {n} bytes");
    }
}

#[test]
fn the_day_range_is_that_of_time_dates() {
    let epoch = time::Date::from_calendar_date(1970, time::Month::January, 1).unwrap().to_julian_day();
    assert_eq!(MIN_STORED_DAY, time::Date::MIN.to_julian_day() - epoch);
    assert_eq!(MAX_STORED_DAY, time::Date::MAX.to_julian_day() - epoch);
}
