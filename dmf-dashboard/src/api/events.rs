//! `GET /api/events`: progress events as Server-Sent Events, in the order they were emitted.
//!
//! The stream opens with a `ready` event (sent once the subscription exists, so a client that
//! waits for it misses nothing it triggers afterwards), then one `progress` event per
//! [`ProgressEvent`](dmf_core::ProgressEvent) with a sequence number as its id. A client too
//! slow to keep up gets a `lagged` event saying how many it missed, and should reload the
//! state from `GET /api/runs/{id}`.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::views::EventView;
use crate::dashboard::Dashboard;

pub(crate) async fn stream(State(dashboard): State<Dashboard>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let inner = &dashboard.inner;
    let receiver = inner.orchestrator.progress().subscribe();
    let ready = serde_json::json!({ "in_process_runs": inner.live.unfinished() });
    let ready = Event::default().event("ready").data(ready.to_string());
    let progress = futures::stream::unfold((receiver, 0_u64), |(mut receiver, seq)| async move {
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    let Ok(data) = serde_json::to_string(&EventView::from(&event)) else { continue };
                    let event = Event::default().event("progress").id((seq + 1).to_string()).data(data);
                    return Some((event, (receiver, seq + 1)));
                }
                Err(RecvError::Lagged(missed)) => {
                    let event = Event::default().event("lagged").data(format!("{{\"missed\":{missed}}}"));
                    return Some((event, (receiver, seq)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let events = futures::stream::once(async { ready })
        .chain(progress)
        .take_until(inner.shutdown.clone().cancelled_owned())
        .map(Ok);
    Sse::new(events).keep_alive(KeepAlive::default())
}
