//! `dmf check`: connect to both databases and run the pre-flight checks a sync would make,
//! reading no rows and writing nothing.

use super::{Opened, fk_checks};
use crate::cli::CheckArgs;
use crate::config::FileConfig;
use crate::exit::{CliResult, Exit};
use crate::json::CheckDoc;
use crate::output::Out;
use dmf::sync::Database as _;

pub async fn run(args: CheckArgs, file: &FileConfig, out: Out) -> CliResult {
    let opened = Opened::new(&args.endpoints, &args.selection, file, None).await?;
    let job = opened
        .job()
        .foreign_key_checks(fk_checks(args.fk_checks, file))
        .skip_target_triggers(args.skip_target_triggers || file.skip_target_triggers.unwrap_or(false));
    let (_, preflight) = job.preflight().await?;
    let source = opened.source.display_name();
    let target = opened.target.display_name();
    out.line(format_args!("pre-flight of a {} sync {source} -> {target}:", opened.mode));
    out.line(&preflight);
    let passed = preflight.passed();
    out.line(if passed { "pre-flight passed" } else { "pre-flight FAILED: a sync would not start" });
    out.document(&CheckDoc { command: "check", source, target, passed, preflight: &preflight })?;
    Ok(if passed { Exit::Ok } else { Exit::Differs })
}
