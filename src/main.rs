//! Command-line entry point: parsing only; each subcommand lives in `kizashi::cmd`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use kizashi::cmd;

/// jemalloc, for the C libraries too (see Cargo.toml): it hands freed memory back to the system.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (the `MALLOC_CONF` environment variable overrides them): background
/// threads give pages unused for a second back to the system (the default is ten seconds,
/// which a burst of a day's timers turns into a few hundred MiB of RSS above what is live).
#[export_name = "malloc_conf"]
static MALLOC_CONF: &[u8; 60] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";
use kizashi::config::{self, Settings};
use kizashi::event::timestamp::{day_of, now_ms, parse_date_day, parse_rfc3339_ms, DAY_MS};
use kizashi::generate::{GenOptions, Mix};

#[derive(Parser)]
#[command(name = "kizashi", version, about = "Early signs of churn: per-event account health scores and explained at-risk alerts")]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Back-test a configuration on history: JSONL files in, alerts, final scores and rejects out.
    Replay(ReplayArgs),
    /// Zero set-up demo: an embedded Kafka, a synthetic population fed in accelerated time, the
    /// whole pipeline, alerts printed as they arrive.
    Demo(DemoArgs),
    /// Write a synthetic population (usage, support, accounts, truth) as JSONL files, or produce
    /// it into Kafka topics.
    Generate(GenerateArgs),
    /// Run the pipeline: consume the input topics, publish alerts and scores, until SIGTERM/SIGINT.
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Fit the default scorecard to outcomes on one period and show it on a later one: replays
    /// once, writes the feature rows, a tuned configuration (tuned.toml) and a report.
    Tune(TuneArgs),
    /// Validate a configuration; print it resolved, or every problem.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

// The event files `replay` and `tune` read.
#[derive(Args)]
struct InputFiles {
    /// Usage events file (JSONL); repeatable.
    #[arg(long, required = true)]
    usage: Vec<PathBuf>,
    /// Support events file (JSONL); repeatable.
    #[arg(long)]
    support: Vec<PathBuf>,
    /// Account records file (JSONL); repeatable.
    #[arg(long)]
    accounts: Vec<PathBuf>,
    /// The CS team's actions (`cs-actions` records, JSONL): acknowledge, snooze, resolve,
    /// assign, override; repeatable.
    #[arg(long)]
    actions: Vec<PathBuf>,
}

// The options of `kizashi replay` (its help text is the variant's, above).
#[derive(Args)]
struct ReplayArgs {
    #[command(flatten)]
    files: InputFiles,
    /// Config file (TOML); defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory for alerts.jsonl, scores.jsonl and rejects.jsonl.
    #[arg(long)]
    out: PathBuf,
    /// Partitions to emulate (as Kafka's default partitioner places keys).
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// At the end, move stream time to this time (RFC 3339 or YYYY-MM-DD) so silent accounts are re-scored.
    #[arg(long)]
    until: Option<String>,
    /// Write each account's measures, score and facts at its first scoring of each day to this
    /// CSV file (with --outcomes: its next outcome and the days until it), for fitting models
    #[arg(long)]
    features: Option<PathBuf>,
    /// Clock for rejecting future timestamps (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
    /// Keep RocksDB state here instead of a temporary directory.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Records between writes of the outputs (alerts, rejects). Account states are written when
    /// the cache (state.memory_budget) is full and at the end, not per batch.
    #[arg(long, default_value_t = 200_000)]
    batch: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// After the replay, keep serving the HTTP API (on http.listen, or --http) on the replayed
    /// state until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// HTTP API address with --serve (overrides http.listen).
    #[arg(long, requires = "serve")]
    http: Option<String>,
    /// Outcome labels (JSONL: account_id, outcome = churned | downgraded | renewed | expanded,
    /// ts); repeatable. Scores the alerts and bands against them into evaluation.json.
    #[arg(long)]
    outcomes: Vec<PathBuf>,
    /// An alert counts for an outcome at most this many days after it (e.g. 90 or 90d).
    #[arg(long, default_value = "90d", requires = "outcomes")]
    horizon: String,
    /// Read each account's band this many days before its outcome (e.g. 30d).
    #[arg(long, default_value = "30d", requires = "outcomes")]
    band_at: String,
    /// A second config file replayed on the same records (its own state): both evaluations
    /// side by side with the differences.
    #[arg(long, requires = "outcomes")]
    compare: Option<PathBuf>,
    /// A generated population's truth.jsonl: print kizashi's verdicts per profile (share
    /// alerted, alerted within 7 and 14 days of a change, final bands; docs/populations.md).
    #[arg(long)]
    truth: Option<PathBuf>,
}

