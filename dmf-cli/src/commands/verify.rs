//! `dmf verify`: every selected table compared row by row, rules checked on the target in a
//! read-only transaction; a table the target lacks, or one that could not be compared (no
//! key), is a difference, never "equal".

use dmf::quality::QualityReport;
use dmf::sync::Database as _;
use serde::Serialize;

use super::{Opened, rules, write_report};
use crate::cli::VerifyArgs;
use crate::config::FileConfig;
use crate::exit::{CliResult, Exit};
use crate::json::VerifyDoc;
use crate::output::Out;

#[derive(Serialize)]
struct Document<'a> {
    command: &'static str,
    source: String,
    target: String,
    #[serde(flatten)]
    verification: VerifyDoc<'a>,
}

pub async fn run(args: VerifyArgs, file: &FileConfig, out: Out) -> CliResult {
    let opened = Opened::new(&args.endpoints, &args.selection, file, None).await?;
    let rules = rules(&args.rules, file)?;
    let plan = opened.job().plan().await?;
    let source = opened.source.display_name();
    let target = opened.target.display_name();
    out.line(format_args!("verify {target} against {source}:"));
    let report: QualityReport =
        dmf::quality::verify(opened.source.as_ref(), opened.target.as_ref(), &plan, &rules, args.sample).await?;
    out.text(&report);
    if let Some(path) = &args.report_json {
        write_report(path, &report)?;
        out.line(format_args!("report written to {}", path.display()));
    }
    out.line(report.verdict());
    let passed = report.passed();
    out.document(&Document { command: "verify", source, target, verification: VerifyDoc::of(&report, passed) })?;
    Ok(if passed { Exit::Ok } else { Exit::Differs })
}
