//! Command-line entry point: parsing only; each subcommand lives in `kizashi::cmd`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use kizashi::cmd;
use kizashi::config::{self, Settings};
use kizashi::event::timestamp::{day_of, now_ms, parse_date_day, parse_rfc3339_ms, DAY_MS};
use kizashi::generate::GenOptions;

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
    Replay {
        /// Usage events file (JSONL); repeatable.
        #[arg(long, required = true)]
        usage: Vec<PathBuf>,
        /// Support events file (JSONL); repeatable.
        #[arg(long)]
        support: Vec<PathBuf>,
        /// Account records file (JSONL); repeatable.
        #[arg(long)]
        accounts: Vec<PathBuf>,
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
        /// Clock for rejecting future timestamps (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
        /// Keep RocksDB state here instead of a temporary directory.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Records per state-store batch (each touched account is written once per batch).
        #[arg(long, default_value_t = 200_000)]
        batch: usize,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic population (usage, support, accounts, truth) as JSONL files.
    Generate {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
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
    },
    /// Run the pipeline: consume the input topics, publish alerts and scores, until SIGTERM/SIGINT.
    Run {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration; print it resolved, or every problem.
    CheckConfig {
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

fn load_config(path: Option<&PathBuf>) -> Result<Settings> {
    config::load(path.map(PathBuf::as_path), std::env::vars()).map_err(|p| anyhow::anyhow!("{p}"))
}

fn parse_time(s: &str, what: &str) -> Result<i64> {
    parse_rfc3339_ms(s)
        .or_else(|| parse_date_day(s).map(|d| i64::from(d) * DAY_MS))
        .with_context(|| format!("{what}: `{s}` is neither RFC 3339 nor YYYY-MM-DD"))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Replay { usage, support, accounts, config, out, partitions, until, now, state_dir, batch, json } => {
            let settings = load_config(config.as_ref())?;
            anyhow::ensure!(partitions >= 1, "--partitions must be at least 1");
            let opts = cmd::replay::ReplayOptions {
                usage,
                support,
                accounts,
                out: out.clone(),
                partitions,
                until_ms: until.as_deref().map(|s| parse_time(s, "--until")).transpose()?,
                now_ms: now.as_deref().map(|s| parse_time(s, "--now")).transpose()?.unwrap_or_else(now_ms),
                state_dir,
                batch: batch.max(1),
            };
            let summary = cmd::replay::run(&settings, &opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.render());
                println!("wrote {}/alerts.jsonl, scores.jsonl, rejects.jsonl", out.display());
            }
            Ok(())
        }
        Command::Generate { out, accounts, days, end, seed, activity } => {
            anyhow::ensure!(days >= 1, "--days must be at least 1");
            anyhow::ensure!(activity > 0.0 && activity <= 10.0, "--activity must be in (0, 10]");
            let end_day = match end {
                Some(s) => parse_date_day(&s).with_context(|| format!("--end: `{s}` is not YYYY-MM-DD"))?,
                None => day_of(now_ms()) - 1,
            };
            let opts = GenOptions { accounts, days, end_day, seed, activity };
            let (_, counts) = cmd::generate::to_dir(&opts, &out)?;
            println!(
                "wrote {} usage, {} support and {} account events for {accounts} accounts over {days} days to {}",
                counts[0],
                counts[1],
                counts[2],
                out.display()
            );
            Ok(())
        }
        Command::Run { config } => {
            let settings = load_config(config.as_ref())?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
            }
            kizashi::pipeline::run(&settings, stop)
        }
        Command::CheckConfig { config } => {
            let settings = load_config(config.as_ref())?;
            print!("{}", settings.to_toml());
            eprintln!("configuration is valid");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    kizashi::telemetry::init(cli.log_json);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
