//! QuickBooks webhooks as use cases: receiving a delivery (check its signature under the
//! verifier token, read it, store it and its events in one statement before it is answered) and
//! turning the pending events into work (per company and entity, changes that went quiet become
//! one incremental sync through the run queue, or join a sync already queued).

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::pipeline::{DateRange, Mode, Pipeline, RangeError};
use crate::domain::run::RunOrigin;
use crate::domain::webhook::{self, Event, Ignored, PendingGroup};
use crate::settings::{env, env_var};
use crate::store::StoreError;
use crate::store::auth::secrets::{SecretKey, SecretStore};
use crate::store::raw::{self, DeletionSource};
use crate::store::runs::queue::{NewRun, enqueue_run};
use crate::store::webhooks::{self as stored, NewDelivery};

/// The longest part of a rejected body kept for the operator.
const KEPT_BODY_BYTES: usize = 16 * 1024;

/// What became of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// No verifier token is set: nothing can be verified, nothing was stored.
    NotConfigured,
    /// The signature is missing or wrong: nothing was stored.
    BadSignature,
    /// Stored: `events` read, of which `new` were not stored before.
    Stored {
        /// The delivery.
        delivery: Uuid,
        /// Events it carried.
        events: usize,
        /// Events not seen before.
        new: i64,
    },
    /// Signed, but unreadable: stored as rejected, with why.
    Rejected {
        /// The delivery.
        delivery: Uuid,
        /// Why.
        error: String,
    },
}

