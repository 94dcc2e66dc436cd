//! What a sync does about the target's triggers ([`TriggerPolicy`]), decided once while
//! planning and reported by pre-flight ([`TRIGGER_CHECK`]).

use super::{ForeignKeyTrust, SyncMode, SyncPlan};
use crate::catalog::{TableName, Trigger, TriggerEvent};
use crate::orchestrator::CheckOutcome;

/// The pre-flight check's name.
pub const TRIGGER_CHECK: &str = "target triggers";

/// What the user asked and what the target can do, for [`SyncPlan::with_triggers`].
///
/// A trigger on a target table fires on the sync's writes like on any other: an audit trigger
/// logs every copied row, and a `BEFORE UPDATE` trigger that stamps a column makes the row
/// differ from the source again, so `upsert` and `diff` rewrite it on every run and never
/// converge. Policy, per mode ([`SyncMode::writes`]):
///
/// - Without `--skip-target-triggers`, the triggers that fire on the mode's writes are named
///   in a warning, with the operations they fire on.
/// - With it, the tables with such triggers are written by sessions that skip triggers where
///   the target has them ([`ForeignKeyTrust::silences_triggers`]: PostgreSQL's `replica` role,
///   SQL Server's bulk loads without `FIRE_TRIGGERS`). Those sessions skip per-row foreign-key
///   checks too, so the tables join the set-based proof after the load. A trigger that still
///   fires (the target cannot skip it in this mode, the user may not set the session so, or it
///   is `ENABLE ALWAYS`) is named in a warning with why: the flag asks to skip triggers where
///   the target can, so one configuration serves every target.
/// - Emptying the tables in `full` ([`Database::clearing_event`](super::Database::clearing_event))
///   fires `DELETE` (PostgreSQL: `TRUNCATE`) triggers, which are named but never skipped.
/// - Rows written by the per-row passes (catch-up, deferred keys of a cycle) fire triggers:
///   they are few, and must be checked row by row.
#[derive(Debug, Clone, Copy)]
pub struct TriggerPolicy<'a> {
    /// `--skip-target-triggers`.
    pub skip: bool,
    /// The target's answer to whether the tables with triggers may be written by sessions that
    /// skip checks (`None`: not asked, as when `skip` is false).
    pub trust: Option<&'a ForeignKeyTrust>,
    /// How the target empties tables in a `full` sync.
    pub clearing: TriggerEvent,
}

