//! Engine overhead per row (placeholder until the bench lands).
fn main() {}
