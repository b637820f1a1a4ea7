//! A PostgreSQL server for tests and the demo when none is running: [`resolve_server_url`]
//! returns the given URL if a server answers there, and otherwise starts (once per user, shared by
//! all processes) a throwaway cluster from the PostgreSQL binaries found on the machine.
//!
//! The cluster lives in `<temp dir>/qbo-backfill-pg-<uid>` (data directory and unix socket), on
//! its own port on 127.0.0.1, with trust authentication and durability switched off (it is
//! throwaway). A file lock (`<temp dir>/qbo-backfill-pg-<uid>.lock`) makes parallel test processes
//! start it only once; later processes find it running and reuse it. It keeps running after the
//! tests; stop it with `pg_ctl -D <dir> stop` or let the temp dir be cleaned. As root, `initdb`
//! and `pg_ctl` run as the `postgres` user through `runuser`, because PostgreSQL refuses root.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sqlx::{ConnectOptions as _, Connection as _};

use crate::store::{StoreError, connect_options, describe_io, target};

/// Returns the URL to use for `url`'s server: `url` itself if a PostgreSQL server answers there
/// (even with an error such as a missing database or a refused login: that is for the caller to
/// report), else, when `url` names this machine, a `postgres://postgres@127.0.0.1:<port>/<db>`
/// URL of a throwaway local cluster started (or found running) for this user.
///
/// # Errors
/// [`StoreError::InvalidUrl`], or [`StoreError::NoServer`] in one line saying how to get a
/// server when none answers and none can be started.
pub async fn resolve_server_url(url: &str) -> Result<String, StoreError> {
    let options = connect_options(url)?;
    let probe = options
        .clone()
        .database("postgres")
        .disable_statement_logging();
    let reason = match tokio::time::timeout(Duration::from_secs(5), probe.connect()).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return Ok(url.to_owned());
        }
        Ok(Err(sqlx::Error::Io(e))) => describe_io(&e),
        Ok(Err(sqlx::Error::PoolTimedOut)) => "timed out".to_owned(),
        // The server answered (missing database, refused login, TLS, …): it exists.
        Ok(Err(_)) => return Ok(url.to_owned()),
        Err(_) => "no answer within 5s".to_owned(),
    };
    let where_ = target(&options);
    if !is_local_host(options.get_host()) {
        return Err(StoreError::NoServer(format!(
            "Cannot reach PostgreSQL at {where_}: {reason}. Start the server or point \
             DATABASE_URL at a running one."
        )));
    }
    let database = options.get_database().unwrap_or("postgres").to_owned();
    let port = tokio::task::spawn_blocking(move || ensure_cluster(&reason, &where_))
        .await
        .map_err(|e| StoreError::NoServer(format!("Starting a local PostgreSQL failed: {e}")))??;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/{database}"))
}

fn is_local_host(host: &str) -> bool {
    host.starts_with('/') || matches!(host, "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

/// The PostgreSQL binaries directory holding both `initdb` and `pg_ctl`: on `PATH` first, then
/// the newest `/usr/lib/postgresql/<version>/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if has_both(&dir) {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_both(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Starts the throwaway cluster unless it is running; returns its port. Blocking.
fn ensure_cluster(reason: &str, where_: &str) -> Result<u16, StoreError> {
    let Some(bin) = find_bin_dir() else {
        return Err(no_server(
            reason,
            where_,
            "no PostgreSQL binaries (initdb, pg_ctl) were found to start one",
        ));
    };
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let tag = uid.map_or_else(|| "user".to_owned(), |u| u.to_string());
    let tmp = std::env::temp_dir();
    let cluster = Throwaway {
        bin,
        data: tmp.join(format!("qbo-backfill-pg-{tag}")),
        tmp: tmp.clone(),
        as_root: uid == Some(0),
        reason,
        where_,
    };
    let _lock = cluster.lock(&tmp.join(format!("qbo-backfill-pg-{tag}.lock")))?;
    if let Some(port) = running_port(&cluster.data) {
        return Ok(port);
    }
    cluster.init()?;
    cluster.start()
}

/// The error when no server answers and none could be started: `how` says why not.
fn no_server(reason: &str, where_: &str, how: &str) -> StoreError {
    StoreError::NoServer(format!(
        "Cannot reach PostgreSQL at {where_} ({reason}) and {how}. Start a server (e.g. \
         `docker compose up -d postgres`, or install PostgreSQL) or set DATABASE_URL."
    ))
}

/// The throwaway cluster of this user: its binaries, data directory, and why it is wanted.
struct Throwaway<'a> {
    bin: PathBuf,
    tmp: PathBuf,
    data: PathBuf,
    as_root: bool,
    reason: &'a str,
    where_: &'a str,
}

impl Throwaway<'_> {
    fn failed(&self, what: String) -> StoreError {
        no_server(
            self.reason,
            self.where_,
            &format!(
                "starting a throwaway cluster in {} failed: {what}",
                self.data.display()
            ),
        )
    }

    /// Takes the lock that makes concurrent processes start one cluster, not several.
    fn lock(&self, lock_path: &Path) -> Result<std::fs::File, StoreError> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path)
            .map_err(|e| self.failed(format!("cannot open {}: {e}", lock_path.display())))?;
        lock.lock()
            .map_err(|e| self.failed(format!("cannot lock {}: {e}", lock_path.display())))?;
        Ok(lock)
    }

    /// Runs one PostgreSQL program (as `postgres` when we are root), its output kept off the
    /// terminal unless it fails.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), StoreError> {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(&self.tmp)
            .output()
            .map_err(|e| self.failed(format!("cannot run {program}: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        Err(self.failed(format!(
            "{program} exited with {}: {}",
            out.status,
            last.trim()
        )))
    }

    /// Creates the data directory unless a whole one is there (a half-made one is removed).
    fn init(&self) -> Result<(), StoreError> {
        if self.data.join("PG_VERSION").is_file() {
            return Ok(());
        }
        if self.data.exists() {
            // A half-made cluster from an interrupted initdb.
            std::fs::remove_dir_all(&self.data)
                .map_err(|e| self.failed(format!("cannot remove a broken cluster: {e}")))?;
        }
        let data = self.data.to_string_lossy();
        self.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
    }

    /// Starts the server on a free port and waits until it accepts connections.
    fn start(&self) -> Result<u16, StoreError> {
        let data = self.data.to_string_lossy();
        let port = free_port().map_err(|e| self.failed(format!("no free port: {e}")))?;
        let server_options = format!(
            "-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        );
        let log = self.data.join("server.log").to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &log,
                "-o",
                &server_options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        running_port(&self.data).ok_or_else(|| self.failed("the server did not come up".to_owned()))
    }
}

/// The port of the cluster in `data` if its postmaster is up and accepts connections.
fn running_port(data: &Path) -> Option<u16> {
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    // postmaster.pid: pid, data dir, start time, port, socket dir, listen address, …
    let port: u16 = pid_file.lines().nth(3)?.trim().parse().ok()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    Some(port)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_hosts_fall_back() {
        assert!(is_local_host("localhost"));
        assert!(is_local_host("127.0.0.1"));
        assert!(is_local_host("/var/run/postgresql"));
        assert!(!is_local_host("db.example.com"));
    }
}
