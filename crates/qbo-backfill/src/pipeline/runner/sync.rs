//! What an incremental sync does once every window loaded: mark the deletions QuickBooks'
//! change data capture reports (following answers at its cap of 1,000 objects), and say where
//! the cursor moves (it moves in the transaction that stores the run succeeded).

use std::collections::HashMap;

use super::{Scope, Stop, lock};
use crate::pipeline::events::RunEvent;
use crate::store::runs::{self, CursorMove};

impl Scope {
    /// Whether every window of this execution loaded (no failure, no stop).
    pub(super) fn all_loaded(&self) -> bool {
        !self.core.control.stopped() && lock(&self.core.totals).failed_windows == 0
    }

    /// An incremental sync that loaded every window: mark what QuickBooks reports deleted since
    /// the range began (change data capture looks back 30 days), then say where the cursor
    /// moves when the run ends (it moves in the transaction that stores the run succeeded).
    pub(super) async fn sync_deletions_and_cursor(&self) {
        let pipeline = self.core.ctx.pipeline;
        let (Ok(range_start), Ok(range_end)) =
            (self.core.ctx.range.start(), self.core.ctx.range.end())
        else {
            return;
        };
        let now = jiff::Timestamp::now();
        match self.mark_deletions(range_start, now).await {
            Ok(()) => {}
            Err(message) => {
                self.stop_with(Stop::Fatal(message.clone()));
                self.emit(&RunEvent::Warning { message: &message });
                return;
            }
        }
        let created = runs::created_at(&self.core.engine.pool, self.exec().run_id).await;
        let through = match created {
            Ok(Some(created)) => created.min(range_end),
            Ok(None) => return,
            Err(e) => {
                let message = format!("Cannot read the run to move the sync cursor: {e}");
                self.emit(&RunEvent::Warning { message: &message });
                return;
            }
        };
        self.warn_of_a_gap_before(range_start).await;
        *lock(&self.cursor) = Some(CursorMove {
            realm_id: self.core.ctx.realm_id.clone(),
            entity: pipeline.entity(),
            range_start,
            through,
        });
    }

    /// A sync of an entity that has no cursor yet (its first) whose range starts after the
    /// entity's loaded history ends leaves the days in between in neither: their changes are
    /// not in raw, and no later sync reads them. Said in one line, with the command that loads
    /// them (nothing is said when the history reaches the range, or the database cannot tell).
    async fn warn_of_a_gap_before(&self, range_start: jiff::Timestamp) {
        let pipeline = self.core.ctx.pipeline;
        let pool = &self.core.engine.pool;
        let realm_id = &self.core.ctx.realm_id;
        if !matches!(
            runs::cursors::get(pool, realm_id, pipeline.entity()).await,
            Ok(None)
        ) {
            return;
        }
        let Some(backfill) =
            crate::pipeline::Pipeline::of(pipeline.entity(), crate::pipeline::Mode::Backfill)
        else {
            return;
        };
        let day = |t: jiff::Timestamp| t.to_zoned(jiff::tz::TimeZone::UTC).date();
        let start = day(range_start);
        let plural = pipeline.spec().plural;
        let message = match runs::cursors::history_ends(pool, realm_id, backfill).await {
            Ok(Some(end)) if end < range_start => format!(
                "{plural} have no sync cursor yet and their loaded history ends {}, before this sync's range starts ({start}): changes made in between are in neither; `qbo-backfill run {pipeline} --fecha-inicio {} --fecha-fin {start}` loads them",
                day(end),
                day(end),
            ),
            Ok(None) => format!(
                "{plural} have no sync cursor yet and no loaded history: rows last changed before {start} are not in raw; `qbo-backfill run {backfill} --fecha-inicio … --fecha-fin {start}` loads them"
            ),
            _ => return,
        };
        self.emit(&RunEvent::Warning { message: &message });
    }

