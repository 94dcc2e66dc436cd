//! # dashboard_demo: watch a SQLite migration live in the DMF dashboard
//!
//! Creates two SQLite files in `--dir` (a fresh temporary folder by default): `source.db` with
//! `--rows` people and two orders each, a few of them dirty (blank names, emails without `@`),
//! and `target.db` with empty `contacts` and `orders` tables. It registers two migrations,
//! `contacts` (rejects the dirty rows, at the transform and validate stages) and `orders`
//! (depends on `contacts`; orders of rejected people are refused by the target's foreign key
//! and rejected at the load stage), serves the dashboard on `--dashboard` and runs them,
//! slowed down by `--delay-ms` per batch so the progress bars can be watched. The dashboard
//! keeps serving after the run until Ctrl-C: run the migrations again (`force`), roll them
//! back, page through the rejects. `--max-rejects 10` makes `contacts` fail (and `orders` be
//! skipped), to see how failures and their error chains are shown.
//!
//! ```sh
//! cargo run -p dmf-dashboard --example dashboard_demo
//! cargo run -p dmf-dashboard --example dashboard_demo -- --dashboard 127.0.0.1:9000 --rows 20000 --delay-ms 20
//! DMF_DASHBOARD_TOKEN=secret cargo run -p dmf-dashboard --example dashboard_demo -- --no-run
//! ```
//!
//! Exits 1 when the set-up or the server fails, 2 on a bad command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dmf_core::catalog::{Table, TableName};
use dmf_core::sync::{Database, ExtractSpec, LoadSpec, WriteMode};
use dmf_core::typed::{TypedExtractor, TypedLoader};
use dmf_core::{EngineConfig, Orchestrator, Pipeline, Record, RejectLimit, Rules, Transformed, transform_fn};
use dmf_dashboard::{Dashboard, RunOptions};
use dmf_sqlite::SqliteDatabase;
use dmf_testkit::{FaultPlan, FaultyExtractor};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "\
Runs a small SQLite migration and shows it in the DMF dashboard.

Usage: dashboard_demo [OPTIONS]

Options:
  --dashboard <ADDR>  where the dashboard listens [default: 127.0.0.1:8080]
  --dir <DIR>         where source.db and target.db are created [default: a new temporary folder]
  --rows <N>          people in the source (orders: twice as many) [default: 3000]
  --batch-size <N>    rows per batch [default: 100]
  --delay-ms <MS>     pause per batch read, to watch the bars move [default: 60]
  --max-rejects <N>   rejects a migration may set aside before it fails [default: 10 % of its rows]
  --no-run            only serve; start runs from the page
  -h, --help          print this help

The token of the run, cancel and roll back buttons is DMF_DASHBOARD_TOKEN, or a random one
printed at start.";

#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    dashboard: SocketAddr,
    dir: Option<PathBuf>,
    rows: u32,
    batch_size: usize,
    delay: Duration,
    max_rejects: Option<u64>,
    run: bool,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            dashboard: dmf_dashboard::DEFAULT_BIND,
            dir: None,
            rows: 3000,
            batch_size: 100,
            delay: Duration::from_millis(60),
            max_rejects: None,
            run: true,
        }
    }
}

