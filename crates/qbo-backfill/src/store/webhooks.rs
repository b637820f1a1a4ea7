//! QuickBooks webhook deliveries and their events (`ops.webhook_deliveries`,
//! `ops.webhook_events`): storing a delivery with its events in one statement (each event once,
//! by id), the pending events grouped by company and entity, taking a group for a sync and
//! recording the run that loads it, and the figures `/metrics` shows.

use std::borrow::Cow;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::pipeline::{DateRange, Pipeline};
use crate::domain::webhook::{Event, Format, Ignored};
use crate::store::PgTimestamp;

/// A delivery whose signature verified, about to be stored.
#[derive(Debug, Clone)]
pub struct NewDelivery<'a> {
    /// Its id.
    pub id: Uuid,
    /// The format it was read in (`None` when it could not be read).
    pub format: Option<Format>,
    /// `false`: it could not be read at all (stored as `rejected`, with its body).
    pub accepted: bool,
    /// Why it, or some of its events, could not be read.
    pub error: Option<&'a str>,
    /// The body, kept for a rejected delivery only.
    pub body: Option<&'a str>,
}

/// `text` as PostgreSQL can store it: a NUL (which JSON may carry as `\u0000`, and a `text`
/// column refuses) becomes U+FFFD. Refusing the delivery instead would have Intuit retry it
/// for ever.
#[must_use]
pub fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// Stores a delivery and its events in one statement (one insert per batch): each event once by
/// its id (a redelivery adds nothing), `ignored` with its reason when `ignored` says so or its
/// company is not in `ops.companies`, else `pending`. Every text goes through [`storable`].
/// Returns how many events were new.
///
/// # Errors
/// Database errors (nothing is stored then).
pub async fn record_delivery(
    pool: &PgPool,
    delivery: &NewDelivery<'_>,
    events: &[(Event, Option<Ignored>)],
) -> Result<i64, sqlx::Error> {
    let column = |f: fn(&Event) -> &str| {
        events
            .iter()
            .map(|(e, _)| storable(f(e)).into_owned())
            .collect::<Vec<_>>()
    };
    let times: Vec<Option<String>> = events
        .iter()
        .map(|(e, _)| e.time.map(|t| t.to_string()))
        .collect();
    let reasons: Vec<Option<&str>> = events.iter().map(|(_, r)| r.map(Ignored::as_str)).collect();
    sqlx::query_scalar(
        "WITH t AS ( \
           SELECT t.*, CASE WHEN t.reason IS NOT NULL THEN t.reason \
             WHEN NOT EXISTS (SELECT 1 FROM ops.companies c WHERE c.realm_id = t.realm) \
             THEN 'unknown_company' END AS why \
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                       $8::text[]) AS t(id, realm, entity, eid, op, at, reason)), \
         ins AS ( \
           INSERT INTO ops.webhook_events (event_id, delivery_id, realm_id, entity, entity_id, \
             operation, event_time, status, reason) \
           SELECT id, $1, realm, entity, eid, op, at::timestamptz, \
                  CASE WHEN why IS NULL THEN 'pending' ELSE 'ignored' END, why FROM t \
           ON CONFLICT (event_id) DO NOTHING RETURNING 1) \
         INSERT INTO ops.webhook_deliveries (id, format, status, events, new_events, error, body) \
         SELECT $1, $9, $10, $11, (SELECT count(*) FROM ins), $12, $13 \
         RETURNING new_events::bigint",
    )
    .bind(delivery.id)
    .bind(column(|e| &e.id))
    .bind(column(|e| &e.realm_id))
    .bind(column(|e| &e.entity))
    .bind(column(|e| &e.entity_id))
    .bind(column(|e| &e.operation))
    .bind(&times)
    .bind(&reasons)
    .bind(delivery.format.map(Format::as_str))
    .bind(if delivery.accepted {
        "accepted"
    } else {
        "rejected"
    })
    .bind(i32::try_from(events.len()).unwrap_or(i32::MAX))
    .bind(delivery.error.map(storable))
    .bind(delivery.body.map(storable))
    .fetch_one(pool)
    .await
}

/// The pending events of one company and entity, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PendingRow {
    /// The company.
    pub realm_id: String,
    /// The entity as stored (`Invoice`).
    pub entity: String,
    /// The earliest change (QuickBooks' time, or when received if it gave none or a later one).
    pub earliest: PgTimestamp,
    /// When the first arrived.
    pub first_received: PgTimestamp,
    /// When the last arrived.
    pub last_received: PgTimestamp,
    /// How many.
    pub events: i64,
}

const EARLIEST: &str = "min(least(coalesce(event_time, received_at), received_at))";

/// Every company and entity with pending events.
///
/// # Errors
/// Database errors.
pub async fn pending_groups(pool: &PgPool) -> Result<Vec<PendingRow>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT realm_id, entity, {EARLIEST} AS earliest, min(received_at) AS first_received, \
                max(received_at) AS last_received, count(*) AS events \
         FROM ops.webhook_events WHERE status = 'pending' GROUP BY 1, 2 ORDER BY 1, 2"
    )))
    .fetch_all(pool)
    .await
}

