//! The dashboard's figures (`/`): per company and entity, the rows in `raw` (live and marked
//! deleted), the last successful backfill and sync, how far behind the sync cursor is, the next
//! trigger, the last verification; per company, the requests of this month against the
//! allowance. Everything comes from a handful of grouped queries, whatever the number of
//! entities.

use std::collections::HashMap;

use jiff::Timestamp;
use sqlx::PgPool;

use crate::domain::batch::Batch;
use crate::domain::catalog::{ENTITIES, EntitySpec};
use crate::domain::health::{Allowance, Freshness};
use crate::domain::pipeline::Pipeline;
use crate::store::StoreError;
use crate::store::auth::companies;
use crate::store::infra::allowance;
use crate::store::raw::health::{self, PipelineRuns, TableRows};
use crate::store::raw::verify::{self, LatestVerify};
use crate::store::runs::triggers::{self, TriggerStoreError};

/// Why the dashboard could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The triggers could not be read.
    #[error(transparent)]
    Triggers(#[from] TriggerStoreError),
}

impl From<sqlx::Error> for DashboardError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// One entity of one company.
#[derive(Debug, Clone)]
pub struct EntityHealth {
    /// The entity.
    pub spec: &'static EntitySpec,
    /// Its raw table's rows.
    pub rows: TableRows,
    /// Its backfill's runs.
    pub backfill: PipelineRuns,
    /// Its incremental sync's runs.
    pub sync: PipelineRuns,
    /// How far behind its sync cursor is.
    pub freshness: Freshness,
    /// The soonest enabled trigger of its backfill or sync (or of a batch naming them): local
    /// time and UTC.
    pub next_trigger: Option<(String, String)>,
    /// Its latest verification.
    pub verify: Option<LatestVerify>,
}

impl EntityHealth {
    /// Whether it stands out: its newest run failed, its sync is stale, its last verification
    /// found months it could not make agree.
    #[must_use]
    pub fn needs_attention(&self) -> bool {
        let failed = |r: &PipelineRuns| r.latest_status.as_deref() == Some("failed");
        failed(&self.backfill)
            || failed(&self.sync)
            || self.freshness.is_stale()
            || self.verify.as_ref().is_some_and(|v| v.failed > 0)
    }
}

/// One company.
#[derive(Debug, Clone)]
pub struct CompanyHealth {
    /// The company.
    pub realm_id: String,
    /// Requests this calendar month (UTC).
    pub requests_this_month: u64,
    /// Its monthly allowance.
    pub allowance: Allowance,
    /// Its entities, in catalog order.
    pub entities: Vec<EntityHealth>,
}

/// The dashboard at `now`.
///
/// # Errors
/// Database failures.
pub async fn dashboard(
    pool: &PgPool,
    now: Timestamp,
    allowance: Allowance,
) -> Result<Vec<CompanyHealth>, DashboardError> {
    let rows = health::table_rows(pool).await?;
    let names: Vec<&str> = ENTITIES
        .iter()
        .flat_map(|e| [e.backfill, e.incremental])
        .collect();
    let mut runs = health::pipeline_runs(pool, &names).await?;
    let cursors = health::cursors(pool).await?;
    let mut realms: Vec<String> = companies::list(pool)
        .await?
        .into_iter()
        .map(|c| c.realm_id)
        .collect();
    for (realm, _) in rows.keys() {
        if !realms.contains(realm) {
            realms.push(realm.clone());
        }
    }
    realms.sort();
    let verifications = verify::latest_by_entity(pool, &realms).await?;
    let next = next_triggers(pool).await?;
    let month: HashMap<String, i64> = allowance::this_month(pool)
        .await?
        .into_iter()
        .map(|m| (m.realm_id, m.requests))
        .collect();
    let mut out = Vec::new();
    for realm_id in realms {
        let entities = ENTITIES
            .iter()
            .map(|spec| {
                let key = |p: &str| (realm_id.clone(), p.to_owned());
                EntityHealth {
                    spec,
                    rows: rows
                        .get(&(realm_id.clone(), spec.table.to_owned()))
                        .copied()
                        .unwrap_or_default(),
                    backfill: runs.remove(&key(spec.backfill)).unwrap_or_default(),
                    sync: runs.remove(&key(spec.incremental)).unwrap_or_default(),
                    freshness: Freshness::of(
                        cursors
                            .get(&(realm_id.clone(), spec.entity.qbo_name().to_owned()))
                            .copied(),
                        now,
                    ),
                    next_trigger: [spec.backfill, spec.incremental]
                        .iter()
                        .filter_map(|p| next.get(*p))
                        .min_by(|a, b| a.1.cmp(&b.1))
                        .cloned(),
                    verify: verifications
                        .iter()
                        .find(|v| v.realm_id == realm_id && v.entity == spec.plural)
                        .and_then(|v| v.latest.clone()),
                }
            })
            .collect();
        out.push(CompanyHealth {
            requests_this_month: month
                .get(&realm_id)
                .map_or(0, |n| u64::try_from(*n).unwrap_or(0)),
            allowance,
            realm_id,
            entities,
        });
    }
    Ok(out)
}

/// The soonest next fire (local, UTC) per pipeline name, a batch trigger counting for every
/// pipeline it runs.
async fn next_triggers(
    pool: &PgPool,
) -> Result<HashMap<String, (String, String)>, TriggerStoreError> {
    let mut next: HashMap<String, (String, String)> = HashMap::new();
    for t in triggers::list(pool).await? {
        let view = t.view();
        let (Some(utc), Some(local), true) =
            (view.next_fire_utc, view.next_fire_local, view.enabled)
        else {
            continue;
        };
        let covered: Vec<Pipeline> = match Batch::ALL.iter().find(|b| b.name() == view.pipeline) {
            Some(batch) => batch.pipelines(),
            None => view.pipeline.parse::<Pipeline>().into_iter().collect(),
        };
        for p in covered {
            let slot = next
                .entry(p.name().to_owned())
                .or_insert_with(|| (local.clone(), utc.clone()));
            if utc < slot.1 {
                *slot = (local.clone(), utc.clone());
            }
        }
    }
    Ok(next)
}