/// `Ok(None)` means `--help` was asked for.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Option<Args>, String> {
    fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
        let value = value.ok_or_else(|| format!("`{flag}` needs a value"))?;
        value.parse().map_err(|_| format!("`{flag}` expects a whole number, got `{value}`"))
    }
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut next = || inline.clone().or_else(|| args.next());
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--dashboard" => {
                let value = next().ok_or("`--dashboard` needs an address such as 127.0.0.1:8080")?;
                parsed.dashboard =
                    value.parse().map_err(|_| format!("`--dashboard` expects IP:PORT, got `{value}`"))?;
            }
            "--dir" => parsed.dir = Some(PathBuf::from(next().ok_or("`--dir` needs a value")?)),
            "--rows" => match number(&flag, next())? {
                0 => return Err("`--rows` must be at least 1".into()),
                rows => parsed.rows = rows,
            },
            "--batch-size" => match number(&flag, next())? {
                0 => return Err("`--batch-size` must be at least 1".into()),
                rows => parsed.batch_size = rows,
            },
            "--delay-ms" => parsed.delay = Duration::from_millis(number(&flag, next())?),
            "--max-rejects" => parsed.max_rejects = Some(number(&flag, next())?),
            "--no-run" => parsed.run = false,
            // The argument may be a URL with a password: shown redacted.
            _ => return Err(format!("unknown argument `{}`", dmf_core::redact_secrets(&arg))),
        }
    }
    Ok(Some(parsed))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match demo(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", dmf_core::error_chain(&*error));
            ExitCode::FAILURE
        }
    }
}

/// A person in the source.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Person {
    id: i64,
    name: String,
    email: String,
    city: String,
}

impl Record for Person {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// A contact in the target.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Contact {
    id: i64,
    name: String,
    email: String,
    domain: String,
    city: String,
}

impl Record for Contact {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// An order, the same on both sides.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Order {
    id: i64,
    person_id: i64,
    amount_cents: i64,
}

impl Record for Order {
    fn key(&self) -> String {
        self.id.to_string()
    }
}

async fn demo(args: Args) -> Result<(), BoxError> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("dmf-dashboard-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    // Every start begins afresh: no earlier run, checkpoint or row.
    for file in ["source.db", "target.db"] {
        for suffix in ["", "-wal", "-shm"] {
            match std::fs::remove_file(dir.join(format!("{file}{suffix}"))) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error.into()),
                _ => {}
            }
        }
    }
    let source = Arc::new(SqliteDatabase::create(dir.join("source.db"))?);
    let target = Arc::new(SqliteDatabase::create(dir.join("target.db"))?);
    prepare(&source, &target, args.rows)?;
    println!("source {} and target {} are ready", source.display_name(), target.display_name());

    let config = EngineConfig::builder()
        .batch_size(args.batch_size)
        .pipeline_depth(2)
        .reject_limit(match args.max_rejects {
            Some(max) => RejectLimit::Count(max),
            None => RejectLimit::Ratio { max: 0.1, min_rows: 100 },
        })
        .build()?;
    let slow = || FaultPlan::new().slow(args.delay);

    let contacts = Pipeline::new(
        FaultyExtractor::new(
            TypedExtractor::<_, Person>::new(source.extractor(extract_spec(&source, "people").await?)),
            slow(),
        ),
        transform_fn(|person: &Person| {
            if person.name.trim().is_empty() {
                return Transformed::Rejected { reason: "name: is empty".into() };
            }
            let domain = person.email.rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
            Transformed::Mapped(Contact {
                id: person.id,
                name: person.name.trim().to_owned(),
                email: person.email.to_lowercase(),
                domain,
                city: person.city.clone(),
            })
        }),
        typed_loader::<Contact>(&target, "contacts").await?,
    )
    .named("contacts")
    .describe("people into contacts, with their e-mail domain")
    .validate(Rules::new().field("email", |c: &Contact| {
        if c.domain.is_empty() { Err(format!("`{}` has no @", c.email)) } else { Ok(()) }
    }));

    let orders = Pipeline::new(
        FaultyExtractor::new(
            TypedExtractor::<_, Order>::new(source.extractor(extract_spec(&source, "orders").await?)),
            slow(),
        ),
        dmf_core::Identity::<Order>::default(),
        typed_loader::<Order>(&target, "orders").await?,
    )
    .named("orders")
    .describe("orders of the contacts (the target's foreign key refuses orphans)")
    .depends_on(["contacts"]);

    let orchestrator = Orchestrator::builder(target.run_store().await?)
        .engine(config)
        .migration(contacts)
        .migration(orders)
        .build()?;
    let dashboard = Dashboard::builder(Arc::new(orchestrator))
        .bind(args.dashboard)
        .database("source", source.display_name())
        .database("target", target.display_name())
        .title("DMF dashboard — demo")
        .prometheus()
        .build()?;

    // Bind first (a busy port fails before anything runs); serve during the run and after it,
    // until Ctrl-C.
    let server = dashboard.listen().await?;
    eprintln!("{}", server.banner());
    let serving = tokio::spawn(server.run());
    if args.run {
        // Started through the dashboard, so the page's Cancel button works for it too.
        let started = dashboard.start_run(RunOptions::default()).await?;
        println!("run {} started; watch it at http://{}/", started.run, args.dashboard);
        let summary = started.outcome.await??;
        print!("{summary}");
    }
    println!("the dashboard keeps serving; press Ctrl-C to stop");
    serving.await??;
    Ok(())
}