// The options of `kizashi tune`.
#[derive(Args)]
struct TuneArgs {
    #[command(flatten)]
    files: InputFiles,
    /// Outcome labels (JSONL, as for replay --outcomes); repeatable.
    #[arg(long, required = true)]
    outcomes: Vec<PathBuf>,
    /// Rows on or before this day (YYYY-MM-DD) fit; the rows after it validate.
    #[arg(long)]
    fit_until: String,
    /// A row is positive when its account churns or downgrades within this many days (e.g. 30d).
    #[arg(long, default_value = "30d")]
    horizon: String,
    /// The precision the red band's edge is searched for: the most churners caught with at least
    /// this share of the flagged accounts churning (0 < p ≤ 1).
    #[arg(long, default_value_t = 0.8)]
    precision: f64,
    /// The base configuration (TOML); defaults apply without one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output directory: features.csv, tuned.toml, report.txt and the base replay's outputs.
    #[arg(long)]
    out: PathBuf,
    /// Clock for rejecting future timestamps (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
}

// The options of `kizashi demo`.
#[derive(Args)]
struct DemoArgs {
    #[arg(long, default_value_t = 150)]
    accounts: usize,
    #[arg(long, default_value_t = 60)]
    days: u32,
    /// Wall seconds per simulated day.
    #[arg(long, default_value_t = 0.4)]
    day_seconds: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// HTTP API address (a free port is used if it is taken).
    #[arg(long, default_value = "127.0.0.1:9460")]
    http: String,
}

// The options of `kizashi generate`.
#[derive(Args)]
struct GenerateArgs {
    /// Output directory (required unless --to-kafka).
    #[arg(long, required_unless_present = "to_kafka")]
    out: Option<PathBuf>,
    /// Produce into the input topics of this Kafka cluster (bootstrap servers) instead.
    #[arg(long)]
    to_kafka: Option<String>,
    /// Config file for topic names and librdkafka properties (with --to-kafka).
    #[arg(long)]
    config: Option<PathBuf>,
    /// With --to-kafka: wall seconds per simulated day (accelerated time); default: as fast as possible.
    #[arg(long)]
    day_seconds: Option<f64>,
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Last day generated (YYYY-MM-DD); default: yesterday (UTC).
    #[arg(long)]
    end: Option<String>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Multiplies each user's daily chance of being active (volume knob).
    #[arg(long, default_value_t = 1.0)]
    activity: f64,
    /// Which population: `default`, or `realistic` (cohorts that behave like real customers;
    /// see docs/populations.md).
    #[arg(long, default_value = "default")]
    mix: Mix,
    /// What drives the outcomes' churn: `profile` (the account's kind), `breadth` (features used
    /// in the last 30 days) or `support` (tickets opened in the last 60 days) — the last two a
    /// hidden rule the default scorecard under-weights, for `kizashi tune` to find.
    #[arg(long, default_value = "profile")]
    churn_model: kizashi::outcome::synthetic::ChurnModel,
}

/// A flag set by SIGTERM or SIGINT.
fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    Ok(stop)
}

fn load_config(path: Option<&PathBuf>) -> Result<Settings> {
    config::load(path.map(PathBuf::as_path), std::env::vars()).map_err(|p| anyhow::anyhow!("{p}"))
}

fn parse_time(s: &str, what: &str) -> Result<i64> {
    parse_rfc3339_ms(s)
        .or_else(|| parse_date_day(s).map(|d| i64::from(d) * DAY_MS))
        .with_context(|| format!("{what}: `{s}` is neither RFC 3339 nor YYYY-MM-DD"))
}

/// A number of days: `90`, `90d` or `90days`, within `range`.
fn parse_days(s: &str, what: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32> {
    let t = s.trim();
    let digits = t.strip_suffix("days").or_else(|| t.strip_suffix("day")).or_else(|| t.strip_suffix('d')).unwrap_or(t);
    match digits.trim().parse::<u32>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => anyhow::bail!("{what}: `{s}` is not a number of days in {}..={} (e.g. 30d)", range.start(), range.end()),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay(args) => replay(args),
        Command::Demo(args) => demo(args),
        Command::Generate(args) => generate(args),
        Command::Run { config } => run_pipeline(config.as_ref()),
        Command::Tune(args) => tune(args),
        Command::CheckConfig { config } => check_config(config.as_ref()),
    }
}

