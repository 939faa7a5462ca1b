//! Outcome labels for a generated population (`generate`'s `outcomes.jsonl`): what each account
//! does at (or near) its renewal, drawn by profile. Deterministic for the seed, and drawn from a
//! random stream of its own, so adding outcomes never changes the generated events.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Outcome, OutcomeKind};
use crate::core::ids::fnv64;
use crate::event::timestamp::{parse_date_day, DAY_MS};
use crate::generate::Truth;

use OutcomeKind::{Churned, Downgraded, Expanded, Renewed};

/// Chances of each outcome by profile name (names, not the enum, so profiles added later fall
/// through to the healthy mix until they get a line here).
fn mix(profile: &str) -> &'static [(OutcomeKind, f64)] {
    match profile {
        // Usage faded or stopped: most leave at renewal, some keep a smaller plan.
        "declining" | "declining_with_tickets" => &[(Churned, 0.65), (Downgraded, 0.20), (Renewed, 0.15)],
        "inactive" => &[(Churned, 0.75), (Downgraded, 0.15), (Renewed, 0.10)],
        "never_activated" => &[(Churned, 0.80), (Downgraded, 0.10), (Renewed, 0.10)],
        // Friction, not abandonment: a raised risk, mostly renewed.
        "support_heavy" => &[(Churned, 0.20), (Downgraded, 0.15), (Renewed, 0.65)],
        // The realistic mix's changes: a champion gone (half the usage with them) often ends in
        // a smaller plan or a churn; a support crisis left unanswered drives some away.
        "champion_left" => &[(Churned, 0.40), (Downgraded, 0.30), (Renewed, 0.30)],
        "support_crisis" => &[(Churned, 0.35), (Downgraded, 0.20), (Renewed, 0.45)],
        // Always low, never changed: a light use that mostly renews as it is.
        "low_frequency" => &[(Churned, 0.10), (Downgraded, 0.20), (Renewed, 0.70)],
        // Few seats used: right-sizing at renewal is the typical end.
        "shelfware" => &[(Churned, 0.15), (Downgraded, 0.40), (Renewed, 0.45)],
        // First renewal still ahead: mostly renewed, a failed onboarding churns.
        "onboarding" => &[(Churned, 0.10), (Renewed, 0.85), (Expanded, 0.05)],
        // Healthy (and any profile not listed): a few churn for no visible reason (budget, an
        // acquisition), most renew, some expand.
        _ => &[(Churned, 0.04), (Renewed, 0.76), (Expanded, 0.20)],
    }
}

/// One outcome per account. Renewed and downgraded are dated at the renewal day; churned up to
/// 30 days before it (notice given); expanded up to 60 days before it (an upsell during the term).
pub fn outcomes(truths: &[Truth], seed: u64) -> Vec<Outcome> {
    truths
        .iter()
        .filter_map(|t| {
            let renewal = parse_date_day(&t.renewal_date)?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv64(&[b"outcome", t.account_id.as_bytes()]));
            let roll: f64 = rng.gen();
            let mut acc = 0.0;
            let options = mix(t.profile.name());
            let kind = options
                .iter()
                .find(|(_, p)| {
                    acc += p;
                    roll < acc
                })
                .map_or(options[options.len() - 1].0, |(k, _)| *k);
            let before = match kind {
                Churned => rng.gen_range(0..=30),
                Expanded => rng.gen_range(0..=60),
                Downgraded | Renewed => 0,
            };
            Some(Outcome { account_id: t.account_id.clone(), kind, ts_ms: i64::from(renewal - before) * DAY_MS })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate, GenOptions};

    #[test]
    fn each_account_gets_one_outcome_by_its_profile_deterministically() {
        let opts = GenOptions { accounts: 300, days: 20, end_day: 20_400, seed: 7, activity: 0.05, mix: Default::default() };
        let truths = generate(&opts, |_| {});
        let a = outcomes(&truths, 7);
        assert_eq!(a, outcomes(&truths, 7), "same seed, same outcomes");
        assert_ne!(a, outcomes(&truths, 8));
        assert_eq!(a.len(), truths.len());
        let share = |profile: &str, bad: bool| {
            let rows: Vec<_> = truths.iter().zip(&a).filter(|(t, _)| t.profile.name() == profile).collect();
            rows.iter().filter(|(_, o)| o.kind.is_bad() == bad).count() as f64 / rows.len().max(1) as f64
        };
        assert!(share("declining", true) > 0.6 && share("inactive", true) > 0.6);
        assert!(share("healthy", false) > 0.85);
        for (t, o) in truths.iter().zip(&a) {
            let renewal = i64::from(parse_date_day(&t.renewal_date).unwrap()) * DAY_MS;
            assert!(o.ts_ms <= renewal && o.ts_ms >= renewal - 60 * DAY_MS, "{o:?} vs {}", t.renewal_date);
            assert!(o.ts_ms > i64::from(opts.end_day - 60) * DAY_MS);
        }
    }
}
