//! Where an account's encoded bytes go: `cargo run --release --example state_sizes -- DIR` on the
//! state directory of a stopped kizashi (or a copy). Each account is decoded and encoded again in
//! this build's encoding, then its parts are cleared one by one; what each clearing saves is its
//! share. Prints the mean per account of each part and a histogram of whole sizes.

use kizashi::core::state::AccountState;
use kizashi::store::codec::encode_to_vec;
use kizashi::store::Store;

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: state_sizes STATE_DIR");
        std::process::exit(2);
    };
    let budget = kizashi::config::Settings::default().state.budget();
    let store = Store::open(std::path::Path::new(&dir), false, budget).expect("opening the state directory");
    type Clear = fn(&mut AccountState);
    let parts: [(&str, Clear); 11] = [
        ("recent alerts", |s| s.score.recent_alerts.clear()),
        ("daily bests", |s| s.score.best.clear()),
        ("last evaluation", |s| s.score.last = None),
        ("event ids seen", |s| s.seen_ids.clear()),
        ("score history", |s| s.score.history.clear()),
        ("users", |s| s.users = Default::default()),
        ("features", |s| s.features = Default::default()),
        ("usage per day", |s| s.usage = Default::default()),
        ("tickets", |s| s.tickets = Default::default()),
        ("account facts", |s| s.facts = Default::default()),
        ("other day counts", |s| {
            for d in [&mut s.opened, &mut s.csat_sum, &mut s.csat_count, &mut s.nps_count, &mut s.nps_promoters, &mut s.nps_detractors] {
                *d = Default::default();
            }
        }),
    ];
    let mut total = 0u64;
    let mut shares = [0u64; 11];
    let mut accounts = 0u64;
    let mut histogram = std::collections::BTreeMap::<u64, u64>::new();
    store
        .for_each_account(|_, _, mut s| {
            accounts += 1;
            let mut size = encode_to_vec(&s).len() as u64;
            total += size;
            *histogram.entry(size / 256 * 256).or_default() += 1;
            for (share, (_, clear)) in shares.iter_mut().zip(&parts) {
                clear(&mut s);
                let now = encode_to_vec(&s).len() as u64;
                *share += size - now;
                size = now;
            }
        })
        .expect("reading the accounts");
    let per = |b: u64| b as f64 / accounts.max(1) as f64;
    println!("{accounts} accounts, {:.1} bytes each encoded", per(total));
    for (share, (name, _)) in shares.iter().zip(&parts) {
        println!("  {name:<18} {:>8.1}", per(*share));
    }
    println!("accounts by encoded size:");
    for (from, n) in histogram {
        println!("  {from:>6}–{:<6} {n}", from + 255);
    }
}