/// Decides, for `plan`'s tables with `triggers`, which fire and which are skipped; marks the
/// skipped ones' tables to load without per-row checks (and so proven afterwards). Returns
/// the pre-flight line.
pub(super) fn decide(plan: &mut SyncPlan, triggers: &[Trigger], policy: TriggerPolicy<'_>) -> CheckOutcome {
    let writes = plan.mode.writes();
    let full = plan.mode == SyncMode::Full;
    let ops: Vec<String> = writes.iter().map(ToString::to_string).collect();
    let ops = ops.join(", ");
    let mut skipped = Vec::new();
    let mut firing = Vec::new();
    let mut clearing = Vec::new();
    for table in &mut plan.tables {
        let on_table: Vec<&Trigger> = triggers.iter().filter(|t| t.table == table.target.name).collect();
        if full {
            clearing.extend(on_table.iter().filter(|t| t.events.contains(&policy.clearing)).map(|t| t.to_string()));
        }
        let on_load: Vec<&Trigger> = on_table.into_iter().filter(|t| t.fires_on(&writes)).collect();
        if on_load.is_empty() {
            continue;
        }
        let why_not = match (policy.skip, policy.trust) {
            (false, _) => None,
            (true, None) => Some("the target was not asked whether its sessions may skip them".to_owned()),
            (true, Some(trust)) if !trust.allowed => Some(trust.reason.clone()),
            (true, Some(trust)) if !trust.silences_triggers => {
                Some("the target fires triggers whatever the session does".to_owned())
            }
            (true, Some(trust)) => match kept_per_row(trust, &table.target.name) {
                Some(why) => Some(why.to_owned()),
                None if full && !table.trust_foreign_keys => {
                    Some("its loads keep per-row foreign-key checks (see the FK checks line)".to_owned())
                }
                None => None,
            },
        };
        // Deletes keep per-row checks (see `migrations`), except in a NOT NULL cycle.
        let skippable: Vec<TriggerEvent> = match table.unordered.is_empty() {
            true => writes.iter().copied().filter(|e| *e != TriggerEvent::Delete).collect(),
            false => writes.clone(),
        };
        let held_deletes = "deletes keep per-row foreign-key checks (a delete the target's own rows still reference \
                            is held back), which fire triggers";
        // The table is written by sessions that skip triggers when one of its ordinary
        // triggers fires on a write those sessions make.
        let will_skip = policy.skip
            && why_not.is_none()
            && on_load.iter().any(|t| t.fires && !t.fires_when_skipped && t.fires_on(&skippable));
        for trigger in on_load {
            if !trigger.fires && !will_skip {
                continue;
            }
            let fires_on_deletes = trigger.fires_on(&writes) && !trigger.fires_on(&skippable);
            let also_on_deletes = trigger.events.contains(&TriggerEvent::Delete)
                && writes.contains(&TriggerEvent::Delete)
                && !skippable.contains(&TriggerEvent::Delete);
            match (&why_not, trigger.fires_when_skipped) {
                (Some(why), _) => firing.push(format!("{trigger}, because {why}")),
                (_, true) if policy.skip => firing.push(format!("{trigger}, which fires even in such sessions")),
                (None, _) if policy.skip && fires_on_deletes => {
                    firing.push(format!("{trigger}, because {held_deletes}"))
                }
                (None, _) if policy.skip => {
                    skipped.push(trigger.to_string());
                    if also_on_deletes {
                        firing.push(format!("{trigger} on DELETE, because {held_deletes}"));
                    }
                }
                (None, _) => firing.push(trigger.to_string()),
            }
        }
        if will_skip {
            table.trust_foreign_keys = true;
        }
    }
    let mut detail = match (firing.is_empty(), policy.skip) {
        (true, _) if skipped.is_empty() => format!("no trigger fires on the sync's writes ({ops})"),
        (true, _) => format!(
            "skipped (--skip-target-triggers) by sessions that skip triggers, their tables' foreign keys proven after \
             the load: {}",
            skipped.join("; ")
        ),
        (false, true) => {
            let mut detail = format!(
                "--skip-target-triggers was asked for, but these triggers fire on the sync's writes ({ops}): {}",
                firing.join("; ")
            );
            if !skipped.is_empty() {
                detail.push_str(&format!("; skipped: {}", skipped.join("; ")));
            }
            detail
        }
        (false, false) => format!(
            "these triggers fire on the sync's writes ({ops}): {}. A trigger that changes the rows it fires on (a \
             BEFORE UPDATE that stamps a column) makes them differ from the source again, so upsert and diff rewrite \
             them on every run; --skip-target-triggers skips them where the target can",
            firing.join("; ")
        ),
    };
    if !clearing.is_empty() {
        detail.push_str(&format!("; emptying the tables ({}) fires: {}", policy.clearing, clearing.join("; ")));
    }
    match firing.is_empty() && clearing.is_empty() {
        true => CheckOutcome::passed(TRIGGER_CHECK, detail),
        false => CheckOutcome::warning(TRIGGER_CHECK, detail),
    }
}

