//! Leases: one holder per scope, renewal, release, expiry and take-over.

#![allow(clippy::expect_used)]

use std::time::{Duration, SystemTime};

use dmf_core::{LeaseClaim, LeaseClaimed, RunId, RunStore};

fn claim(scope: &str, holder: &str, now: SystemTime) -> LeaseClaim {
    LeaseClaim {
        scope: scope.to_owned(),
        holder: holder.to_owned(),
        host: format!("host-of-{holder}"),
        pid: 4242,
        run: None,
        now,
        ttl: TTL,
        dead_holder: None,
    }
}

const TTL: Duration = Duration::from_secs(30);

/// Checks that `store` keeps leases as [`RunStore::claim_lease`] and its siblings promise:
/// a second holder is refused and told who holds the lease; the holder renews and records its
/// run; an expired lease is taken over and returned; a renewal by the holder that lost it
/// fails; a release frees the scope; scopes are independent. Times are given by the test, so
/// nothing waits.
pub async fn leases(store: &dyn RunStore) {
    // Whole seconds: every store keeps them exactly.
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let scope = "target";
    assert_eq!(store.lease(scope).await.expect("reading a missing lease"), None, "no lease before any claim");

    let first = store.claim_lease(&claim(scope, "a", t0)).await.expect("claiming a free lease");
    assert_eq!(first, LeaseClaimed::Taken { expired: None }, "a free lease is taken");
    let held = store.lease(scope).await.expect("reading the lease").expect("the lease is stored");
    assert_eq!((held.holder.as_str(), held.host.as_str(), held.pid), ("a", "host-of-a", 4242));
    assert_eq!(held.run, None);
    assert_eq!((held.acquired_at, held.heartbeat_at, held.expires_at), (t0, t0, t0 + TTL));

    // Another holder is refused while the lease lives, and told who holds it.
    match store.claim_lease(&claim(scope, "b", t0 + TTL / 2)).await.expect("claiming a held lease") {
        LeaseClaimed::Held(lease) => assert_eq!(lease.holder, "a", "the refusal names the holder"),
        other => panic!("a live lease must not be taken by another holder: {other:?}"),
    }
    // Another scope is independent.
    let other_scope = store.claim_lease(&claim("table:orders", "b", t0)).await.expect("claiming another scope");
    assert_eq!(other_scope, LeaseClaimed::Taken { expired: None }, "scopes are independent");

    // The holder renews, recording its run; its claim again is a renewal.
    let t1 = t0 + TTL / 2;
    assert!(store.renew_lease(scope, "a", Some(RunId(7)), t1, TTL).await.expect("renewing"), "the holder renews");
    let renewed = store.lease(scope).await.expect("reading the lease").expect("the lease is stored");
    assert_eq!((renewed.run, renewed.heartbeat_at, renewed.expires_at), (Some(RunId(7)), t1, t1 + TTL));
    assert_eq!(renewed.acquired_at, t0, "a renewal keeps the time the lease was acquired");
    assert!(store.renew_lease(scope, "a", None, t1, TTL).await.expect("renewing"), "a renewal without a run");
    let kept = store.lease(scope).await.expect("reading the lease").expect("the lease is stored");
    assert_eq!(kept.run, Some(RunId(7)), "a renewal without a run keeps the recorded run");
    assert!(!store.renew_lease(scope, "b", None, t1, TTL).await.expect("renewing"), "only the holder renews");
    assert_eq!(
        store.claim_lease(&claim(scope, "a", t1)).await.expect("claiming again"),
        LeaseClaimed::Taken { expired: None },
        "the holder's own claim is a renewal"
    );

    // Past its expiry, another holder takes it over and is given the expired lease.
    let late = t1 + TTL + Duration::from_secs(1);
    match store.claim_lease(&claim(scope, "b", late)).await.expect("claiming an expired lease") {
        LeaseClaimed::Taken { expired: Some(expired) } => {
            assert_eq!((expired.holder.as_str(), expired.run), ("a", Some(RunId(7))), "the expired lease is returned")
        }
        other => panic!("an expired lease must be taken over: {other:?}"),
    }
    assert!(!store.renew_lease(scope, "a", None, late, TTL).await.expect("renewing"), "the old holder lost it");
    match store.claim_lease(&claim(scope, "a", late)).await.expect("claiming a lease taken over") {
        LeaseClaimed::Held(lease) => assert_eq!(lease.holder, "b"),
        other => panic!("the old holder must not take its lease back: {other:?}"),
    }

    // Release frees the scope at once; a release by a non-holder changes nothing.
    store.release_lease(scope, "a").await.expect("releasing someone else's lease");
    assert_eq!(store.lease(scope).await.expect("reading").map(|l| l.holder), Some("b".to_owned()));
    store.release_lease(scope, "b").await.expect("releasing");
    assert_eq!(store.lease(scope).await.expect("reading"), None, "a released lease is gone");
    assert_eq!(
        store.claim_lease(&claim(scope, "c", late)).await.expect("claiming a released lease"),
        LeaseClaimed::Taken { expired: None },
        "a released lease is free"
    );

    // A holder known dead loses its live lease to the claim that names it, and only to that.
    let mut naming_another = claim(scope, "d", late);
    naming_another.dead_holder = Some("x".to_owned());
    assert!(
        matches!(store.claim_lease(&naming_another).await.expect("claiming"), LeaseClaimed::Held(_)),
        "a claim naming another dead holder does not take a live lease"
    );
    let mut naming_holder = claim(scope, "d", late);
    naming_holder.dead_holder = Some("c".to_owned());
    match store.claim_lease(&naming_holder).await.expect("claiming a dead holder's lease") {
        LeaseClaimed::Taken { expired: Some(old) } => assert_eq!(old.holder, "c"),
        other => panic!("a dead holder's live lease must be taken over: {other:?}"),
    }
    store.release_lease(scope, "d").await.expect("releasing");
    store.release_lease("table:orders", "b").await.expect("releasing");
}
