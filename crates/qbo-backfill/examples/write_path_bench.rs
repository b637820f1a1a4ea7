//! Measures write paths for raw upserts against PostgreSQL `COPY` of the same payloads.
//!
//! ```text
//! cargo run --release -p qbo-backfill --example write_path_bench [-- ROWS [REPEAT]]
//! ```
//!
//! In a fresh database on the server of `DATABASE_URL` (default: localhost), it generates `ROWS`
//! (default 100,000) realistic ~1 KB customer payloads in 1000-row pages, then times:
//!
//! * `COPY … FROM STDIN` (text format) of every column into an empty table equal to
//!   `raw.qb_customers`, once as one COPY and once per page (one transaction per page);
//! * each candidate upsert path, one transaction per page: the first load (all rows new), an
//!   unchanged re-run (all rows identical) and a re-run where every tenth row changed.
//!
//! Each path writes its own empty table; counts are checked after every pass. Only the library's
//! path also writes each new version to the history table, as the pipeline does. `REPEAT` runs every
//! measurement that many times and keeps the fastest.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context as _, bail, ensure};
use qbo_backfill::store::{
    PageWrite, PgTimestamp, RawTable, TestDb, UpsertCounts, connect_options, upsert_page,
};
use serde_json::value::RawValue;
use sha2::{Digest as _, Sha256};
use sqlx::{Connection as _, PgConnection};

const PAGE: usize = 1000;
const REALM: &str = "9130357766900000";
/// The run recorded with each version the library's path writes to history.
const RUN_ID: uuid::Uuid = uuid::Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0001);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    /// The library's `upsert_page`: probe ids+hashes, then `unnest` insert of the rest.
    ProbeUnnest,
    /// One statement: `unnest` of every row's payload, filtered in SQL, `ON CONFLICT`.
    Unnest,
    /// One statement: the page as one jsonb array bind, `jsonb_array_elements`, jsonb compare.
    JsonbArray,
    /// `COPY` into a temp staging table, then `INSERT … SELECT … ON CONFLICT`.
    CopyStage,
    /// Probe ids+hashes, then `COPY` of the rest into staging, then `INSERT … SELECT`.
    ProbeCopyStage,
}

impl Path {
    const ALL: [Self; 5] = [
        Self::ProbeUnnest,
        Self::Unnest,
        Self::JsonbArray,
        Self::CopyStage,
        Self::ProbeCopyStage,
    ];

    const fn label(self) -> &'static str {
        match self {
            Self::ProbeUnnest => "A probe + unnest insert (chosen)",
            Self::Unnest => "B unnest, one statement",
            Self::JsonbArray => "C jsonb array, one statement",
            Self::CopyStage => "D COPY staging + INSERT SELECT",
            Self::ProbeCopyStage => "E probe + COPY staging",
        }
    }

    const fn table(self) -> &'static str {
        match self {
            Self::ProbeUnnest => "raw.qb_customers",
            Self::Unnest => "bench.unnest",
            Self::JsonbArray => "bench.jsonb_array",
            Self::CopyStage => "bench.copy_stage",
            Self::ProbeCopyStage => "bench.probe_copy_stage",
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let repeat: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1)
        .max(1);
    ensure!(rows >= PAGE, "ROWS must be at least {PAGE}");

    let db = TestDb::new().await.context("a fresh benchmark database")?;
    println!("database: {} (dropped at the end)", db.name());
    let result = run(&db, rows, repeat).await;
    db.cleanup().await?;
    result
}

