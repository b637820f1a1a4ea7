//! Alert channels and deliveries (`ops.alert_channels`, `ops.alert_deliveries`), SQL only.
//! Raising an event is one `INSERT … SELECT` of a `pending` delivery per subscribed channel;
//! a delivery is claimed for a lease (`FOR UPDATE SKIP LOCKED`, so several `serve` processes
//! never send the same attempt twice), then recorded `delivered`, retried later, or `failed`.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::alert::{Alert, AlertKind, ChannelSpec};
use crate::store::{PgTimestamp, StoreError};

/// A stored channel.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChannelRow {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `webhook` or `email`.
    pub kind: String,
    /// The address (e-mail); a webhook's URL as shown, its URL being sealed in `target_enc`
    /// (a row stored before the URL was sealed holds it here until it is sealed).
    pub target: String,
    /// A webhook's sealed URL.
    pub target_enc: Option<Vec<u8>>,
    /// The events it receives.
    pub events: Vec<String>,
    /// A webhook's sealed secret.
    pub secret_enc: Option<Vec<u8>>,
    /// When it was created.
    pub created_at: PgTimestamp,
}

/// A delivery as listed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    /// Its id.
    pub id: Uuid,
    /// The channel.
    pub channel_id: Uuid,
    /// The channel's name.
    pub channel_name: String,
    /// The event's name.
    pub event: String,
    /// The company, if any.
    pub realm_id: Option<String>,
    /// The run, if any.
    pub run_id: Option<Uuid>,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When the event happened.
    pub occurred_at: PgTimestamp,
    /// When it was delivered.
    pub delivered_at: Option<PgTimestamp>,
    /// When it is tried next (pending only).
    pub next_attempt_at: PgTimestamp,
}

/// A delivery claimed for sending: the alert and where it goes.
#[derive(Debug, Clone)]
pub struct Due {
    /// The delivery.
    pub id: Uuid,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
    /// The alert.
    pub alert: Alert,
    /// The channel.
    pub channel: ChannelRow,
}

