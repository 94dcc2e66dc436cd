//! A progress bar per table, fed by the run's progress events (indicatif draws on stderr and
//! hides itself when stderr is not a terminal).

use std::collections::HashMap;

use dmf::{Phase, ProgressEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

/// Shows the events until the run ends or the channel closes.
pub async fn show(mut events: Receiver<ProgressEvent>) {
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>28} [{bar:30.cyan/blue}] {human_pos:>9}/{human_len:9} {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let mut by_migration: HashMap<String, ProgressBar> = HashMap::new();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        };
        let Some(migration) = &event.migration else {
            if matches!(event.phase, Phase::Completed | Phase::Failed) {
                break; // the run ended
            }
            continue;
        };
        let bar = by_migration.entry(migration.to_string()).or_insert_with(|| {
            let bar = bars.add(ProgressBar::no_length().with_style(style.clone()));
            bar.set_prefix(migration.to_string());
            bar
        });
        match event.phase {
            Phase::Started => {
                if let Some(rows) = event.rows_estimated {
                    bar.set_length(rows);
                }
            }
            Phase::Loading => {
                bar.set_position(event.rows_done);
                bar.set_message(format!("{:.0} rows/s", event.rows_per_sec));
            }
            Phase::Completed => {
                bar.set_length(event.rows_done.max(bar.length().unwrap_or(0)));
                bar.set_position(event.rows_done);
                bar.finish_with_message(format!(
                    "done: {} inserted, {} updated, {} deleted",
                    event.counts.inserted, event.counts.updated, event.counts.deleted
                ));
            }
            Phase::Skipped => bar.finish_with_message(event.message.clone().unwrap_or_else(|| "skipped".into())),
            Phase::Failed => bar.abandon_with_message("failed (see the summary)"),
            _ => {}
        }
    }
}