/// Locks the pending events of `realm_id` and `entity` for this transaction (`SKIP LOCKED`: a
/// second scheduler takes none of them): their ids and the earliest change among them.
///
/// # Errors
/// Database errors.
pub async fn take_group(
    conn: &mut PgConnection,
    realm_id: &str,
    entity: &str,
) -> Result<(Vec<String>, Option<jiff::Timestamp>), sqlx::Error> {
    let rows: Vec<(String, PgTimestamp)> = sqlx::query_as(
        "SELECT event_id, least(coalesce(event_time, received_at), received_at) \
         FROM ops.webhook_events WHERE status = 'pending' AND realm_id = $1 AND entity = $2 \
         FOR UPDATE SKIP LOCKED",
    )
    .bind(realm_id)
    .bind(entity)
    .fetch_all(&mut *conn)
    .await?;
    let earliest = rows.iter().map(|(_, t)| t.0).min();
    Ok((rows.into_iter().map(|(id, _)| id).collect(), earliest))
}

/// The entities that the `Delete` events among `event_ids` name, each with when QuickBooks says
/// it was deleted (else when the event came).
///
/// # Errors
/// Database errors.
pub async fn deletions_among(
    conn: &mut PgConnection,
    event_ids: &[String],
) -> Result<Vec<(String, jiff::Timestamp)>, sqlx::Error> {
    let rows: Vec<(String, PgTimestamp)> = sqlx::query_as(
        "SELECT entity_id, max(coalesce(event_time, received_at)) FROM ops.webhook_events \
         WHERE event_id = ANY($1) AND operation = 'Delete' GROUP BY entity_id ORDER BY entity_id",
    )
    .bind(event_ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(id, at)| (id, at.0)).collect())
}

/// A queued (not yet claimed) run of `pipeline` for `realm_id` whose range covers `range`:
/// changes coalesce into it instead of queueing a second sync. Locked for this transaction,
/// so no worker claims it meanwhile (a run a worker is claiming is skipped).
///
/// # Errors
/// Database errors.
pub async fn queued_run_covering(
    conn: &mut PgConnection,
    pipeline: Pipeline,
    realm_id: &str,
    range: &DateRange,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM ops.runs WHERE pipeline = $1 AND realm_id = $2 AND status = 'queued' \
           AND NOT cancel_requested AND fecha_inicio <= $3::date AND fecha_fin >= $4::date \
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(pipeline.name())
    .bind(realm_id)
    .bind(range.fecha_inicio.to_string())
    .bind(range.fecha_fin.to_string())
    .fetch_optional(&mut *conn)
    .await
}

/// Records that run `run_id` loads the events `ids`.
///
/// # Errors
/// Database errors.
pub async fn attach(
    conn: &mut PgConnection,
    ids: &[String],
    run_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE ops.webhook_events SET status = 'synced', run_id = $2, coalesced_at = now() \
         WHERE event_id = ANY($1)",
    )
    .bind(ids)
    .bind(run_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The webhook figures `/metrics` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookFigures {
    /// Events stored (each id once), by status (`pending`, `synced`, `ignored`).
    pub events: Vec<(String, i64)>,
    /// Events delivered again (already stored).
    pub redelivered: i64,
    /// Deliveries stored as rejected (a valid signature, a body that could not be read).
    pub rejected: i64,
    /// Syncs the synced events were coalesced into.
    pub syncs: i64,
    /// Lag from QuickBooks' event time to the end of the sync that loaded it, over the events
    /// of the last 24 hours whose sync succeeded: (p50, p99) in seconds.
    pub lag_seconds: Option<(f64, f64)>,
}

/// Reads the webhook figures.
///
/// # Errors
/// Database errors.
pub async fn figures(pool: &PgPool) -> Result<WebhookFigures, sqlx::Error> {
    let events = sqlx::query_as(
        "SELECT status, count(*) FROM ops.webhook_events GROUP BY status ORDER BY status",
    )
    .fetch_all(pool)
    .await?;
    let (redelivered, rejected): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(events - new_events), 0)::bigint, \
                count(*) FILTER (WHERE status = 'rejected') FROM ops.webhook_deliveries",
    )
    .fetch_one(pool)
    .await?;
    let syncs: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT run_id) FROM ops.webhook_events WHERE run_id IS NOT NULL",
    )
    .fetch_one(pool)
    .await?;
    let lag: (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) \
         FROM (SELECT greatest(extract(epoch FROM r.finished_at \
                 - coalesce(e.event_time, e.received_at)), 0)::float8 AS lag \
               FROM ops.webhook_events e JOIN ops.runs r ON r.id = e.run_id \
               WHERE r.status = 'succeeded' AND e.received_at > now() - interval '24 hours') l",
    )
    .fetch_one(pool)
    .await?;
    Ok(WebhookFigures {
        events,
        redelivered,
        rejected,
        syncs,
        lag_seconds: lag.0.zip(lag.1),
    })
}