async fn run(db: &TestDb, rows: usize, repeat: usize) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&connect_options(&db.url)?).await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&mut conn)
        .await?;
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut conn)
        .await?;
    println!("PostgreSQL {version}, synchronous_commit={sync}");

    let first = generate(rows, 0);
    let changed = generate(rows, 10);
    let bytes: usize = first
        .iter()
        .flat_map(|p| &p.rows)
        .map(|r| r.raw.get().len())
        .sum();
    println!(
        "{rows} customers in {} pages, {:.0} bytes of JSON per row on average\n",
        first.len(),
        bytes as f64 / rows as f64
    );

    sqlx::raw_sql("CREATE SCHEMA bench")
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql(
        "CREATE TEMP TABLE stage (id text, payload text, payload_hash bytea, sync_token int8) \
         ON COMMIT DELETE ROWS",
    )
    .execute(&mut conn)
    .await?;

    let (mut copy_all, mut copy_paged) = (0.0_f64, 0.0_f64);
    for _ in 0..repeat {
        copy_all = copy_all.max(copy_baseline(&mut conn, &first, false).await?);
        copy_paged = copy_paged.max(copy_baseline(&mut conn, &first, true).await?);
    }

    let mut table = String::new();
    writeln!(
        table,
        "{:<36} {:>12} {:>7} {:>12} {:>7} {:>12} {:>7}",
        "path", "first rows/s", "xCOPY", "rerun rows/s", "xCOPY", "10% chg r/s", "xCOPY"
    )?;
    let line = |name: &str, a: f64, b: Option<f64>, c: Option<f64>| {
        let cell = |v: Option<f64>| {
            v.map_or_else(
                || format!("{:>12} {:>7}", "-", "-"),
                |v| format!("{v:>12.0} {:>7.2}", v / copy_all),
            )
        };
        format!("{name:<36} {} {} {}\n", cell(Some(a)), cell(b), cell(c))
    };
    table += &line("COPY, one statement for all rows", copy_all, None, None);
    table += &line("COPY, one per page + commit", copy_paged, None, None);

    for path in Path::ALL {
        let (load, rerun, chg) = measure_path(&mut conn, path, &first, &changed, repeat).await?;
        table += &line(path.label(), load, Some(rerun), Some(chg));
        eprintln!("measured {}", path.label());
    }
    println!("{table}");
    println!(
        "xCOPY = rows/s divided by the single-COPY rate; the per-page COPY rate divides to {:.2}.",
        copy_paged / copy_all
    );
    Ok(())
}

/// Rows/s of `COPY` of every column into an empty copy of `raw.qb_customers`.
async fn copy_baseline(
    conn: &mut PgConnection,
    pages: &[qbo::Page],
    per_page: bool,
) -> anyhow::Result<f64> {
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS bench.copy_target; \
         CREATE TABLE bench.copy_target (LIKE raw.qb_customers INCLUDING ALL)",
    )
    .execute(&mut *conn)
    .await?;
    checkpoint(conn).await;
    let copy_sql = "COPY bench.copy_target (realm_id, id, payload, payload_hash, sync_token, \
                    ingested_at_utc, extract_window_start_utc, extract_window_end_utc, \
                    page_number, page_size, request_payload) FROM STDIN";
    let start = Instant::now();
    let rows: usize = pages.iter().map(|p| p.rows.len()).sum();
    if per_page {
        for page in pages {
            let mut tx = conn.begin().await?;
            let mut copy = tx.copy_in_raw(copy_sql).await?;
            copy.send(copy_text(page)).await?;
            copy.finish().await?;
            tx.commit().await?;
        }
    } else {
        let mut tx = conn.begin().await?;
        let mut copy = tx.copy_in_raw(copy_sql).await?;
        for page in pages {
            copy.send(copy_text(page)).await?;
        }
        copy.finish().await?;
        tx.commit().await?;
    }
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bench.copy_target")
        .fetch_one(&mut *conn)
        .await?;
    ensure!(n as usize == rows, "COPY loaded {n} rows, not {rows}");
    Ok(rate)
}

/// A best-effort `CHECKPOINT`, so WAL left by one measurement does not slow the next.
async fn checkpoint(conn: &mut PgConnection) {
    let _ = sqlx::raw_sql("CHECKPOINT").execute(conn).await;
}

