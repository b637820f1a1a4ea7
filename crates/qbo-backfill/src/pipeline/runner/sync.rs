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
        *lock(&self.cursor) = Some(CursorMove {
            realm_id: self.core.ctx.realm_id.clone(),
            entity: pipeline.entity(),
            range_start,
            through,
        });
    }

    async fn mark_deletions(
        &self,
        range_start: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Result<(), String> {
        let entity = self.core.ctx.pipeline.entity();
        let verify = format!(
            "`qbo-backfill verify {} --fecha-inicio {} --fecha-fin {}` finds them",
            self.core.ctx.pipeline.spec().plural,
            self.core.ctx.range.fecha_inicio,
            self.core.ctx.range.fecha_fin
        );
        if !entity.has_cdc() {
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

    /// Every deletion QuickBooks' change data capture reports since `since`, with how many
    /// answers it took: an answer at the cap of [`qbo::CDC_MAX_OBJECTS`] may leave changes out,
    /// so the next is asked from the newest change it carried, until an answer is under the
    /// cap. `None` when the run stopped meanwhile.
    ///
    /// # Errors
    /// A failed read, or an answer at the cap that cannot be followed (as many changes at one
    /// instant as the cap): the sync must not report success then.
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
                Some(newest) if newest > from && answers < MAX_CDC_ANSWERS => from = newest,
                _ => {
                    return Err(format!(
                        "Cannot read every deletion of {entity} since {}: QuickBooks' change data capture answered its maximum of {} objects without reaching past {}; run `qbo-backfill verify` over this range to find them",
                        since.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        qbo::CDC_MAX_OBJECTS,
                        from.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ));
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
