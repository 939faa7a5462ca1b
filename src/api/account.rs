//! `/v1/accounts/{id}`: one account's health as of its last evaluation.

use serde_json::{json, Value};

use crate::core::alerts::{explain, round1, shortfall, summary, Rule, ScoreUpdate};
use crate::core::{AccountState, Params};
use crate::event::timestamp::{format_day, format_ms};

/// The account's facts, score, band, scorecard, every measure with its value and points, the
/// explanation of the score against the best score of the score-drop window, and the last alerts.
pub fn detail(id: &str, partition: u32, s: &AccountState, params: &Params) -> Value {
    // Ticket ages and the most engaged users are as of the account's last evaluation.
    let at = s.score.last.as_ref().map_or(0, |l| l.at_ms);
    let day = crate::event::timestamp::day_of(at);
    let (mut facts, alerts, open_tickets, top_users) = (facts(s), last_alerts(id, s), open_tickets(s, at), top_users(s, day));
    facts["tier"] = json!(params.tiers.of(s.facts.segment.as_deref(), s.facts.arr).name());
    let view = s.cs_view(id, s.score.band);
    let cs = serde_json::to_value(crate::core::actions::CsJson::of(&view)).unwrap_or_default();
    let Some(last) = &s.score.last else {
        return json!({
            "account_id": id,
            "partition": partition,
            "facts": facts,
            "cs": cs,
            "score": null,
            "band": null,
            "scorecard": null,
            "scored_at": null,
            "measures": [],
            "explanation": [],
            "summary": "not scored yet: no measure has data",
            "last_alerts": alerts,
            "open_tickets": open_tickets,
            "open_ticket_count": s.tickets.open_count(),
            "top_users": top_users,
        });
    };
    // The scorecard it was scored with; if the configuration changed since, the one it would get now.
    let card = params.cards.iter().find(|c| c.id == s.score.scorecard).unwrap_or_else(|| params.card_for(s, last.at_ms));
    // Compared with the best score of the window before the last evaluation (none if the last
    // evaluation is itself the best).
    let baseline = s.score.best.front().map(|(_, b)| b).filter(|b| b.at_ms != last.at_ms);
    let values = last.values.to_array();
    let explanation = explain(card, &values, baseline.map(|b| b.values.to_array()).as_ref());
    let lead = match baseline {
        Some(b) => format!(
            "health score {:.1} ({}), best of the last {} days {:.1}",
            last.score,
            last.band.name(),
            params.alerts.score_drop.days,
            b.score
        ),
        None => format!("health score {:.1} ({})", last.score, last.band.name()),
    };
    json!({
        "account_id": id,
        "partition": partition,
        "facts": facts,
        "cs": cs,
        "score": round1(last.score),
        // An override's band while one holds (`cs.override.scored_band`: the scorecard's).
        "band": s.shown_band(s.score.band.unwrap_or(last.band)).name(),
        "scorecard": s.score.scorecard,
        "scored_at": format_ms(last.at_ms),
        "measures": ScoreUpdate::measures(card, &values),
        "shortfall": shortfall(card, &values, crate::core::measures::usage_known_absent(s, day, params.state.retention_days)),
        "explanation": explanation,
        "summary": summary(&lead, None, &explanation),
        "last_alerts": alerts,
        "open_tickets": open_tickets,
        "open_ticket_count": s.tickets.open_count(),
        "top_users": top_users,
    })
}

/// What the account records say: name, segment, seats, ARR, dates, owner.
fn facts(s: &AccountState) -> Value {
    let f = &s.facts;
    json!({
        "name": f.name,
        "segment": f.segment,
        "seats": f.seats,
        "arr": f.arr,
        "renewal_date": f.renewal_day.map(format_day),
        "start_date": f.start_day.map(format_day),
        "owner": f.owner,
        // "active", or how the account ended and when (it then raises no alerts).
        "status": f.ended.map_or("active", |e| e.status.name()),
        "end_date": f.ended.map(|e| format_day(e.day)),
    })
}

/// The oldest open tickets (at most 20), with their age at `at`.
fn open_tickets(s: &AccountState, at: i64) -> Vec<Value> {
    s.tickets
        .oldest_open(20)
        .map(|(id, t)| {
            let priority = ["low", "normal", "high", "urgent"].get(t.priority.code() as usize).copied();
            json!({
                "ticket_id": id,
                "priority": priority,
                "opened_at": format_ms(t.opened_ms),
                "age_days": (at.saturating_sub(t.opened_ms) / 86_400_000).max(0),
            })
        })
        .collect()
}

/// The account's recent alerts, newest first.
fn last_alerts(id: &str, s: &AccountState) -> Vec<Value> {
    s.score
        .recent_alerts
        .iter()
        .rev()
        .map(|a| {
            json!({
                "alert_id": a.alert_id(id),
                "rule": Rule::from_code(a.rule).map(Rule::name),
                "event_time": format_ms(a.at_ms),
                "summary": a.summary.text(),
            })
        })
        .collect()
}

/// The most engaged users over the 28 days before `day`, at most 10.
fn top_users(s: &AccountState, day: i32) -> Vec<Value> {
    crate::core::people::top_users(&s.users, day - 1, 10)
        .into_iter()
        .map(|(u, champion)| {
            json!({
                "user_id": u.user_id,
                "rank": crate::core::people::rank(u.active_days, champion),
                "active_days_28d": u.active_days,
                "last_seen": format_day(u.last_day),
            })
        })
        .collect()
}