/// Rates (first load, unchanged re-run, 10% changed) for one path, best of `repeat`.
async fn measure_path(
    conn: &mut PgConnection,
    path: Path,
    first: &[qbo::Page],
    changed: &[qbo::Page],
    repeat: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let rows = first.iter().map(|p| p.rows.len() as u64).sum::<u64>();
    let every_tenth = first
        .iter()
        .flat_map(|p| &p.rows)
        .filter(|r| is_changed(&r.id, 10))
        .count();
    let (mut load, mut rerun, mut chg) = (0.0_f64, 0.0_f64, 0.0_f64);
    for _ in 0..repeat {
        let sql = format!(
            "DROP TABLE IF EXISTS {t}; CREATE TABLE {t} (LIKE bench.copy_target INCLUDING ALL)",
            t = path.table()
        );
        if path == Path::ProbeUnnest {
            sqlx::raw_sql("TRUNCATE raw.qb_customers")
                .execute(&mut *conn)
                .await?;
        } else {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await?;
        }
        checkpoint(conn).await;
        let (rate, got) = pass(conn, path, first).await?;
        ensure!(
            got == UpsertCounts {
                inserted: rows,
                updated: 0,
                unchanged: 0
            },
            "{got:?}"
        );
        load = load.max(rate);
        checkpoint(conn).await;
        let (rate, got) = pass(conn, path, first).await?;
        ensure!(
            got == UpsertCounts {
                inserted: 0,
                updated: 0,
                unchanged: rows
            },
            "{got:?}"
        );
        rerun = rerun.max(rate);
        checkpoint(conn).await;
        let (rate, got) = pass(conn, path, changed).await?;
        let want = UpsertCounts {
            inserted: 0,
            updated: every_tenth as u64,
            unchanged: rows - every_tenth as u64,
        };
        ensure!(got == want, "{path:?}: {got:?} != {want:?}");
        chg = chg.max(rate);
    }
    Ok((load, rerun, chg))
}

/// Upserts every page (one transaction each); returns rows/s and the summed counts.
async fn pass(
    conn: &mut PgConnection,
    path: Path,
    pages: &[qbo::Page],
) -> anyhow::Result<(f64, UpsertCounts)> {
    let window_start: jiff::Timestamp = "2026-01-10T00:00:00Z".parse()?;
    let window_end: jiff::Timestamp = "2026-01-11T00:00:00Z".parse()?;
    let mut total = UpsertCounts::default();
    let start = Instant::now();
    for page in pages {
        let mut tx = conn.begin().await?;
        let write = PageWrite {
            realm_id: REALM,
            table: RawTable::CUSTOMERS,
            window_start,
            window_end,
            page,
            run_id: Some(RUN_ID),
        };
        total += match path {
            Path::ProbeUnnest => upsert_page(&mut tx, &write).await?,
            other => alternative(&mut tx, other, &write).await?,
        };
        tx.commit().await?;
    }
    let rows = pages.iter().map(|p| p.rows.len()).sum::<usize>();
    Ok((rows as f64 / start.elapsed().as_secs_f64(), total))
}

/// Column list and `ON CONFLICT` clause shared by the alternatives.
const COLUMNS: &str = "(realm_id, id, payload, payload_hash, sync_token, ingested_at_utc, \
    extract_window_start_utc, extract_window_end_utc, page_number, page_size, request_payload)";
const ON_CONFLICT: &str = "ON CONFLICT (realm_id, id) DO UPDATE SET payload = EXCLUDED.payload, \
    payload_hash = EXCLUDED.payload_hash, sync_token = EXCLUDED.sync_token, \
    ingested_at_utc = EXCLUDED.ingested_at_utc, \
    extract_window_start_utc = EXCLUDED.extract_window_start_utc, \
    extract_window_end_utc = EXCLUDED.extract_window_end_utc, page_number = EXCLUDED.page_number, \
    page_size = EXCLUDED.page_size, request_payload = EXCLUDED.request_payload \
    WHERE (EXCLUDED.sync_token IS NULL OR t.sync_token IS NULL \
           OR EXCLUDED.sync_token >= t.sync_token) \
      AND t.payload IS DISTINCT FROM EXCLUDED.payload \
    RETURNING (xmax = 0)";

/// The probe of path A, against any table.
fn probe_sql(table: &str) -> String {
    format!(
        "SELECT i.ord FROM unnest($2::text[], $3::bytea[], $4::int8[]) WITH ORDINALITY \
             AS i(id, payload_hash, sync_token, ord) \
         LEFT JOIN LATERAL (SELECT true AS present, t.payload_hash, t.sync_token FROM {table} t \
             WHERE t.realm_id = $1 AND t.id = i.id LIMIT 1) cur ON true \
         WHERE cur.present IS NULL OR (cur.payload_hash IS DISTINCT FROM i.payload_hash \
             AND (i.sync_token IS NULL OR cur.sync_token IS NULL \
                  OR i.sync_token >= cur.sync_token))"
    )
}