/// A failure of the alert store.
#[derive(Debug, thiserror::Error)]
pub enum AlertStoreError {
    /// Another channel has this name.
    #[error("a channel named `{0}` exists already")]
    NameTaken(String),
    /// Anything else.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AlertStoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

const CHANNEL_COLUMNS: &str = "id, name, kind, target, target_enc, events, secret_enc, created_at";

/// Where a channel's alerts go, as stored: what is shown (an address, a webhook URL's scheme
/// and host) and a webhook's URL, sealed.
#[derive(Debug, Clone)]
pub struct StoredTarget {
    /// The `target` column.
    pub shown: String,
    /// The `target_enc` column.
    pub sealed: Option<Vec<u8>>,
}

/// Stores a channel checked by the domain, its webhook URL and secret already sealed.
///
/// # Errors
/// [`AlertStoreError::NameTaken`]; database errors.
pub async fn insert_channel(
    pool: &PgPool,
    id: Uuid,
    spec: &ChannelSpec,
    target: StoredTarget,
    secret_enc: Option<Vec<u8>>,
) -> Result<ChannelRow, AlertStoreError> {
    let events: Vec<&str> = spec.events.iter().map(|e| e.as_str()).collect();
    let sql = format!(
        "INSERT INTO ops.alert_channels (id, name, kind, target, target_enc, events, secret_enc) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {CHANNEL_COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(&spec.name)
        .bind(spec.kind.as_str())
        .bind(target.shown)
        .bind(target.sealed)
        .bind(&events)
        .bind(secret_enc)
        .fetch_one(pool)
        .await
        .map_err(|e| {
            if crate::store::sqlstate(&e).as_deref() == Some("23505") {
                AlertStoreError::NameTaken(spec.name.clone())
            } else {
                e.into()
            }
        })
}

/// The webhook channels whose URL is still in plain text in `target` (stored before URLs were
/// sealed): their ids and URLs.
///
/// # Errors
/// Database errors.
pub async fn plain_webhook_targets(pool: &PgPool) -> Result<Vec<(Uuid, String)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, target FROM ops.alert_channels \
          WHERE kind = 'webhook' AND target_enc IS NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

/// Replaces the plain-text URL `plain` of webhook channel `id` by `target`; whether it did
/// (not when another process sealed it first).
///
/// # Errors
/// Database errors.
pub async fn seal_target(
    pool: &PgPool,
    id: Uuid,
    plain: &str,
    target: StoredTarget,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE ops.alert_channels SET target = $3, target_enc = $4 \
          WHERE id = $1 AND kind = 'webhook' AND target_enc IS NULL AND target = $2",
    )
    .bind(id)
    .bind(plain)
    .bind(target.shown)
    .bind(target.sealed)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Every channel, by name.
///
/// # Errors
/// Database errors.
pub async fn list_channels(pool: &PgPool) -> Result<Vec<ChannelRow>, StoreError> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM ops.alert_channels ORDER BY name");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?)
}

/// The channel `id`, if it exists.
///
/// # Errors
/// Database errors.
pub async fn get_channel(pool: &PgPool, id: Uuid) -> Result<Option<ChannelRow>, StoreError> {
    let sql = format!("SELECT {CHANNEL_COLUMNS} FROM ops.alert_channels WHERE id = $1");
    one_by_id(pool, sql, id).await
}

/// The row `sql` selects with `id` bound as `$1`, if there is one.
async fn one_by_id<T>(pool: &PgPool, sql: String, id: Uuid) -> Result<Option<T>, StoreError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// Deletes channel `id` and its deliveries; whether it existed.
///
/// # Errors
/// Database errors.
pub async fn delete_channel(pool: &PgPool, id: Uuid) -> Result<bool, StoreError> {
    let done = sqlx::query("DELETE FROM ops.alert_channels WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// One `pending` delivery of `alert` per channel that receives its event, in one statement;
/// returns how many.
///
/// # Errors
/// Database errors.
pub async fn raise(pool: &PgPool, alert: &Alert) -> Result<u64, StoreError> {
    let insert = sqlx::query(
        "INSERT INTO ops.alert_deliveries \
           (id, channel_id, event, realm_id, run_id, pipeline, occurred_at, text) \
         SELECT gen_random_uuid(), c.id, $1, $2, $3, $4, $5, $6 \
           FROM ops.alert_channels c WHERE $1 = ANY (c.events)",
    );
    let done = bind_alert(insert, alert).execute(pool).await?;
    Ok(done.rows_affected())
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds what is said of `alert` to the next six parameters of `query`: its event, company,
/// run, pipeline, time and text.
fn bind_alert<'q>(query: PgQuery<'q>, alert: &'q Alert) -> PgQuery<'q> {
    query
        .bind(alert.kind.as_str())
        .bind(&alert.realm_id)
        .bind(alert.run_id)
        .bind(&alert.pipeline)
        .bind(PgTimestamp(alert.at))
        .bind(&alert.text)
}

/// A `pending` delivery of `alert` to `channel_id` alone (a test, claimed at once with
/// [`claim`]'s `only`; the loop would send it only an hour later); its id.
///
/// # Errors
/// Database errors.
pub async fn insert_delivery(
    pool: &PgPool,
    channel_id: Uuid,
    alert: &Alert,
) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let insert = sqlx::query(
        "INSERT INTO ops.alert_deliveries \
           (id, channel_id, event, realm_id, run_id, pipeline, occurred_at, text, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + interval '1 hour')",
    )
    .bind(id)
    .bind(channel_id);
    bind_alert(insert, alert).execute(pool).await?;
    Ok(id)
}

type DueRow = (
    Uuid,
    i32,
    String,
    Option<String>,
    Option<Uuid>,
    Option<String>,
    PgTimestamp,
    String,
    Uuid,
);

/// Claims up to `limit` pending deliveries that are due (or the delivery `only`, due or not),
/// counting the attempt and pushing their next attempt `lease` ahead: a process that dies while
/// sending leaves them to be tried again after the lease.
///
/// # Errors
/// Database errors.
pub async fn claim(
    pool: &PgPool,
    limit: i64,
    lease: Duration,
    only: Option<Uuid>,
) -> Result<Vec<Due>, StoreError> {
    let rows: Vec<DueRow> = sqlx::query_as(
        "WITH due AS ( \
           SELECT id FROM ops.alert_deliveries \
            WHERE state = 'pending' AND (CASE WHEN $3::uuid IS NULL THEN next_attempt_at <= now() \
                                              ELSE id = $3 END) \
            ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         UPDATE ops.alert_deliveries d \
            SET attempts = d.attempts + 1, updated_at = now(), \
                next_attempt_at = now() + make_interval(secs => $2) \
           FROM due WHERE d.id = due.id \
         RETURNING d.id, d.attempts, d.event, d.realm_id, d.run_id, d.pipeline, d.occurred_at, \
                   d.text, d.channel_id",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .bind(only)
    .fetch_all(pool)
    .await?;
    let mut due = Vec::with_capacity(rows.len());
    for (id, attempts, event, realm_id, run_id, pipeline, at, text, channel_id) in rows {
        let Some(channel) = get_channel(pool, channel_id).await? else {
            continue; // deleted meanwhile: its deliveries went with it
        };
        let kind = AlertKind::subscribable(&event).unwrap_or(AlertKind::Test);
        let alert = Alert {
            kind,
            realm_id,
            run_id,
            pipeline,
            at: at.0,
            text,
        };
        due.push(Due {
            id,
            attempts,
            alert,
            channel,
        });
    }
    Ok(due)
}

/// Records attempt `attempts` of delivery `id` as delivered (ignored when another process
/// claimed it since).
///
/// # Errors
/// Database errors.
pub async fn record_delivered(pool: &PgPool, id: Uuid, attempts: i32) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ops.alert_deliveries \
            SET state = 'delivered', delivered_at = now(), updated_at = now() \
          WHERE id = $1 AND attempts = $2 AND state = 'pending'",
    )
    .bind(id)
    .bind(attempts)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records attempt `attempts` of delivery `id` as failed with `error`: tried again after
/// `retry_in`, or `failed` for good when `None`.
///
/// # Errors
/// Database errors.
pub async fn record_failure(
    pool: &PgPool,
    id: Uuid,
    attempts: i32,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE ops.alert_deliveries \
            SET last_error = $3, updated_at = now(), \
                state = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'pending' END, \
                next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at \
                                       ELSE now() + make_interval(secs => $4) END \
          WHERE id = $1 AND attempts = $2 AND state = 'pending'",
    )
    .bind(id)
    .bind(attempts)
    .bind(error)
    .bind(retry_in.map(|d| d.as_secs_f64()))
    .execute(pool)
    .await?;
    Ok(())
}

const DELIVERY_SELECT: &str = "SELECT d.id, d.channel_id, c.name AS channel_name, d.event, \
     d.realm_id, d.run_id, d.state, d.attempts, d.last_error, d.occurred_at, d.delivered_at, \
     d.next_attempt_at FROM ops.alert_deliveries d JOIN ops.alert_channels c ON c.id = d.channel_id";

/// The newest `limit` deliveries, of channel `channel` or of all.
///
/// # Errors
/// Database errors.
pub async fn recent(
    pool: &PgPool,
    channel: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let sql = format!(
        "{DELIVERY_SELECT} WHERE $1::uuid IS NULL OR d.channel_id = $1 \
         ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(channel)
        .bind(limit)
        .fetch_all(pool)
        .await?)
}

/// The delivery `id`, if it exists.
///
/// # Errors
/// Database errors.
pub async fn get_delivery(pool: &PgPool, id: Uuid) -> Result<Option<DeliveryRow>, StoreError> {
    one_by_id(pool, format!("{DELIVERY_SELECT} WHERE d.id = $1"), id).await
}

/// How many months verify run `run_id` found drifted and failed.
///
/// # Errors
/// Database errors.
pub async fn verify_counts(pool: &PgPool, run_id: Uuid) -> Result<(u64, u64), StoreError> {
    let (drifted, failed): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'drifted'), count(*) FILTER (WHERE status = 'failed') \
           FROM ops.verify_months WHERE run_id = $1",
    )
    .bind(run_id)
    .fetch_one(pool)
    .await?;
    Ok((
        u64::try_from(drifted).unwrap_or(0),
        u64::try_from(failed).unwrap_or(0),
    ))
}
