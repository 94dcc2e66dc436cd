//! Marks a connection broken unless a call on it completed successfully: after an error, and
//! after a call whose future was dropped half-way (a cancelled run, a timeout around it),
//! tiberius leaves the connection in an unknown state, so the pool must discard it.

use std::future::Future;

/// Runs `call` with `broken` set for its whole duration, clearing it only when the call
/// returned `Ok`. If the future is dropped before it finishes, `broken` stays set.
pub(crate) async fn guarded<T, E>(broken: &mut bool, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    *broken = true;
    let result = call.await;
    if result.is_ok() {
        *broken = false;
    }
    result
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll};

    use super::*;

    #[tokio::test]
    async fn success_leaves_the_connection_usable() {
        let mut broken = false;
        assert_eq!(guarded(&mut broken, async { Ok::<_, ()>(3) }).await, Ok(3));
        assert!(!broken);
    }

    #[tokio::test]
    async fn an_error_marks_it_broken() {
        let mut broken = false;
        assert_eq!(guarded(&mut broken, async { Err::<(), _>("deadlock") }).await, Err("deadlock"));
        assert!(broken);
    }

    #[test]
    fn a_call_dropped_half_way_marks_it_broken() {
        let mut broken = false;
        {
            let mut call = pin!(guarded(&mut broken, std::future::pending::<Result<(), ()>>()));
            let waker = std::task::Waker::noop();
            assert_eq!(call.as_mut().poll(&mut Context::from_waker(waker)), Poll::Pending);
            // The caller gives up (cancellation, a timeout): the future is dropped here.
        }
        assert!(broken);
    }
}