/// The new-or-changed filter over a source `s(id, payload_hash, sync_token)`.
fn lateral_filter(table: &str) -> String {
    format!(
        "LEFT JOIN LATERAL (SELECT true AS present, c.payload_hash, c.sync_token FROM {table} c \
             WHERE c.realm_id = $1 AND c.id = s.id LIMIT 1) cur ON true \
         WHERE cur.present IS NULL OR (cur.payload_hash IS DISTINCT FROM s.payload_hash \
             AND (s.sync_token IS NULL OR cur.sync_token IS NULL \
                  OR s.sync_token >= cur.sync_token))"
    )
}

struct Prepared<'a> {
    id: &'a str,
    payload: &'a str,
    hash: [u8; 32],
    sync_token: Option<i64>,
}

fn prepare(page: &qbo::Page) -> Vec<Prepared<'_>> {
    page.rows
        .iter()
        .map(|r| Prepared {
            id: &r.id,
            payload: r.raw.get(),
            hash: Sha256::digest(r.raw.get().as_bytes()).into(),
            sync_token: r.sync_token.parse().ok(),
        })
        .collect()
}

fn request_payload(page: &qbo::Page) -> String {
    serde_json::json!({
        "query": page.query, "start_position": page.start_position, "page_size": page.page_size,
        "minor_version": page.minor_version, "intuit_tid": page.intuit_tid,
    })
    .to_string()
}

fn counts_of(returned: &[bool], received: usize) -> UpsertCounts {
    let inserted = returned.iter().filter(|&&i| i).count() as u64;
    let updated = returned.len() as u64 - inserted;
    UpsertCounts {
        inserted,
        updated,
        unchanged: received as u64 - inserted - updated,
    }
}

async fn alternative(
    conn: &mut PgConnection,
    path: Path,
    write: &PageWrite<'_>,
) -> anyhow::Result<UpsertCounts> {
    let table = path.table();
    let page = write.page;
    let prepared = prepare(page);
    let tail = |src: &str| {
        format!(
            "INSERT INTO {table} AS t {COLUMNS} SELECT $1, s.id, s.payload::jsonb, \
             s.payload_hash, s.sync_token, now(), $6, $7, $8, $9, $10::jsonb FROM {src} {} \
             {ON_CONFLICT}",
            lateral_filter(table)
        )
    };
    let returned: Vec<bool> = match path {
        Path::ProbeUnnest => bail!("path A is the library's"),
        Path::Unnest => {
            let sql = tail(
                "unnest($2::text[], $3::text[], $4::bytea[], $5::int8[]) \
                 AS s(id, payload, payload_hash, sync_token)",
            );
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(write.realm_id)
                .bind(prepared.iter().map(|p| p.id).collect::<Vec<_>>())
                .bind(prepared.iter().map(|p| p.payload).collect::<Vec<_>>())
                .bind(
                    prepared
                        .iter()
                        .map(|p| p.hash.as_slice())
                        .collect::<Vec<_>>(),
                )
                .bind(prepared.iter().map(|p| p.sync_token).collect::<Vec<_>>())
                .bind(PgTimestamp(write.window_start))
                .bind(PgTimestamp(write.window_end))
                .bind(page.number as i32)
                .bind(page.page_size as i32)
                .bind(request_payload(page))
                .fetch_all(&mut *conn)
                .await?
        }
        Path::JsonbArray => {
            let mut array = String::with_capacity(page.rows.len() * 1100);
            array.push('[');
            for (i, r) in page.rows.iter().enumerate() {
                if i > 0 {
                    array.push(',');
                }
                array.push_str(r.raw.get());
            }
            array.push(']');
            let sql = format!(
                "INSERT INTO {table} AS t {COLUMNS} \
                 SELECT $1, e->>'Id', e, NULL, (e->>'SyncToken')::int8, now(), $3, $4, $5, $6, \
                        $7::jsonb \
                 FROM jsonb_array_elements($2::jsonb) AS e \
                 LEFT JOIN LATERAL (SELECT true AS present, c.payload, c.sync_token \
                     FROM {table} c WHERE c.realm_id = $1 AND c.id = e->>'Id' LIMIT 1) cur \
                     ON true \
                 WHERE cur.present IS NULL OR (cur.payload IS DISTINCT FROM e \
                     AND (cur.sync_token IS NULL OR (e->>'SyncToken')::int8 >= cur.sync_token)) \
                 {ON_CONFLICT}"
            );
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .bind(write.realm_id)
                .bind(array)
                .bind(PgTimestamp(write.window_start))
                .bind(PgTimestamp(write.window_end))
                .bind(page.number as i32)
                .bind(page.page_size as i32)
                .bind(request_payload(page))
                .fetch_all(&mut *conn)
                .await?
        }
        Path::CopyStage | Path::ProbeCopyStage => {
            let chosen: Vec<&Prepared<'_>> = if path == Path::ProbeCopyStage {
                let ords: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(probe_sql(table)))
                    .bind(write.realm_id)
                    .bind(prepared.iter().map(|p| p.id).collect::<Vec<_>>())
                    .bind(
                        prepared
                            .iter()
                            .map(|p| p.hash.as_slice())
                            .collect::<Vec<_>>(),
                    )
                    .bind(prepared.iter().map(|p| p.sync_token).collect::<Vec<_>>())
                    .fetch_all(&mut *conn)
                    .await?;
                ords.iter()
                    .filter_map(|&o| prepared.get(o as usize - 1))
                    .collect()
            } else {
                prepared.iter().collect()
            };
            if chosen.is_empty() {
                Vec::new()
            } else {
                let mut buf = Vec::with_capacity(chosen.len() * 1200);
                for p in &chosen {
                    copy_field(&mut buf, p.id);
                    buf.push(b'\t');
                    copy_field(&mut buf, p.payload);
                    buf.extend_from_slice(b"\t\\\\x");
                    for b in p.hash {
                        let _ = write!(HexSink(&mut buf), "{b:02x}");
                    }
                    buf.push(b'\t');
                    match p.sync_token {
                        Some(t) => buf.extend_from_slice(t.to_string().as_bytes()),
                        None => buf.extend_from_slice(b"\\N"),
                    }
                    buf.push(b'\n');
                }
                let mut copy = conn
                    .copy_in_raw("COPY stage (id, payload, payload_hash, sync_token) FROM STDIN")
                    .await?;
                copy.send(buf).await?;
                copy.finish().await?;
                sqlx::query_scalar(sqlx::AssertSqlSafe(tail("stage AS s")))
                    .bind(write.realm_id)
                    .bind(None::<Vec<String>>)
                    .bind(None::<Vec<String>>)
                    .bind(None::<Vec<Vec<u8>>>)
                    .bind(None::<Vec<i64>>)
                    .bind(PgTimestamp(write.window_start))
                    .bind(PgTimestamp(write.window_end))
                    .bind(page.number as i32)
                    .bind(page.page_size as i32)
                    .bind(request_payload(page))
                    .fetch_all(&mut *conn)
                    .await?
            }
        }
    };
    Ok(counts_of(&returned, page.rows.len()))
}

