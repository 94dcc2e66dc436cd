//! `dmf serve --target URL`: the web dashboard as a standalone server over a target's control
//! tables, showing the runs any process recorded there (no migrations of its own to start).

use crate::cli::ServeArgs;
use crate::config::FileConfig;
use crate::exit::{CliError, CliResult};
use crate::output::Out;

#[cfg(feature = "dashboard")]
pub async fn run(args: ServeArgs, file: &FileConfig, out: Out) -> CliResult {
    use std::sync::Arc;

    use dmf::sync::Database;

    use super::{open, target_url};
    use crate::exit::Exit;

    let target = open(&target_url(&args.target, file)?, None).await?;
    let store = target.run_store().await?;
    let orchestrator = Arc::new(dmf::Orchestrator::builder(store).build()?);
    let dashboard = dmf::dashboard::Dashboard::builder(orchestrator)
        .bind(args.bind)
        .database("target", target.display_name())
        .title(args.title)
        .prometheus()
        .build()
        .map_err(|e| CliError::usage(e.to_string()))?;
    out.line(format_args!("serving the runs of {} until Ctrl-C", target.display_name()));
    dashboard.serve().await.map_err(|e| CliError::failed(e.to_string()))?;
    Ok(Exit::Ok)
}

#[cfg(not(feature = "dashboard"))]
pub async fn run(_: ServeArgs, _: &FileConfig, _: Out) -> CliResult {
    Err(CliError::usage("the dashboard is not compiled in: build dmf-cli with its `dashboard` feature"))
}