/// Why `trust` keeps `table` per row, if it does.
fn kept_per_row<'a>(trust: &'a ForeignKeyTrust, table: &TableName) -> Option<&'a str> {
    trust.per_row_tables.iter().find(|(name, _)| name == table).map(|(_, why)| why.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Column, DataType, Table};
    use crate::orchestrator::CheckStatus;
    use crate::sync::ForeignKeyChecks;

    fn catalog() -> Catalog {
        let table = |name: &str| Table {
            name: TableName::new(Some("public"), name),
            columns: vec![Column::new("id", DataType::Int64, "bigint").not_null()],
            primary_key: vec!["id".into()],
            unique_keys: vec![],
            foreign_keys: vec![],
        };
        Catalog { tables: vec![table("film"), table("actor")] }
    }

    fn trigger(table: &str, name: &str, timing: &str, events: &[TriggerEvent]) -> Trigger {
        Trigger {
            table: TableName::new(Some("public"), table),
            name: name.into(),
            timing: timing.into(),
            events: events.iter().copied().collect(),
            fires: true,
            fires_when_skipped: false,
        }
    }

    fn stamp() -> Trigger {
        trigger("film", "last_updated", "BEFORE", &[TriggerEvent::Update])
    }

    fn trust(allowed: bool, silences: bool) -> ForeignKeyTrust {
        ForeignKeyTrust {
            allowed,
            reason: if allowed { "replica".into() } else { "user u may not set session_replication_role".into() },
            per_row_tables: vec![],
            silences_triggers: silences,
        }
    }

    fn plan(mode: SyncMode, triggers: &[Trigger], skip: bool, trust: Option<&ForeignKeyTrust>) -> SyncPlan {
        let plan = SyncPlan::build(&catalog(), &catalog(), None, mode).unwrap();
        let policy = TriggerPolicy { skip, trust, clearing: TriggerEvent::Delete };
        plan.with_foreign_key_checks(ForeignKeyChecks::Auto, trust).with_triggers(triggers, policy)
    }

    fn film(plan: &SyncPlan) -> &crate::sync::TablePlan {
        plan.tables.iter().find(|t| t.target.name.name == "film").unwrap()
    }

    #[test]
    fn without_the_flag_a_trigger_on_the_modes_writes_is_named_with_its_operations() {
        let upsert = plan(SyncMode::Upsert, &[stamp()], false, None);
        let check = upsert.triggers.clone().unwrap();
        assert_eq!(check.status, CheckStatus::Warning);
        assert!(check.detail.starts_with("these triggers fire on the sync's writes (INSERT, UPDATE): last_updated (BEFORE UPDATE) on public.film. A trigger that changes"), "{}", check.detail);
        assert!(!film(&upsert).trust_foreign_keys);

        // A full sync only inserts: an UPDATE trigger does not fire.
        let full = plan(SyncMode::Full, &[stamp()], false, None);
        let check = full.triggers.unwrap();
        assert_eq!(
            (check.status, check.detail.as_str()),
            (CheckStatus::Passed, "no trigger fires on the sync's writes (INSERT)")
        );
    }

    #[test]
    fn with_the_flag_a_target_that_can_skip_them_writes_the_table_without_them_and_proves_its_keys() {
        let trust = trust(true, true);
        let upsert = plan(SyncMode::Upsert, &[stamp()], true, Some(&trust));
        let check = upsert.triggers.clone().unwrap();
        assert_eq!(check.status, CheckStatus::Passed, "{}", check.detail);
        assert!(
            check.detail.ends_with("after the load: last_updated (BEFORE UPDATE) on public.film"),
            "{}",
            check.detail
        );
        assert!(film(&upsert).trust_foreign_keys, "written by sessions that skip triggers");
        let actor = upsert.tables.iter().find(|t| t.target.name.name == "actor").unwrap();
        assert!(!actor.trust_foreign_keys, "a table without triggers keeps per-row checks");
        assert!(
            upsert.foreign_keys.detail.contains("without per-row checks for public.film (--skip-target-triggers"),
            "{}",
            upsert.foreign_keys.detail
        );
    }

    #[test]
    fn with_the_flag_a_trigger_that_still_fires_is_named_with_why() {
        let sqlite = trust(true, false);
        let check = plan(SyncMode::Upsert, &[stamp()], true, Some(&sqlite)).triggers.unwrap();
        assert_eq!(check.status, CheckStatus::Warning);
        assert!(check.detail.contains("last_updated (BEFORE UPDATE) on public.film, because the target fires triggers whatever the session does"), "{}", check.detail);

        let refused = trust(false, true);
        let plan_refused = plan(SyncMode::Upsert, &[stamp()], true, Some(&refused));
        assert!(
            plan_refused
                .triggers
                .clone()
                .unwrap()
                .detail
                .contains("because user u may not set session_replication_role")
        );
        assert!(!film(&plan_refused).trust_foreign_keys);

        let mut always = stamp();
        always.fires_when_skipped = true;
        let check = plan(SyncMode::Upsert, &[always], true, Some(&trust(true, true))).triggers.unwrap();
        assert!(check.detail.contains("on public.film, which fires even in such sessions"), "{}", check.detail);
    }

    #[test]
    fn deletes_keep_per_row_checks_so_delete_triggers_fire_and_clearing_triggers_are_named() {
        let audit = trigger("actor", "audit", "AFTER", &[TriggerEvent::Insert, TriggerEvent::Delete]);
        let trust = trust(true, true);
        let diff = plan(SyncMode::Diff, std::slice::from_ref(&audit), true, Some(&trust));
        let check = diff.triggers.unwrap();
        assert_eq!(check.status, CheckStatus::Warning);
        assert!(
            check
                .detail
                .contains("audit (AFTER INSERT OR DELETE) on public.actor on DELETE, because deletes keep per-row"),
            "{}",
            check.detail
        );
        assert!(check.detail.contains("; skipped: audit (AFTER INSERT OR DELETE) on public.actor"), "{}", check.detail);

        let full = plan(SyncMode::Full, &[audit], false, None);
        let check = full.triggers.unwrap();
        assert_eq!(check.status, CheckStatus::Warning);
        assert!(
            check
                .detail
                .ends_with("; emptying the tables (DELETE) fires: audit (AFTER INSERT OR DELETE) on public.actor"),
            "{}",
            check.detail
        );
    }
}