/// `fmt::Write` into a byte buffer.
struct HexSink<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for HexSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Appends `s` escaped for COPY's text format.
fn copy_field(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// COPY text rows of every column of the raw table for `page`.
fn copy_text(page: &qbo::Page) -> Vec<u8> {
    let request = request_payload(page);
    let mut out = Vec::with_capacity(page.rows.len() * 1400);
    for r in &page.rows {
        copy_field(&mut out, REALM);
        out.push(b'\t');
        copy_field(&mut out, &r.id);
        out.push(b'\t');
        copy_field(&mut out, r.raw.get());
        out.extend_from_slice(b"\t\\\\x");
        for b in Sha256::digest(r.raw.get().as_bytes()) {
            let _ = write!(HexSink(&mut out), "{b:02x}");
        }
        out.push(b'\t');
        copy_field(&mut out, &r.sync_token);
        out.extend_from_slice(b"\tnow\t2026-01-10 00:00:00+00\t2026-01-11 00:00:00+00\t");
        let _ = write!(HexSink(&mut out), "{}\t{}\t", page.number, page.page_size);
        copy_field(&mut out, &request);
        out.push(b'\n');
    }
    out
}

/// Whether row `id` is one of the changed rows of a variant (every `every`-th id).
fn is_changed(id: &str, every: u64) -> bool {
    every > 0 && id.parse::<u64>().is_ok_and(|n| n % every == 0)
}

/// `rows` customers in pages of 1000. With `change_every = k > 0`, every k-th customer has a
/// newer SyncToken and a new balance (a later extraction of the same company).
fn generate(rows: usize, change_every: u64) -> Vec<qbo::Page> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let first = [
        "Amy", "Bill", "Carla", "Dukes", "Erin", "Frank", "Gita", "Hugo", "Ines", "Juan",
    ];
    let last = [
        "Smith", "Nguyen", "García", "Okafor", "Kowalski", "Dubois", "Rossi", "Tanaka",
    ];
    let cities = [
        ("Tucson", "AZ"),
        ("Quito", "PI"),
        ("Austin", "TX"),
        ("Denver", "CO"),
    ];
    let mut pages = Vec::new();
    let mut current = Vec::with_capacity(PAGE);
    for n in 1..=rows as u64 {
        let id = n.to_string();
        let changed = is_changed(&id, change_every);
        let given = first[rng.below(first.len())];
        let family = last[rng.below(last.len())];
        let (city, state) = cities[rng.below(cities.len())];
        let company = format!(
            "{family} {} {n}",
            ["Camp", "Supply", "Builders", "Foods"][rng.below(4)]
        );
        let balance = (rng.next() % 1_000_000) as f64 / 100.0 + if changed { 1.0 } else { 0.0 };
        let sync_token = rng.below(5) as u64 + u64::from(changed);
        let value = serde_json::json!({
            "Taxable": rng.below(2) == 0,
            "BillAddr": {"Id": (n * 2).to_string(), "Line1": format!("{} Court St.", rng.below(999)),
                         "City": city, "CountrySubDivisionCode": state,
                         "PostalCode": format!("{:05}", rng.below(99_999)),
                         "Lat": format!("{:.7}", 30.0 + rng.below(1000) as f64 / 97.0),
                         "Long": format!("{:.7}", -110.0 + rng.below(1000) as f64 / 89.0)},
            "ShipAddr": {"Id": (n * 2 + 1).to_string(), "Line1": format!("{} Main St.", rng.below(999)),
                         "City": city, "CountrySubDivisionCode": state,
                         "PostalCode": format!("{:05}", rng.below(99_999))},
            "Job": false, "BillWithParent": false,
            "Balance": balance, "BalanceWithJobs": balance,
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "PreferredDeliveryMethod": "Print", "domain": "QBO", "sparse": false,
            "Id": id, "SyncToken": sync_token.to_string(),
            "MetaData": {"CreateTime": format!("2026-01-10T{:02}:{:02}:{:02}-08:00",
                             rng.below(24), rng.below(60), rng.below(60)),
                         "LastUpdatedTime": format!("2026-01-10T{:02}:{:02}:{:02}-08:00",
                             rng.below(24), rng.below(60), rng.below(60))},
            "GivenName": given, "FamilyName": family,
            "FullyQualifiedName": company, "CompanyName": company, "DisplayName": company,
            "PrintOnCheckName": company, "Active": rng.below(10) != 0,
            "PrimaryPhone": {"FreeFormNumber": format!("(520) {:03}-{:04}", rng.below(999), rng.below(9999))},
            "PrimaryEmailAddr": {"Address": format!("{}.{}{}@example.com", given.to_lowercase(), family.to_lowercase(), n)},
            "DefaultTaxCodeRef": {"value": rng.below(9).to_string()},
            "Notes": format!("Customer since {}\tpriority {}", 2000 + rng.below(26), rng.below(5)),
        });
        let text = value.to_string();
        current.push(qbo::Row {
            id,
            sync_token: sync_token.to_string(),
            raw: RawValue::from_string(text).expect("generated JSON is valid"),
            created: None,
            updated: None,
        });
        if current.len() == PAGE {
            pages.push(page(pages.len() as u32 + 1, std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        pages.push(page(pages.len() as u32 + 1, current));
    }
    pages
}

fn page(number: u32, rows: Vec<qbo::Row>) -> qbo::Page {
    let start = (number - 1) * PAGE as u32 + 1;
    qbo::Page {
        entity: qbo::Entity::Customer,
        number,
        start_position: start,
        page_size: PAGE as u32,
        query: format!(
            "SELECT * FROM Customer WHERE Active IN (true, false) AND MetaData.CreateTime >= \
             '2026-01-10T00:00:00Z' ORDERBY Id STARTPOSITION {start} MAXRESULTS {PAGE}"
        ),
        minor_version: 75,
        intuit_tid: Some(format!("1-{number:08x}-bench")),
        rows,
    }
}

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