/// Why a delivery could not be handled (answered 5xx: Intuit retries it).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The secret store failed.
    #[error("cannot read the webhook verifier token: {0}")]
    Secret(#[from] StoreError),
    /// The database failed.
    #[error("cannot store the webhook delivery: {0}")]
    Database(#[from] sqlx::Error),
}

/// The verifier token: the secret `QBO_WEBHOOK_VERIFIER_TOKEN` from the store, else the
/// environment variable of the same name.
///
/// # Errors
/// The store failed.
pub async fn verifier_token(
    pool: &PgPool,
    key: &SecretKey,
) -> Result<Option<SecretString>, StoreError> {
    let store = SecretStore::new(pool.clone(), key.clone());
    if let Some(token) = store.get(env::QBO_WEBHOOK_VERIFIER_TOKEN).await? {
        return Ok(Some(token));
    }
    Ok(env_var(env::QBO_WEBHOOK_VERIFIER_TOKEN).map(SecretString::from))
}

/// Receives one delivery: verifies `signature` over the exact `body`, then stores it (with its
/// events, each once) in one statement. Nothing is stored unless the signature verifies.
///
/// # Errors
/// [`ReceiveError`]: the store or the database failed.
pub async fn receive(
    pool: &PgPool,
    key: &SecretKey,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Receipt, ReceiveError> {
    let Some(token) = verifier_token(pool, key).await? else {
        return Ok(Receipt::NotConfigured);
    };
    let signed = signature.is_some_and(|s| webhook::verify(body, token.expose_secret(), s));
    if !signed {
        return Ok(Receipt::BadSignature);
    }
    let id = Uuid::now_v7();
    match webhook::parse(body) {
        Ok(parsed) => {
            let error = (!parsed.skipped.is_empty()).then(|| parsed.skipped.join("; "));
            let events: Vec<(Event, Option<Ignored>)> = parsed
                .events
                .into_iter()
                .map(|e| {
                    let ignored = e.known_entity().is_none().then_some(Ignored::UnknownEntity);
                    (e, ignored)
                })
                .collect();
            let delivery = NewDelivery {
                id,
                format: Some(parsed.format),
                accepted: true,
                error: error.as_deref(),
                body: None,
            };
            let new = stored::record_delivery(pool, &delivery, &events).await?;
            Ok(Receipt::Stored {
                delivery: id,
                events: events.len(),
                new,
            })
        }
        Err(e) => {
            let error = e.to_string();
            let text = String::from_utf8_lossy(&body[..body.len().min(KEPT_BODY_BYTES)]);
            let delivery = NewDelivery {
                id,
                format: None,
                accepted: false,
                error: Some(&error),
                body: Some(&text),
            };
            stored::record_delivery(pool, &delivery, &[]).await?;
            Ok(Receipt::Rejected {
                delivery: id,
                error,
            })
        }
    }
}

/// One sync the pending events went into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coalesced {
    /// The company.
    pub realm_id: String,
    /// The incremental pipeline.
    pub pipeline: Pipeline,
    /// The run that loads them.
    pub run_id: Uuid,
    /// How many events.
    pub events: usize,
    /// Whether the run was queued now (`false`: they joined a run already queued).
    pub queued_now: bool,
    /// Stored rows a `Delete` event among them named, marked deleted now (`deleted_by =
    /// 'webhook'`): at once, and also for the entities change data capture never reports.
    pub deleted: u64,
    /// Its range.
    pub range: DateRange,
}

/// Why coalescing failed.
#[derive(Debug, thiserror::Error)]
pub enum CoalesceError {
    /// The database failed.
    #[error("cannot turn webhook events into syncs: {0}")]
    Database(#[from] sqlx::Error),
    /// A range out of what can be represented.
    #[error("cannot plan a webhook sync: {0}")]
    Range(#[from] RangeError),
    /// The deletions the events name could not be marked.
    #[error("cannot mark the deletions webhook events name: {0}")]
    Store(#[from] StoreError),
}

/// Turns the pending events that are due at `now` (quiet for `quiet`, see
/// [`PendingGroup::is_due`]) into incremental syncs: per company and entity one run with origin
/// `webhook` over [`PendingGroup::range`], or, when a queued run of that sync already covers the
/// range, that run. Each group is taken in its own transaction with `SKIP LOCKED`, so any
/// number of schedulers may call this at once and each event goes to exactly one run.
///
/// # Errors
/// [`CoalesceError`]; groups handled before the failure stay handled.
pub async fn coalesce_due(
    pool: &PgPool,
    now: jiff::Timestamp,
    quiet: Duration,
) -> Result<Vec<Coalesced>, CoalesceError> {
    let mut done = Vec::new();
    for row in stored::pending_groups(pool).await? {
        let Some(entity) = webhook::entity_named(&row.entity) else {
            continue;
        };
        let group = PendingGroup {
            realm_id: row.realm_id,
            entity,
            earliest: row.earliest.0,
            first_received: row.first_received.0,
            last_received: row.last_received.0,
            events: row.events,
        };
        if !group.is_due(now, quiet) {
            continue;
        }
        if let Some(c) = coalesce_group(pool, &row.entity, group, now).await? {
            done.push(c);
        }
    }
    Ok(done)
}

async fn coalesce_group(
    pool: &PgPool,
    stored_entity: &str,
    mut group: PendingGroup,
    now: jiff::Timestamp,
) -> Result<Option<Coalesced>, CoalesceError> {
    let Some(pipeline) = Pipeline::of(group.entity, Mode::Incremental) else {
        return Ok(None);
    };
    let mut tx = pool.begin().await?;
    let (ids, earliest) = stored::take_group(&mut tx, &group.realm_id, stored_entity).await?;
    let Some(earliest) = earliest else {
        return Ok(None);
    };
    group.earliest = earliest;
    let deletions = stored::deletions_among(&mut tx, &ids).await?;
    let deleted = raw::mark_deleted(
        &mut tx,
        pipeline.table(),
        &group.realm_id,
        &deletions,
        DeletionSource::Webhook,
    )
    .await?;
    let range = group.range(now)?;
    let existing = stored::queued_run_covering(&mut tx, pipeline, &group.realm_id, &range).await?;
    let run_id = match existing {
        Some(id) => id,
        None => {
            let windows = pipeline.windows(&range)?;
            let run = NewRun {
                pipeline,
                realm_id: &group.realm_id,
                range,
                windows: &windows,
                trigger: RunOrigin::Webhook,
                trigger_id: None,
                started_by: None,
                retry_of: None,
                requeue_on_loss: true,
            };
            enqueue_run(&mut tx, &run).await?
        }
    };
    stored::attach(&mut tx, &ids, run_id).await?;
    tx.commit().await?;
    Ok(Some(Coalesced {
        realm_id: group.realm_id,
        pipeline,
        run_id,
        events: ids.len(),
        queued_now: existing.is_none(),
        deleted,
        range,
    }))
}