    async fn mark_deletions(
        &self,
        range_start: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Result<(), String> {
        let entity = self.core.ctx.pipeline.entity();
        if !entity.has_cdc() {
            let verify = self.verify_hint().await;
            let message = format!(
                "Deletions of {entity} cannot be seen: QuickBooks' change data capture does not report {entity}; {verify}"
            );
            self.emit(&RunEvent::Warning { message: &message });
            return Ok(());
        }
        // QuickBooks looks back 30 days at most; stay a little inside that.
        let oldest = now
            .checked_sub(jiff::SignedDuration::from_hours(30 * 24 - 1))
            .unwrap_or(now);
        if range_start < oldest {
            let verify = self.verify_hint().await;
            let message = format!(
                "Deletions before {} cannot be seen: QuickBooks' change data capture looks back 30 days; {verify}",
                oldest.strftime("%Y-%m-%dT%H:%M:%SZ")
            );
            self.emit(&RunEvent::Warning { message: &message });
        }
        let since = range_start.max(oldest);
        let Some((deleted, answers)) = self.read_deletions(since).await? else {
            return Ok(());
        };
        let marked = if deleted.is_empty() {
            0
        } else {
            let mut conn = self
                .core
                .engine
                .pool
                .acquire()
                .await
                .map_err(|e| format!("Cannot mark deletions in PostgreSQL: {e}"))?;
            crate::store::raw::mark_deleted(
                &mut conn,
                self.core.ctx.pipeline.table(),
                &self.core.ctx.realm_id,
                &deleted,
                crate::store::raw::DeletionSource::Cdc,
            )
            .await
            .map_err(|e| format!("Cannot mark deletions in PostgreSQL: {e}"))?
        };
        self.emit(&RunEvent::Deletions {
            since,
            reported: deleted.len() as u64,
            marked,
            answers,
        });
        Ok(())
    }

    /// The `verify` command that finds deletions a sync cannot see: over every day the entity's
    /// stored rows were created on, since `verify` reads by creation time and a row deleted now
    /// may have been created any day.
    async fn verify_hint(&self) -> String {
        let pipeline = self.core.ctx.pipeline;
        let plural = pipeline.spec().plural;
        let span = crate::store::raw::verify::created_days(
            &self.core.engine.pool,
            pipeline.table(),
            &self.core.ctx.realm_id,
        )
        .await;
        match span {
            Ok(Some((first, after))) => format!(
                "`qbo-backfill verify {plural} --fecha-inicio {first} --fecha-fin {after}` (every day its stored rows were created on) finds them"
            ),
            _ => format!(
                "`qbo-backfill verify {plural}` over the days its rows were created on finds them"
            ),
        }
    }

    /// Every deletion QuickBooks' change data capture reports since `since`, with how many
    /// answers it took: an answer at the cap of [`qbo::CDC_MAX_OBJECTS`] may leave changes out,
    /// so the next is asked from the newest change it carried, until an answer is under the
    /// cap. When as many changes as the cap share one instant, the rest of that instant cannot
    /// be asked for: a warning says so (and how `verify` finds what was left out) and the
    /// reading goes on past it, rather than failing every sync until that instant is 30 days
    /// old. `None` when the run stopped meanwhile.
    ///
    /// # Errors
    /// A failed read, or more answers at the cap than [`MAX_CDC_ANSWERS`]: the sync must not
    /// report success then.
    async fn read_deletions(
        &self,
        since: jiff::Timestamp,
    ) -> Result<Option<(Vec<(String, jiff::Timestamp)>, u32)>, String> {
        let entity = self.core.ctx.pipeline.entity();
        let now = jiff::Timestamp::now();
        let mut deleted: HashMap<String, jiff::Timestamp> = HashMap::new();
        let mut from = since;
        let mut answers = 0_u32;
        loop {
            let changes = tokio::select! {
                r = self.core.engine.client.cdc(entity, from) => r,
                _ = self.core.control.until_halted() => return Ok(None),
            };
            let changes = match changes {
                Ok(changes) => changes,
                Err(e) if e.is_terminal_auth() => {
                    self.core.control.token_failure(&e);
                    return Ok(None);
                }
                Err(e) => return Err(format!("Cannot read deletions (change data capture): {e}")),
            };
            answers += 1;
            for change in changes.iter().filter(|c| c.deleted) {
                let at = change.updated.unwrap_or(now);
                deleted
                    .entry(change.id.clone())
                    .and_modify(|t| *t = (*t).max(at))
                    .or_insert(at);
            }
            if changes.len() < qbo::CDC_MAX_OBJECTS {
                break;
            }
            let newest = changes.iter().filter_map(|c| c.updated).max();
            match newest {
                _ if answers >= MAX_CDC_ANSWERS => {
                    return Err(format!(
                        "Cannot read every deletion of {entity} since {}: QuickBooks' change data capture answered its maximum of {} objects {answers} times without reaching past {}; {}",
                        since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        qbo::CDC_MAX_OBJECTS,
                        from.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        self.verify_hint().await,
                    ));
                }
                Some(newest) if newest > from => from = newest,
                _ => {
                    let instant = newest.unwrap_or(from);
                    let message = format!(
                        "Deletions of {entity} at {} may be left out: QuickBooks' change data capture reported {} changes at that one instant, its maximum, and cannot be asked for the rest of it; {}",
                        instant.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        qbo::CDC_MAX_OBJECTS,
                        self.verify_hint().await,
                    );
                    self.emit(&RunEvent::Warning { message: &message });
                    from = instant
                        .checked_add(jiff::SignedDuration::from_secs(1))
                        .map_err(|e| format!("Cannot read deletions past {instant}: {e}"))?;
                }
            }
        }
        let mut deleted: Vec<(String, jiff::Timestamp)> = deleted.into_iter().collect();
        deleted.sort_unstable();
        Ok(Some((deleted, answers)))
    }
}

/// At most this many change-data-capture answers are followed for one sync (a million changes).
const MAX_CDC_ANSWERS: u32 = 1000;
