//! Who executes runs: every process that does (a CLI run, a `worker`, a `serve`) registers a
//! worker with an identity of its own and renews its heartbeat. Host names and pids repeat across
//! containers, so a worker is judged dead by an expired lease, and by its pid only when its record
//! comes from this very pid namespace of this very boot and the pid's start time still matches.

use sqlx::PgPool;
use uuid::Uuid;

/// This process as a worker.
#[derive(Debug, Clone)]
pub struct WorkerIdentity {
    /// Unique for each process start.
    pub id: Uuid,
    /// Host name (for people; never trusted alone).
    pub host: String,
    /// Process id (for people; never trusted alone).
    pub pid: i32,
    /// `boot_id/pid-namespace/pid/start-time`, when this system exposes them.
    pub liveness_key: Option<String>,
}

impl WorkerIdentity {
    /// The identity of the current process, with a fresh id.
    #[must_use]
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            id: Uuid::now_v7(),
            host: host_name(),
            pid: i32::try_from(pid).unwrap_or(0),
            liveness_key: liveness_key(pid),
        }
    }
}

/// This machine's name.
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn boot_and_namespace() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let ns = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}/{}", boot.trim(), ns.display()))
}

/// The start time (clock ticks since boot) of process `pid`, field 22 of `/proc/PID/stat`.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_owned)
}

fn liveness_key(pid: u32) -> Option<String> {
    Some(format!(
        "{}/{pid}/{}",
        boot_and_namespace()?,
        start_time(pid)?
    ))
}

/// What this process can tell about the worker whose liveness key is `key`: `Some(false)` when
/// it certainly died (same boot and pid namespace, and its pid is gone or now belongs to another
/// process), `Some(true)` when it runs, `None` when it cannot tell (another machine, container or
/// boot): then only its lease decides.
#[must_use]
pub fn alive_here(key: &str) -> Option<bool> {
    let here = boot_and_namespace()?;
    let rest = key.strip_prefix(here.as_str())?.strip_prefix('/')?;
    let (pid, started) = rest.split_once('/')?;
    let pid: u32 = pid.parse().ok()?;
    Some(start_time(pid).is_some_and(|s| s == started))
}

/// Records `worker` (of `kind`: `cli`, `worker`, `serve`) as started.
///
/// # Errors
/// Database errors.
pub async fn register(
    pool: &PgPool,
    worker: &WorkerIdentity,
    kind: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO ops.workers (id, kind, host, pid, liveness_key) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), stopped_at = NULL",
    )
    .bind(worker.id)
    .bind(kind)
    .bind(&worker.host)
    .bind(worker.pid)
    .bind(&worker.liveness_key)
    .execute(pool)
    .await?;
    Ok(())
}

/// Renews the worker's heartbeat.
///
/// # Errors
/// Database errors.
pub async fn heartbeat(pool: &PgPool, worker_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ops.workers SET heartbeat_at = now() WHERE id = $1")
        .bind(worker_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Records the worker as stopped.
///
/// # Errors
/// Database errors.
pub async fn stopped(pool: &PgPool, worker_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE ops.workers SET stopped_at = now() WHERE id = $1")
        .bind(worker_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Workers whose heartbeat is younger than `within_s` seconds and that have not stopped.
///
/// # Errors
/// Database errors.
pub async fn live_count(pool: &PgPool, within_s: f64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM ops.workers WHERE stopped_at IS NULL \
           AND heartbeat_at > now() - make_interval(secs => $1)",
    )
    .bind(within_s)
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_foreign_or_gone_one_is_not_judged_by_pid() {
        let me = WorkerIdentity::current();
        let Some(key) = me.liveness_key else {
            return; // no /proc here: only leases decide
        };
        assert_eq!(alive_here(&key), Some(true));
        // Same namespace, same pid, another start time: the pid was reused, the worker is gone.
        let (prefix, _) = key.rsplit_once('/').expect("key has a start time");
        assert_eq!(alive_here(&format!("{prefix}/1")), Some(false));
        // Another boot or namespace: cannot tell.
        assert_eq!(alive_here("other-boot/pid:[1]/1/1"), None);
        assert_eq!(alive_here(""), None);
    }
}
