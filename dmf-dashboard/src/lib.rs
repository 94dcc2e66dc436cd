//! The DMF dashboard (being built): an HTTP API and a live page over the run store and progress events.