/// Fills the source and creates the target's empty tables.
fn prepare(source: &SqliteDatabase, target: &SqliteDatabase, rows: u32) -> Result<(), BoxError> {
    source.execute_batch(&format!(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, city TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL, amount_cents INTEGER NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO people (id, name, email, city)
         SELECT i,
                CASE WHEN i % 97 = 0 THEN '  ' ELSE 'Person ' || i END,
                CASE WHEN i % 61 = 0 THEN 'person' || i || '.example.com' ELSE 'Person' || i || '@example.com' END,
                CASE i % 4 WHEN 0 THEN 'Lyon' WHEN 1 THEN 'Porto' WHEN 2 THEN 'Gent' ELSE 'Graz' END
         FROM n;
         INSERT INTO orders (id, person_id, amount_cents)
         SELECT id * 2 - 1, id, (id * 37) % 10000 FROM people UNION ALL SELECT id * 2, id, (id * 53) % 10000 FROM people;"
    ))?;
    target.execute_batch(
        "CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
                                domain TEXT NOT NULL, city TEXT NOT NULL);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES contacts (id),
                              amount_cents INTEGER NOT NULL);",
    )?;
    Ok(())
}

async fn table(db: &SqliteDatabase, name: &str) -> Result<Table, BoxError> {
    let catalog = db.read_catalog().await?;
    Ok(catalog.table(&TableName::new(None, name)).cloned().ok_or_else(|| format!("no table `{name}`"))?)
}

async fn extract_spec(db: &SqliteDatabase, name: &str) -> Result<ExtractSpec, BoxError> {
    Ok(ExtractSpec::whole_table(&table(db, name).await?)?)
}

async fn typed_loader<T: Record + serde::Serialize>(
    db: &Arc<SqliteDatabase>,
    name: &str,
) -> Result<TypedLoader<<SqliteDatabase as Database>::Loader, T>, BoxError> {
    let table = table(db, name).await?;
    let spec = LoadSpec::whole_table(&table, WriteMode::Insert)?;
    Ok(TypedLoader::new(db.loader(spec.clone()), table.name.clone(), spec.columns, &spec.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn arguments_have_defaults_and_both_spellings() {
        assert_eq!(parse(&[]), Ok(Some(Args::default())));
        assert_eq!(
            parse(&["--dashboard", "127.0.0.1:9000", "--rows=10", "--delay-ms", "0", "--no-run"]),
            Ok(Some(Args {
                dashboard: "127.0.0.1:9000".parse().unwrap(),
                rows: 10,
                delay: Duration::ZERO,
                run: false,
                ..Args::default()
            }))
        );
        assert_eq!(parse(&["--dashboard", "localhost"]), Err("`--dashboard` expects IP:PORT, got `localhost`".into()));
        assert_eq!(parse(&["--rows", "0"]), Err("`--rows` must be at least 1".into()));
        assert_eq!(parse(&["postgres://u:S3cret@h/db"]), Err("unknown argument `postgres://u:***@h/db`".into()));
    }
}
