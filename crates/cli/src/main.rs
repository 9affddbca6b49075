//! The `upshot` binary: parses the command line and glues the crates together.

mod export;
mod import;
mod input;
mod progress;

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use upshot_engine::Report;
use upshot_report::Format;
use upshot_store::{Person, SiteRecord, Store};

#[derive(Parser)]
#[command(
    name = "upshot",
    version,
    about = "What on-site personalization earns a shop: impressions, clicks, attributed orders and revenue, lifts."
)]
struct Cli {
    /// The data directory.
    #[arg(long, global = true, default_value = "./upshot-data")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create, show and configure sites.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Import events (NDJSON or a JSON array; `-` for stdin; `.gz` accepted).
    Import {
        #[arg(long)]
        site: String,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Compute a site's report for a range of local dates.
    Report(ReportArgs),
    /// Generate a synthetic shop's events as NDJSON.
    Gen(GenArgs),
    /// Check every checksum of the stored data and say what is damaged (changes nothing).
    Verify,
    /// Build a site's day partials (every model, every page type), so that reports of any
    /// range add days instead of reading every event; `upshot serve` keeps them current.
    RebuildPartials {
        #[arg(long)]
        site: String,
    },
    /// Copy the data dir consistently, also while `upshot serve` writes to it.
    Backup {
        /// A new (or empty) directory: the copy is a data dir of its own.
        #[arg(long)]
        to: PathBuf,
    },
    /// Write a site's raw events as NDJSON or Parquet (DuckDB, pandas and Spark read it).
    Export {
        #[arg(long)]
        site: String,
        /// First local date (YYYY-MM-DD) to export; default: the beginning.
        #[arg(long)]
        from: Option<String>,
        /// Last local date (YYYY-MM-DD) to export; default: the end.
        #[arg(long)]
        to: Option<String>,
        /// ndjson or parquet.
        #[arg(long, default_value = "ndjson")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Erase one person's events everywhere (privacy-law erasure), durably.
    Forget {
        #[arg(long)]
        site: String,
        #[arg(long, conflicts_with = "profile", required_unless_present = "profile")]
        visitor: Option<String>,
        /// Erases the events carrying this profile_id and all events of its visitors.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Drop whole UTC days older than the last N days.
    Retain {
        #[arg(long)]
        site: String,
        /// Days to keep before today (today is always kept).
        #[arg(long)]
        retain_days: u32,
        /// Count days back from this date instead of today (UTC).
        #[arg(long)]
        today: Option<String>,
    },
    /// Serve the dashboard and receive events over HTTP (collector, tracker, report API) until stopped.
    Serve {
        /// Address to listen on; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where events are kept: `embedded` (this data dir) or `clickhouse` (shipped to
        /// --clickhouse-url; the data dir's log is the spool).
        #[arg(long, default_value = "embedded")]
        store: String,
        /// A ClickHouse node of the cluster `upshot clickhouse init` set up
        /// (http://HOST:8123 or https://HOST:8443).
        #[arg(long)]
        clickhouse_url: Option<String>,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// A file holding the dashboard's admin password (signs in to every site; also
        /// read from UPSHOT_ADMIN_PASSWORD). Without it, each site signs in with its secret key.
        #[arg(long)]
        admin_password_file: Option<PathBuf>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// The ClickHouse backend (a cluster for shops that outgrow one machine).
    #[command(subcommand)]
    Clickhouse(ClickhouseCommand),
    /// Generate a realistic shop, load it, show its report and serve its dashboard: the first thing to run.
    Demo {
        /// Visitors in the demo shop.
        #[arg(long, default_value_t = 20_000)]
        visitors: u64,
        /// Where the dashboard listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum ClickhouseCommand {
    /// Create (or check) upshot's schema on every node given: idempotent.
    Init {
        /// A node's URL (http://HOST:8123 or https://HOST:8443); give every shard's node.
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        /// The cluster name of the nodes' `remote_servers` config.
        #[arg(long)]
        cluster: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Print the statements `init` runs (to create replicated tables by hand first).
    Statements {
        /// The cluster name of the nodes' `remote_servers` config.
        #[arg(long)]
        cluster: String,
    },
}

/// How ClickHouse nodes are reached (the same for every node of the cluster).
#[derive(clap::Args)]
struct ConnectionArgs {
    /// ClickHouse's user (default: `default`, or the user in the URL).
    #[arg(long)]
    clickhouse_user: Option<String>,
    /// A file holding that user's password (also read from UPSHOT_CLICKHOUSE_PASSWORD);
    /// never put it in the URL of a shared command line.
    #[arg(long)]
    clickhouse_password_file: Option<PathBuf>,
    /// PEM certificates of the CA that signed the nodes' https certificates (instead of
    /// the web's public roots).
    #[arg(long)]
    clickhouse_ca_file: Option<PathBuf>,
    /// gzip requests and answers: `auto` (over https only), `gzip` or `none`.
    #[arg(long, default_value = "auto")]
    clickhouse_compression: String,
}

impl ConnectionArgs {
    fn options(&self) -> Result<upshot_clickhouse::http::ClientOptions> {
        let password = match &self.clickhouse_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the ClickHouse password from {}", path.display()))?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            None => std::env::var("UPSHOT_CLICKHOUSE_PASSWORD").ok().filter(|password| !password.is_empty()),
        };
        let ca_pem = match &self.clickhouse_ca_file {
            Some(path) => Some(
                std::fs::read(path).with_context(|| format!("reading the ClickHouse CA from {}", path.display()))?,
            ),
            None => None,
        };
        Ok(upshot_clickhouse::http::ClientOptions {
            user: self.clickhouse_user.clone(),
            password,
            ca_pem,
            compression: upshot_clickhouse::http::Compression::parse(&self.clickhouse_compression)
                .context("--clickhouse-compression")?,
            ..upshot_clickhouse::http::ClientOptions::default()
        })
    }
}

/// The collector's limits (see `upshot_server::Limits` for what each means).
#[derive(clap::Args)]
struct LimitArgs {
    /// Largest request body as sent.
    #[arg(long, default_value_t = upshot_server::Limits::default().body_bytes_max)]
    body_bytes_max: usize,
    /// Largest request body once gunzipped.
    #[arg(long, default_value_t = upshot_server::Limits::default().decompressed_bytes_max)]
    decompressed_bytes_max: usize,
    /// Most events in one request.
    #[arg(long, default_value_t = upshot_server::Limits::default().batch_events_max)]
    batch_events_max: usize,
    /// Sustained events per second one key may send (429 past it).
    #[arg(long, default_value_t = upshot_server::Limits::default().key_events_per_second)]
    key_events_per_second: u32,
    /// Events one key may send at once above its sustained rate.
    #[arg(long, default_value_t = upshot_server::Limits::default().key_events_burst)]
    key_events_burst: u32,
    /// Batches waiting to be written (503 past it).
    #[arg(long, default_value_t = upshot_server::Limits::default().queue_batches_max)]
    queue_batches_max: usize,
    /// Open connections at once.
    #[arg(long, default_value_t = upshot_server::Limits::default().connections_max)]
    connections_max: usize,
    /// Memory all request bodies being read may hold at once (bytes); past it, 503.
    #[arg(long, default_value_t = upshot_server::Limits::default().body_memory_bytes_max)]
    body_memory_bytes_max: usize,
    /// Milliseconds a request's head may take to arrive (also the keep-alive idle limit).
    #[arg(long, default_value_t = upshot_server::Limits::default().header_read_timeout_ms)]
    header_read_timeout_ms: u64,
    /// Milliseconds a request's body may take to arrive after its head.
    #[arg(long, default_value_t = upshot_server::Limits::default().body_read_timeout_ms)]
    body_read_timeout_ms: u64,
    /// How many hours past the time of receipt an event's ts may lie.
    #[arg(long, default_value_t = upshot_server::Limits::default().future_ms_max / 3_600_000)]
    future_hours_max: i64,
    /// Seconds a report may take (503 past it).
    #[arg(long, default_value_t = upshot_server::Limits::default().report_seconds_max)]
    report_seconds_max: u64,
}

impl LimitArgs {
    fn limits(&self) -> upshot_server::Limits {
        upshot_server::Limits {
            body_bytes_max: self.body_bytes_max,
            decompressed_bytes_max: self.decompressed_bytes_max,
            batch_events_max: self.batch_events_max,
            key_events_per_second: self.key_events_per_second,
            key_events_burst: self.key_events_burst,
            queue_batches_max: self.queue_batches_max,
            connections_max: self.connections_max,
            body_memory_bytes_max: self.body_memory_bytes_max,
            header_read_timeout_ms: self.header_read_timeout_ms,
            body_read_timeout_ms: self.body_read_timeout_ms,
            future_ms_max: self.future_hours_max.saturating_mul(3_600_000),
            report_seconds_max: self.report_seconds_max,
            ..upshot_server::Limits::default()
        }
    }
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Create a site and print its keys (shown only once; stored hashed).
    Create {
        site: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[arg(long, default_value = "USD")]
        currency: String,
        /// `text` or `json` (`{"site", "public_key", "secret_key"}`).
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Show a site and its settings.
    Show { site: String },
    /// Change a setting: timezone, session_gap, attribution_window, recommendation_window,
    /// cuped_lookback, sequential_tuning_visitors, orders_from_backend, qualifying.<kind>,
    /// experiment.<name>.control, experiment.<name>.split.
    Set { site: String, key: String, value: String },
    /// List the sites.
    List,
}

#[derive(clap::Args)]
struct ReportArgs {
    #[arg(long)]
    site: String,
    /// First local date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    from: String,
    /// Last local date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    to: String,
    #[arg(long)]
    page_type: Option<String>,
    #[arg(long)]
    placement: Option<String>,
    /// recommendation, popup, notification, block, widget or other.
    #[arg(long)]
    kind: Option<String>,
    /// last, first, linear, time_decay or position.
    #[arg(long, default_value = "last")]
    model: String,
    /// Only sessions with one value of an attribute: device:(desktop|mobile|tablet|other|
    /// unknown), visitor_type:(new|returning), channel:(paid|email|social|search|campaign|
    /// referral|direct), landing_page_type:<page type> (docs/metrics.md).
    #[arg(long)]
    segment: Option<String>,
    /// table, json or csv.
    #[arg(long, default_value = "table")]
    format: String,
}

#[derive(clap::Args)]
struct GenArgs {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 1000)]
    visitors: u64,
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// First date of the generated period (UTC).
    #[arg(long, default_value = "2024-05-01")]
    start: String,
    /// True relative lift of variant_b's conversion rate over control (0.1 = +10%).
    #[arg(long, default_value_t = 0.1)]
    lift: f64,
    #[arg(long, default_value = "USD")]
    currency: String,
    /// Write here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Leave out events after this instant (RFC 3339), e.g. the present.
    #[arg(long)]
    until: Option<String>,
}

/// mimalloc: the import and report allocate many small strings across two threads,
/// where glibc's malloc measured ~30% of import time (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `upshot site show | head` closes standard output early: end quietly with success,
/// as Unix tools do, instead of panicking in `println!` (Rust ignores SIGPIPE).
fn end_quietly_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message =
            payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
        if message.is_some_and(|text| text.contains("failed printing to stdout") && text.contains("Broken pipe")) {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() {
    end_quietly_when_stdout_closes();
    let cli = Cli::parse();
    // Key/value log lines on stderr; UPSHOT_LOG=debug|info|warn|error sets how many.
    let level = match std::env::var("UPSHOT_LOG").as_deref() {
        Ok("debug") => tracing_subscriber::filter::LevelFilter::DEBUG,
        Ok("warn") => tracing_subscriber::filter::LevelFilter::WARN,
        Ok("error") => tracing_subscriber::filter::LevelFilter::ERROR,
        _ => tracing_subscriber::filter::LevelFilter::INFO,
    };
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).with_ansi(false).init();
    if let Err(error) = run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// Opens the data dir for writing, saying what recovery had to repair.
fn open_for_writing(data: &std::path::Path) -> Result<Store> {
    let store = Store::open(data).with_context(|| format!("opening data dir {}", data.display()))?;
    if let Some(report) = store.recovery_report() {
        if report.torn_tail_bytes > 0 {
            eprintln!(
                "note: cut off {} bytes of an unfinished write (never acknowledged) from the log",
                report.torn_tail_bytes
            );
        }
        for problem in &report.problems {
            eprintln!("warning: {problem}");
        }
    }
    Ok(store)
}

fn open_for_reading(data: &std::path::Path) -> Result<Store> {
    // A mistyped --data must not read as an empty, undamaged store (a backup check
    // that verifies nothing).
    if !data.join("sites").is_dir() {
        bail!("{} is not an upshot data dir (no sites/ in it); check --data", data.display());
    }
    Store::open_read_only(data).with_context(|| format!("opening data dir {}", data.display()))
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Site(command) => site_command(&cli.data, command),
        Command::Import { site, files } => {
            import::import_files(&mut open_for_writing(&cli.data)?, &site, &files).map(|_| ())
        }
        Command::Report(args) => {
            let store = open_for_reading(&cli.data)?;
            let format = Format::parse(&args.format)
                .with_context(|| format!("--format {:?} is not table, json or csv", args.format))?;
            let report = report(&store, &args)?;
            println!("{}", upshot_report::render(&report, format).trim_end());
            if !report.warnings.is_empty() {
                // The figures are printed, but a script must not take them for whole.
                bail!(
                    "the report left out {} damaged part(s) of the data (named above); `upshot verify` checks everything",
                    report.warnings.len()
                );
            }
            Ok(())
        }
        Command::Gen(args) => generate(&args),
        Command::Verify => verify(&open_for_reading(&cli.data)?),
        Command::RebuildPartials { site } => rebuild_partials(&open_for_writing(&cli.data)?, &site),
        Command::Backup { to } => {
            let copied = upshot_store::backup::backup(&cli.data, &to)?;
            println!(
                "backed up {} site(s), {} segment(s) and {} log file(s), {} bytes, to {}",
                copied.sites,
                copied.segments,
                copied.log_files,
                copied.bytes,
                to.display()
            );
            println!("check it with: upshot --data {} verify", to.display());
            Ok(())
        }
        Command::Export { site, from, to, format, out } => {
            let store = open_for_reading(&cli.data)?;
            export::export(&store, &site, from.as_deref(), to.as_deref(), &format, out.as_deref())
        }
        Command::Forget { site, visitor, profile } => {
            let mut store = open_for_writing(&cli.data)?;
            let record = store.load_site(&site)?;
            let (person, who) = match (visitor, profile) {
                (Some(visitor), _) => (Person::Visitor(visitor.clone()), format!("visitor {visitor}")),
                (None, Some(profile)) => (Person::Profile(profile.clone()), format!("profile {profile}")),
                (None, None) => bail!("name the person with --visitor or --profile"),
            };
            let report = store.forget(&record, &person)?;
            println!(
                "erased {} events of {who} from site {site} ({} segments rewritten, {} rejected lines removed)",
                report.events, report.segments_rewritten, report.rejected_lines
            );
            Ok(())
        }
        Command::Retain { site, retain_days, today } => {
            let today = match today {
                Some(text) => parse_date("--today", &text)?,
                None => jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date(),
            };
            let first_kept = today.checked_sub(jiff::Span::new().days(i64::from(retain_days)))?;
            let mut store = open_for_writing(&cli.data)?;
            store.load_site(&site)?;
            let (segments, events) = store.drop_days_before(&site, &first_kept.to_string())?;
            println!("dropped {events} events in {segments} segments of days before {first_kept} from site {site}");
            Ok(())
        }
        Command::Serve { listen, store, clickhouse_url, connection, admin_password_file, limits } => {
            let admin_password = admin_password(admin_password_file.as_deref())?;
            let clickhouse = match (store.as_str(), clickhouse_url) {
                ("embedded", None) => None,
                ("clickhouse", Some(url)) => Some(upshot_clickhouse::Node::parse_with(&url, &connection.options()?)?),
                ("clickhouse", None) => {
                    bail!("--store clickhouse needs --clickhouse-url http://HOST:PORT (or https://HOST:PORT)")
                }
                ("embedded", Some(_)) => bail!("--clickhouse-url needs --store clickhouse"),
                (other, _) => bail!("--store {other:?} is not embedded or clickhouse"),
            };
            serve(open_for_writing(&cli.data)?, listen, limits.limits(), admin_password, clickhouse)
        }
        Command::Clickhouse(ClickhouseCommand::Init { urls, cluster, connection }) => {
            let options = connection.options()?;
            let nodes = urls
                .iter()
                .map(|url| upshot_clickhouse::Node::parse_with(url, &options))
                .collect::<Result<Vec<_>, _>>()?;
            for line in upshot_clickhouse::schema::init(&nodes, &cluster)? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Clickhouse(ClickhouseCommand::Statements { cluster }) => {
            upshot_clickhouse::schema::validate_identifier(&cluster)?;
            for statement in upshot_clickhouse::schema::statements(&cluster) {
                println!("{statement};");
            }
            Ok(())
        }
        Command::Demo { visitors, listen } => demo(open_for_writing(&cli.data)?, visitors, listen),
    }
}

fn site_command(data: &std::path::Path, command: SiteCommand) -> Result<()> {
    match command {
        SiteCommand::Create { site, timezone, currency, format } => {
            // Site records need no lock: a site can be added while `upshot serve` runs.
            // The first site makes the data dir: opened (and created) without the lock,
            // so a site can be added beside a running server.
            let store = Store::open_read_only(data).with_context(|| format!("opening data dir {}", data.display()))?;
            let (record, keys) = store.create_site(&site, &timezone, &currency)?;
            match format.as_str() {
                "json" => println!(
                    "{}",
                    serde_json::json!({"site": record.site, "public_key": keys.public_key, "secret_key": keys.secret_key})
                ),
                "text" => {
                    println!("created site {} ({}, {})", record.site, record.timezone, record.currency);
                    println!("public key: {}  (for browsers)", keys.public_key);
                    println!("secret key: {}  (for the shop's backend; keep it safe)", keys.secret_key);
                    println!("the keys are stored hashed and cannot be shown again");
                }
                other => bail!("--format {other:?} is not text or json"),
            }
        }
        SiteCommand::Show { site } => print_site(&open_for_reading(data)?.load_site(&site)?),
        SiteCommand::Set { site, key, value } => {
            let record = open_for_reading(data)?.set_site_setting(&site, &key, &value)?;
            println!("set {key} = {value}");
            print_site(&record);
        }
        SiteCommand::List => {
            for site in open_for_reading(data)?.site_ids()? {
                println!("{site}");
            }
        }
    }
    Ok(())
}

fn print_site(record: &SiteRecord) {
    println!("site      {}", record.site);
    println!("timezone  {}", record.timezone);
    println!("currency  {}", record.currency);
    println!("{:<24}  {}", "orders_from_backend", record.orders_from_backend);
    let shopify = if record.shopify_webhook_secret.is_some() { "set" } else { "not set" };
    println!("{:<24}  {shopify}", "shopify_webhook_secret");
    for (key, value) in record.settings.describe() {
        println!("{key:<24}  {value}");
    }
}

pub(crate) fn parse_date(flag: &str, text: &str) -> Result<jiff::civil::Date> {
    text.parse().with_context(|| format!("{flag} {text:?} is not a date like 2024-05-31"))
}

/// Loads the site's events and computes the report.
fn report(store: &Store, args: &ReportArgs) -> Result<Report> {
    let record = store.load_site(&args.site)?;
    let params = upshot_scan::ReportParams {
        from: args.from.clone(),
        to: args.to.clone(),
        page_type: args.page_type.clone(),
        placement: args.placement.clone(),
        kind: args.kind.clone(),
        model: Some(args.model.clone()),
        segment: args.segment.clone(),
    };
    let query = params.query(&record, |name| format!("--{}", name.replace('_', "-")))?;
    let snapshot = upshot_scan::Snapshot::take(store, &record)?;
    // Saved day partials of exactly these events answer at once; else every event is read.
    match upshot_scan::saved::load(&upshot_scan::saved::path(store, &record), &snapshot) {
        Ok(Some(partials)) => {
            if let Some(report) = partials.report(&record.settings, &query) {
                return Ok(report);
            }
        }
        Ok(None) => {}
        Err(error) => {
            eprintln!("warning: {error}; the report reads every event (`upshot rebuild-partials` rebuilds them)")
        }
    }
    let (report, problems) = snapshot.report(&record.settings, &query)?;
    for problem in &problems {
        eprintln!("warning: skipped damaged data: {problem} (figures leave it out; `upshot verify` checks everything)");
    }
    Ok(report)
}

/// Builds and saves the site's day partials of the default lenses, in one pass.
fn rebuild_partials(store: &Store, site: &str) -> Result<()> {
    let record = store.load_site(site)?;
    let started = std::time::Instant::now();
    let snapshot = upshot_scan::Snapshot::take(store, &record)?;
    // Checked before the pass: partials that cannot be matched to the events are not kept.
    let Some(_) = snapshot.identity() else {
        bail!(
            "a damaged segment has no content digest, so partials cannot be matched to the events; run `upshot verify`"
        );
    };
    let lenses = upshot_scan::saved::default_lenses(&record);
    eprintln!("building day partials of {} lenses over every stored event...", lenses.len());
    let Some((partials, problems)) = snapshot.day_partials(&record.settings, &lenses)? else {
        println!("site {site} has no events yet: nothing to build");
        return Ok(());
    };
    if !problems.is_empty() {
        bail!(
            "{} damaged part(s) of the data (run `upshot verify`); partials that leave them out are not saved",
            problems.len()
        );
    }
    let path = upshot_scan::saved::path(store, &record);
    upshot_scan::saved::save(&path, &snapshot, &partials).with_context(|| format!("saving {}", path.display()))?;
    let (from, to) = partials.coverage();
    println!(
        "built day partials of site {site} ({from} to {to}, {} lenses) in {:.1} s",
        lenses.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn gen_options(args: &GenArgs) -> Result<upshot_gen::GenOptions> {
    let start = parse_date("--start", &args.start)?;
    let start_ms = upshot_model::time::local_midnight_millis(start, &jiff::tz::TimeZone::UTC)?;
    Ok(upshot_gen::GenOptions {
        seed: args.seed,
        visitors: args.visitors,
        days: args.days,
        start_ms,
        lift: args.lift,
        currency: args.currency.clone(),
        edge_cases: false,
        end_ms: match &args.until {
            Some(text) => Some(
                text.parse::<jiff::Timestamp>()
                    .with_context(|| format!("--until {text:?} is not an RFC 3339 instant like 2024-05-31T12:00:00Z"))?
                    .as_millisecond(),
            ),
            None => None,
        },
    })
}

fn generate(args: &GenArgs) -> Result<()> {
    use std::io::Write;
    let options = gen_options(args)?;
    let mut out: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut result = Ok(());
    let mut count = 0u64;
    upshot_gen::Generator::new(options).run(|event| {
        if result.is_ok() {
            result = writeln!(out, "{event}");
            count += 1;
        }
    });
    result.and_then(|()| out.flush()).context("writing generated events")?;
    if args.out.is_some() {
        eprintln!("generated {count} events");
    }
    Ok(())
}

/// Generates a 60-day shop ending yesterday, imports it, prints the last 30 days, and
/// serves the dashboard (signed in with a fresh admin password it prints).
fn demo(mut store: Store, visitors: u64, listen: std::net::SocketAddr) -> Result<()> {
    let site = "demo";
    let today = jiff::Zoned::now().date();
    let start = today.checked_sub(jiff::Span::new().days(60))?;
    let record = match store.load_site(site) {
        Ok(record) => {
            println!("using the existing demo site in {}", store.root().display());
            record
        }
        Err(upshot_store::StoreError::UnknownSite(_)) => {
            let (record, keys) = store.create_site(site, "UTC", "USD")?;
            println!("created site {site}; its secret key is {} (stored hashed, shown once)", keys.secret_key);
            let path = store.site_dir(site).join("demo-events.ndjson");
            generate(&GenArgs {
                seed: 7,
                visitors,
                days: 60,
                start: start.to_string(),
                lift: 0.12,
                currency: "USD".into(),
                out: Some(path.clone()),
                // The shop's visitors would come back after today: a demo shows no future.
                until: Some(jiff::Timestamp::now().to_string()),
            })?;
            import::import_files(&mut store, site, &[path.display().to_string()])?;
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            record
        }
        Err(error) => return Err(error.into()),
    };
    let args = ReportArgs {
        site: record.site.clone(),
        from: today.checked_sub(jiff::Span::new().days(30))?.to_string(),
        to: today.yesterday()?.to_string(),
        page_type: None,
        placement: None,
        kind: None,
        model: "last".into(),
        segment: None,
        format: "table".into(),
    };
    let report = report(&store, &args)?;
    println!("{}", upshot_report::render_table(&report).trim_end());
    println!(
        "\nthe report again: upshot --data {} report --site {site} --from {} --to {} [--format json|csv]",
        store.root().display(),
        args.from,
        args.to
    );
    let password = upshot_store::SiteKeys::generate()?.secret_key.replacen("up_sec_", "demo-", 1);
    let root = store.root().display().to_string();
    let options = upshot_server::ServeOptions {
        listen,
        limits: upshot_server::Limits::default(),
        admin_password: Some(password.clone()),
        clickhouse: None,
    };
    let server = upshot_server::start(store, options, upshot_server::shutdown_signal()).with_context(|| {
        format!("serving the dashboard on {listen} (another program may use it: try --listen 127.0.0.1:0)")
    })?;
    println!("\nthe dashboard: http://{}/", server.address);
    println!("  sign in with the admin password {password} (new each run), or the demo site's secret key");
    println!("  events: POST http://{}/v1/events · stop with Ctrl-C (data stays in {root})", server.address);
    std::io::Write::flush(&mut std::io::stdout()).context("writing to stdout")?;
    server.join()?;
    Ok(())
}

/// The admin password from its file, else from UPSHOT_ADMIN_PASSWORD.
fn admin_password(file: Option<&std::path::Path>) -> Result<Option<String>> {
    let password = match file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the admin password from {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("UPSHOT_ADMIN_PASSWORD").ok(),
    };
    if let Some(weakness) = password.as_deref().and_then(upshot_server::admin_password_weakness) {
        bail!("{weakness}");
    }
    Ok(password)
}

fn serve(
    store: Store,
    listen: std::net::SocketAddr,
    limits: upshot_server::Limits,
    admin_password: Option<String>,
    clickhouse: Option<upshot_clickhouse::Node>,
) -> Result<()> {
    let sites = store.site_ids()?;
    if let Some(node) = &clickhouse {
        println!("events go to ClickHouse at {} (this data dir's log is the spool)", node.url());
        let query =
            format!("SELECT max(version) FROM {}.schema_version FORMAT TSV", upshot_clickhouse::schema::DATABASE);
        match node.execute(&query, b"") {
            Err(error) => eprintln!(
                "warning: no upshot schema readable at {} ({error}); run `upshot clickhouse init --url ... --cluster NAME`. \
                 Events are taken and wait in the spool until ClickHouse takes them.",
                node.url()
            ),
            Ok(answer) => {
                let found: u32 = String::from_utf8_lossy(&answer).trim().parse().unwrap_or(0);
                if found < upshot_clickhouse::schema::SCHEMA_VERSION {
                    bail!(
                        "ClickHouse at {} holds upshot schema version {found}; this upshot needs version {}: run \
                         `upshot clickhouse init` with every node's --url and --cluster NAME first (it upgrades in place)",
                        node.url(),
                        upshot_clickhouse::schema::SCHEMA_VERSION
                    );
                }
            }
        }
    }
    let root = store.root().display().to_string();
    let signing_in =
        if admin_password.is_some() { "the admin password or a site's secret key" } else { "a site's secret key" };
    let options = upshot_server::ServeOptions { listen, limits, admin_password, clickhouse };
    let server = upshot_server::start(store, options, upshot_server::shutdown_signal())?;
    let address = server.address;
    println!("upshot is listening on http://{address}/ (data in {root}, {} sites)", sites.len());
    println!("  dashboard: http://{address}/ (sign in with {signing_in})");
    println!("  events:  POST http://{address}/v1/events   tracker: http://{address}/t.js");
    println!("  stop with Ctrl-C: requests in flight finish and everything is written first");
    std::io::Write::flush(&mut std::io::stdout()).context("writing to stdout")?;
    server.join()?;
    // Stdout may be gone by now (a closed pipe): that is no reason to fail.
    let _ = writeln!(std::io::stdout(), "stopped; every acknowledged event is in {root}");
    Ok(())
}

fn verify(store: &Store) -> Result<()> {
    let report = store.verify()?;
    println!(
        "checked {} segments ({} events), {} log records and {} derived files in {}",
        report.segments,
        report.segment_events,
        report.log_records,
        report.derived_files,
        store.root().display()
    );
    if report.unfinished_log_bytes > 0 {
        println!(
            "the log ends with {} bytes of an unfinished write (in progress, or cut off at the next import)",
            report.unfinished_log_bytes
        );
    }
    if report.problems.is_empty() {
        println!("no damage found");
        return Ok(());
    }
    for problem in &report.problems {
        println!("damaged: {problem}");
    }
    bail!("{} damaged parts found; reports leave them out and say so", report.problems.len())
}