/// `kizashi replay`: the records through the engine into the output files; with outcomes or a
/// truth file, the back-test; with --serve, the HTTP API on the replayed state until Ctrl-C.
/// `kizashi tune`: the base configuration fitted to the outcomes of one period, shown on the next.
fn tune(args: TuneArgs) -> Result<()> {
    let settings = load_config(args.config.as_ref())?;
    anyhow::ensure!(args.precision > 0.0 && args.precision <= 1.0, "--precision must be in (0, 1]");
    let fit_until = kizashi::event::timestamp::parse_date_day(&args.fit_until)
        .ok_or_else(|| anyhow::anyhow!("--fit-until: `{}` is not a YYYY-MM-DD date", args.fit_until))?;
    let opts = cmd::tune::TuneOptions {
        usage: args.files.usage,
        support: args.files.support,
        accounts: args.files.accounts,
        actions: args.files.actions,
        outcomes: args.outcomes,
        fit_until,
        horizon_days: parse_days(&args.horizon, "--horizon", 1..=3650)? as i32,
        out: args.out,
        now_ms: args.now.as_deref().map(|s| parse_time(s, "--now")).transpose()?.unwrap_or_else(now_ms),
        config_label: args.config.as_ref().map_or("built-in defaults".into(), |p| p.display().to_string()),
        precision: args.precision,
    };
    let report = cmd::tune::tune(&settings, &opts)?;
    print!("{}", report.text);
    println!("wrote {} (load it with --config)", report.config.display());
    Ok(())
}

fn replay(args: ReplayArgs) -> Result<()> {
    let settings = load_config(args.config.as_ref())?;
    anyhow::ensure!(args.partitions >= 1, "--partitions must be at least 1");
    let backtest = backtest_options(&args)?;
    let (server, serve) = if args.serve {
        let (server, shared, stop) = serve_replayed(&settings, args.http.as_deref())?;
        (Some(server), Some((shared, stop)))
    } else {
        (None, None)
    };
    let opts = cmd::replay::ReplayOptions {
        usage: args.files.usage,
        support: args.files.support,
        accounts: args.files.accounts,
        actions: args.files.actions,
        out: args.out.clone(),
        partitions: args.partitions,
        until_ms: args.until.as_deref().map(|s| parse_time(s, "--until")).transpose()?,
        now_ms: args.now.as_deref().map(|s| parse_time(s, "--now")).transpose()?.unwrap_or_else(now_ms),
        state_dir: args.state_dir,
        batch: args.batch.max(1),
        serve,
        features: args.features,
    };
    let summary = cmd::replay::run_backtest(&settings, &opts, backtest.as_ref())?;
    drop(server);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.render());
        let extra = match (&summary.evaluation, &summary.compare) {
            (Some(_), Some(_)) => ", evaluation.json and compare/",
            (Some(_), None) => ", evaluation.json",
            _ => "",
        };
        println!("wrote {}/alerts.jsonl, scores.jsonl, rejects.jsonl{extra}", args.out.display());
    }
    Ok(())
}

/// The back-test of a replay, if it has outcomes or a truth file to judge its verdicts by.
fn backtest_options(args: &ReplayArgs) -> Result<Option<cmd::replay::BacktestOptions>> {
    if args.outcomes.is_empty() && args.truth.is_none() {
        return Ok(None);
    }
    let compare = match &args.compare {
        Some(p) => Some((p.display().to_string(), load_config(Some(p)).context("--compare")?)),
        None => None,
    };
    Ok(Some(cmd::replay::BacktestOptions {
        outcomes: args.outcomes.clone(),
        horizon_days: parse_days(&args.horizon, "--horizon", 1..=3650)?,
        band_at_days: parse_days(&args.band_at, "--band-at", 0..=3650)?,
        config_label: args.config.as_ref().map_or_else(|| "built-in defaults".to_string(), |p| p.display().to_string()),
        compare,
        truth: args.truth.clone(),
    }))
}

