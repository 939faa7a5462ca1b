//! Outcome labels for a generated population (`generate`'s `outcomes.jsonl`): what each account
//! does at (or near) its renewal, drawn by profile — or, with a churn model other than
//! `profile`, by a hidden rule on what the account did (`ChurnModel`): populations whose churn the
//! default scorecard under-weights, for `kizashi tune` to recover. Deterministic for the seed, and
//! drawn from a random stream of its own, so adding outcomes never changes the generated events.

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

/// What drives churn in a generated population's outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChurnModel {
    /// By the account's profile (declining, inactive… churn; healthy accounts renew): what the
    /// default scorecard is built to see.
    #[default]
    Profile,
    /// By how many features the account used in its last 30 days, whatever its profile: the
    /// narrowest third mostly leaves, the broadest third stays (a product whose value is in its
    /// breadth; the default scorecard gives full points from 8 features on).
    Breadth,
    /// By how many support tickets it opened in its last 60 days: the third with the most mostly
    /// leaves (friction the default scorecard weighs little unless urgent tickets age).
    Support,
}

impl ChurnModel {
    pub const ALL: [ChurnModel; 3] = [ChurnModel::Profile, ChurnModel::Breadth, ChurnModel::Support];

    pub fn name(self) -> &'static str {
        match self {
            ChurnModel::Profile => "profile",
            ChurnModel::Breadth => "breadth",
            ChurnModel::Support => "support",
        }
    }
}

impl std::str::FromStr for ChurnModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ChurnModel::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| format!("`{s}` is not one of profile, breadth, support"))
    }
}

/// What a hidden churn rule reads of each account, gathered from the generated records.
#[derive(Debug, Default)]
pub struct Signals {
    /// Distinct features used in the last 30 days.
    breadth: std::collections::HashMap<String, std::collections::HashSet<String>>,
    /// Tickets opened in the last 60 days.
    tickets: std::collections::HashMap<String, u32>,
    end_day: i32,
}

impl Signals {
    pub fn new(end_day: i32) -> Signals {
        Signals { end_day, ..Signals::default() }
    }

    /// Takes one generated record (its JSON line).
    pub fn observe(&mut self, kind: crate::event::EventKind, account: &str, ts_ms: i64, line: &str) {
        let day = crate::event::timestamp::day_of(ts_ms);
        match kind {
            crate::event::EventKind::Usage if day > self.end_day - 30 => {
                let feature = line.split_once(r#""feature":""#).and_then(|(_, rest)| rest.split_once('"')).map(|(f, _)| f);
                let set = self.breadth.entry(account.to_string()).or_default();
                if let Some(f) = feature {
                    set.insert(f.to_string());
                }
            }
            crate::event::EventKind::Support if day > self.end_day - 60 && line.contains(r#""kind":"opened""#) => {
                *self.tickets.entry(account.to_string()).or_default() += 1;
            }
            _ => {}
        }
    }

    /// The account's value under `model` (higher: more likely to stay), if the model reads one.
    fn value(&self, model: ChurnModel, account: &str) -> Option<f64> {
        match model {
            ChurnModel::Profile => None,
            ChurnModel::Breadth => Some(self.breadth.get(account).map_or(0, |s| s.len()) as f64),
            ChurnModel::Support => Some(-f64::from(self.tickets.get(account).copied().unwrap_or(0))),
        }
    }
}

/// Chances of each outcome by third of a hidden rule's ranking (0: the riskiest third).
fn mix_by_third(third: usize) -> &'static [(OutcomeKind, f64)] {
    match third {
        0 => &[(Churned, 0.45), (Downgraded, 0.20), (Renewed, 0.35)],
        1 => &[(Churned, 0.10), (Downgraded, 0.10), (Renewed, 0.70), (Expanded, 0.10)],
        _ => &[(Churned, 0.02), (Renewed, 0.73), (Expanded, 0.25)],
    }
}

/// One outcome per account, by profile (`ChurnModel::Profile`).
pub fn outcomes(truths: &[Truth], seed: u64) -> Vec<Outcome> {
    outcomes_by(truths, seed, ChurnModel::Profile, &Signals::default())
}

/// One outcome per account, drawn as `model` says (its value read from `signals`). Renewed and
/// downgraded are dated at the renewal day; churned up to 30 days before it (notice given);
/// expanded up to 60 days before it (an upsell during the term).
pub fn outcomes_by(truths: &[Truth], seed: u64, model: ChurnModel, signals: &Signals) -> Vec<Outcome> {
    // The hidden rule's thirds: accounts ranked by its value (ties by id, so the split is total).
    let mut ranked: Vec<(f64, &str)> = truths.iter().filter_map(|t| Some((signals.value(model, &t.account_id)?, t.account_id.as_str()))).collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
    let third: std::collections::HashMap<&str, usize> = ranked.iter().enumerate().map(|(i, (_, id))| (*id, 3 * i / ranked.len().max(1))).collect();
    truths
        .iter()
        .filter_map(|t| {
            let renewal = parse_date_day(&t.renewal_date)?;
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ fnv64(&[b"outcome", t.account_id.as_bytes()]));
            let roll: f64 = rng.gen();
            let mut acc = 0.0;
            let options = match third.get(t.account_id.as_str()) {
                Some(&k) => mix_by_third(k),
                None => mix(t.profile.name()),
            };
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

    #[test]
    fn a_hidden_rule_drives_churn_by_what_the_accounts_did_not_by_profile() {
        let opts = GenOptions { accounts: 300, days: 40, end_day: 20_400, seed: 3, activity: 0.3, mix: Default::default() };
        let mut signals = Signals::new(opts.end_day);
        let truths = generate(&opts, |r| signals.observe(r.kind, &r.account_id, r.ts_ms, &r.line));
        let o = outcomes_by(&truths, 3, ChurnModel::Breadth, &signals);
        assert_eq!(o.len(), truths.len());
        let breadth = |id: &str| signals.value(ChurnModel::Breadth, id).unwrap();
        let mean = |bad: bool| {
            let v: Vec<f64> = o.iter().filter(|x| x.kind.is_bad() == bad).map(|x| breadth(&x.account_id)).collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!(mean(true) + 3.0 < mean(false), "churners used fewer features: {} vs {}", mean(true), mean(false));
        assert_eq!(o, outcomes_by(&truths, 3, ChurnModel::Breadth, &signals), "deterministic");
        assert_eq!(outcomes(&truths, 3), outcomes_by(&truths, 3, ChurnModel::Profile, &signals), "profile: as before");
        assert!(signals.tickets.values().sum::<u32>() > 0, "tickets counted");
    }
}