/// Replay with --serve: the HTTP API (on --http, else http.listen) over the state the replay
/// fills, the API's state, and the flag Ctrl-C sets.
fn serve_replayed(settings: &Settings, http: Option<&str>) -> Result<(kizashi::api::Server, Arc<kizashi::runtime::Status>, Arc<AtomicBool>)> {
    let stop = stop_on_signals()?;
    let status = kizashi::runtime::Status::new(settings);
    let listen = http.unwrap_or(&settings.http.listen);
    anyhow::ensure!(!listen.is_empty(), "--serve needs an address: set http.listen or --http");
    let s = kizashi::api::serve(listen, kizashi::api::Shared::new(settings, status.clone()).offline())?;
    eprintln!("HTTP API at {}", s.url());
    Ok((s, status, stop))
}

/// `kizashi demo`.
fn demo(args: DemoArgs) -> Result<()> {
    let DemoArgs { accounts, days, day_seconds, seed, http } = args;
    anyhow::ensure!(day_seconds >= 0.0, "--day-seconds must not be negative");
    let stop = stop_on_signals()?;
    let opts = cmd::demo::DemoOptions { accounts, days, day_seconds, partitions: 3, seed, http };
    cmd::demo::run(&opts, stop)
}

/// `kizashi generate`: the population into files, or into Kafka topics.
fn generate(args: GenerateArgs) -> Result<()> {
    let GenerateArgs { out, to_kafka, config, day_seconds, accounts, days, end, seed, activity, mix, churn_model } = args;
    anyhow::ensure!(days >= 1, "--days must be at least 1");
    anyhow::ensure!(activity > 0.0 && activity <= 10.0, "--activity must be in (0, 10]");
    let end_day = match end {
        Some(s) => parse_date_day(&s).with_context(|| format!("--end: `{s}` is not YYYY-MM-DD"))?,
        None => day_of(now_ms()) - 1,
    };
    let opts = GenOptions { accounts, days, end_day, seed, activity, mix };
    let to_files = to_kafka.is_none();
    let (counts, out) = match (to_kafka, out) {
        (Some(brokers), _) => (generate_to_kafka(&opts, &brokers, config.as_ref(), day_seconds)?, format!("Kafka at {brokers}")),
        (None, Some(out)) => (cmd::generate::to_dir_with(&opts, &out, churn_model)?.1, out.display().to_string()),
        (None, None) => anyhow::bail!("give --out DIR or --to-kafka BROKERS"),
    };
    println!(
        "wrote {} usage, {} support and {} account events for {accounts} accounts over {days} days to {out}{}",
        counts[0],
        counts[1],
        counts[2],
        if to_files { " (with truth.jsonl and outcomes.jsonl)" } else { "" },
    );
    Ok(())
}

/// `kizashi generate --to-kafka`: produces the population into the input topics of `brokers`
/// (names and client properties from the config); returns the usage, support and account counts.
fn generate_to_kafka(opts: &GenOptions, brokers: &str, config: Option<&PathBuf>, day_seconds: Option<f64>) -> Result<[u64; 3]> {
    let settings = load_config(config)?;
    let mut c = kizashi::pipeline::client_config(&settings, kizashi::pipeline::Client::Producer);
    c.set("bootstrap.servers", brokers);
    let stop = std::sync::atomic::AtomicBool::new(false);
    cmd::generate::to_kafka(opts, &c, &settings.kafka.topics, day_seconds, &stop, |_, _| {})
}

/// `kizashi run`: the pipeline until SIGTERM or SIGINT.
fn run_pipeline(config: Option<&PathBuf>) -> Result<()> {
    let settings = load_config(config)?;
    let stop = stop_on_signals()?;
    kizashi::cmd::run::run(&settings, stop)
}

/// `kizashi check-config`: the configuration resolved (defaults, file, environment), or its problems.
fn check_config(config: Option<&PathBuf>) -> Result<()> {
    let settings = load_config(config)?;
    print!("{}", settings.to_toml());
    eprintln!("configuration is valid");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logging follows the config's [log] section; a config with problems is reported by the
    // command itself, so here it just falls back to the defaults.
    let config = match &cli.command {
        Command::Replay(ReplayArgs { config, .. })
        | Command::Generate(GenerateArgs { config, .. })
        | Command::Run { config }
        | Command::Tune(TuneArgs { config, .. })
        | Command::CheckConfig { config } => config.as_ref(),
        Command::Demo(_) => None,
    };
    let log = load_config(config).map(|s| s.log).unwrap_or_default();
    let level = if matches!(cli.command, Command::Demo(_)) && std::env::var_os("KIZASHI__LOG__LEVEL").is_none() {
        "warn".to_string()
    } else {
        log.level
    };
    kizashi::telemetry::init(cli.log_json || log.format == "json", &level);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
