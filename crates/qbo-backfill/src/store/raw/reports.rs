//! Report answers into `raw.qb_reports` (as returned) and `raw.qb_report_rows` (one row per
//! cell), in the caller's transaction (migration 0011).
//!
//! # Key
//! A report is identified by company, report name, basis, period and column summary
//! ([`ReportKey`]):
//! * `basis` is the `accounting_method` asked, or when none was asked, the answer's
//!   `Header.ReportBasis`; empty when neither says (the aging reports have no basis);
//! * the period is the request's `start_date..=end_date`; an as-of report (aging) only sends
//!   `report_date`, so its period is that one day (`period_start = period_end`);
//! * `summarize_column_by` is empty for one `Total` column, whether asked or not (the same
//!   report).
//!
//! # Unchanged writes nothing
//! QuickBooks stamps every answer with `Header.Time`, so two reads of an unchanged report never
//! have the same bytes. The stored `content_hash` is therefore the SHA-256 of the answer without
//! `Header.Time` (parsed, the one field removed, written out again as compact JSON with sorted
//! keys). A first plain `SELECT` compares it: an equal hash stops there, and nothing is written
//! at all: not the payload, not the rows, not `fetched_at_utc` (which so says when this content
//! was first seen; the stored payload, `report_time` and `request_payload` are those of that
//! first fetch). A different hash updates the report row and replaces all its cells (delete,
//! then insert), in the caller's transaction, so readers see the old rows or the new, never a
//! mix.
//!
//! # Refused
//! A truncated answer (QuickBooks' "Unable to display more data", [`qbo::is_range_too_large`])
//! is refused ([`ReportStoreError::Truncated`]): it must be read again in smaller windows and
//! never stored as complete. So is an answer whose cells do not parse
//! ([`ReportStoreError::Report`]).

use jiff::Timestamp;
use jiff::civil::Date;
use qbo::report::{Basis, FetchedReport, ReportCell, ReportError, ReportName, ReportRequest};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use super::jsonb_safe;
use crate::store::{PgDate, PgTimestamp, StoreError};

/// Cells sent to the server per `INSERT` (one JSON array each), so that a General Ledger of
/// hundreds of thousands of cells never makes one huge statement.
const CELLS_PER_STATEMENT: usize = 5_000;

/// Why a report was not stored.
#[derive(Debug, thiserror::Error)]
pub enum ReportStoreError {
    /// The answer is a truncated report: it must be read in smaller windows.
    #[error(
        "the {report} report for {start}..={end} was truncated by QuickBooks (\"Unable to display \
         more data\"); it is not stored: read it in smaller windows"
    )]
    Truncated {
        /// The report.
        report: ReportName,
        /// First day asked.
        start: Date,
        /// Last day asked.
        end: Date,
    },
    /// The answer is not JSON, or a cell or column cannot be read.
    #[error("the {report} report for {start}..={end} cannot be flattened: {source}")]
    Report {
        /// The report.
        report: ReportName,
        /// First day asked.
        start: Date,
        /// Last day asked.
        end: Date,
        /// What is wrong.
        source: ReportError,
    },
    /// A database failure (the caller's transaction is then aborted).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ReportStoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// The primary key of a stored report (`raw.qb_reports`), shared by its cells.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportKey {
    /// The company.
    pub realm_id: String,
    /// The report.
    pub report: ReportName,
    /// `Accrual`, `Cash`, or `""` (see the module docs).
    pub basis: &'static str,
    /// First day of the period (inclusive).
    pub period_start: Date,
    /// Last day of the period (inclusive).
    pub period_end: Date,
    /// `summarize_column_by`, `""` for one `Total` column.
    pub summarize_column_by: &'static str,
}

impl ReportKey {
    /// The key under which the answer `fetched` to `request` is stored for `realm_id`.
    #[must_use]
    pub fn of(realm_id: &str, request: &ReportRequest, fetched: &FetchedReport) -> Self {
        let basis = request
            .accounting_method
            .or_else(|| {
                fetched
                    .report
                    .header
                    .report_basis
                    .as_deref()
                    .and_then(|b| b.parse::<Basis>().ok())
            })
            .map_or("", Basis::as_str);
        let summarize_column_by = match request.summarize_column_by {
            None | Some(qbo::SummarizeBy::Total) => "",
            Some(by) => by.as_str(),
        };
        let period_start = if request.name.is_as_of() {
            request.end_date
        } else {
            request.start_date
        };
        Self {
            realm_id: realm_id.to_owned(),
            report: request.name,
            basis,
            period_start,
            period_end: request.end_date,
            summarize_column_by,
        }
    }
}

/// One answer to store, with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct ReportPiece<'a> {
    /// The company.
    pub realm_id: &'a str,
    /// What was asked (for a piece of a halved range, the piece).
    pub request: &'a ReportRequest,
    /// The answer.
    pub fetched: &'a FetchedReport,
    /// The run storing it (`run_id`).
    pub run_id: Option<Uuid>,
    /// Start of the run window that asked for it (`extract_window_start_utc`).
    pub window_start: Timestamp,
    /// End (exclusive) of that window (`extract_window_end_utc`).
    pub window_end: Timestamp,
}

/// What [`upsert_report`] did with the report row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportOutcome {
    /// The key was new.
    Inserted,
    /// The content differed: the report row was updated and its cells replaced.
    Updated,
    /// The content was the same: nothing was written.
    Unchanged,
}

impl ReportOutcome {
    /// `inserted`, `updated` or `unchanged`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inserted => "inserted",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

/// What [`upsert_report`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportWrite {
    /// Where the report is stored.
    pub key: ReportKey,
    /// Inserted, updated or unchanged.
    pub outcome: ReportOutcome,
    /// Rows written to `raw.qb_report_rows` (0 when unchanged).
    pub rows_written: u64,
}

/// The SHA-256 of `raw` without its volatile `Header.Time` (compact JSON, keys sorted).
///
/// # Errors
/// [`ReportError::Json`] when `raw` is not JSON.
pub fn content_hash(raw: &[u8]) -> Result<[u8; 32], ReportError> {
    let mut value: serde_json::Value = serde_json::from_slice(raw)?;
    if let Some(header) = value
        .get_mut("Header")
        .and_then(serde_json::Value::as_object_mut)
    {
        header.remove("Time");
    }
    let canonical = serde_json::to_vec(&value)?;
    Ok(Sha256::digest(&canonical).into())
}

/// The query parameters of `request`, without `minorversion` (`params`).
fn params(request: &ReportRequest) -> serde_json::Value {
    request
        .query_pairs(0)
        .into_iter()
        .filter(|(k, _)| *k != "minorversion")
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// One cell as the insert statement reads it (`jsonb_to_recordset`).
#[derive(Serialize)]
struct CellRow<'a> {
    line: usize,
    column_index: usize,
    section_path: String,
    section_path_parts: &'a [String],
    section_id: Option<&'a str>,
    report_group: Option<&'a str>,
    row_type: &'static str,
    account_or_entity_id: Option<&'a str>,
    name: Option<&'a str>,
    column_title: &'a str,
    column_type: Option<&'a str>,
    column_key: Option<&'a str>,
    column_period_start: String,
    column_period_end: String,
    value: Option<&'a str>,
    text: &'a str,
    cell_id: Option<&'a str>,
}

impl<'a> CellRow<'a> {
    fn of(cell: &'a ReportCell, key: &ReportKey) -> Self {
        Self {
            line: cell.line,
            column_index: cell.column_index,
            section_path: cell.section_label(),
            section_path_parts: &cell.section_path,
            section_id: cell.section_id.as_deref(),
            report_group: cell.group.as_deref(),
            row_type: cell.row_kind.as_str(),
            account_or_entity_id: cell.account_or_entity_id.as_deref(),
            name: cell.name.as_deref(),
            column_title: &cell.column_title,
            column_type: cell.column_type.as_deref(),
            column_key: cell.column_key.as_deref(),
            column_period_start: cell.period_start.unwrap_or(key.period_start).to_string(),
            column_period_end: cell.period_end.unwrap_or(key.period_end).to_string(),
            value: cell.value.as_ref().map(qbo::Amount::as_str),
            text: &cell.text,
            cell_id: cell.cell_id.as_deref(),
        }
    }
}

/// The key condition on `raw.qb_reports` or `raw.qb_report_rows`, binds `$1`–`$6`.
const KEY_WHERE: &str = "realm_id = $1 AND report = $2 AND basis = $3 AND period_start = $4 \
     AND period_end = $5 AND summarize_column_by = $6";

/// Insert or update the report row unless its content hash is the same; `RETURNING` whether it
/// was inserted (nothing when the hash was equal).
const UPSERT_SQL: &str = "INSERT INTO raw.qb_reports AS t (realm_id, report, basis, \
        period_start, period_end, summarize_column_by, params, payload, content_hash, \
        report_time, currency, no_report_data, total_mismatches, row_count, fetched_at_utc, \
        run_id, extract_window_start_utc, extract_window_end_utc, request_payload) \
     VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14, now(), \
        $15, $16, $17, $18::jsonb) \
     ON CONFLICT (realm_id, report, basis, period_start, period_end, summarize_column_by) \
     DO UPDATE SET params = EXCLUDED.params, payload = EXCLUDED.payload, \
        content_hash = EXCLUDED.content_hash, report_time = EXCLUDED.report_time, \
        currency = EXCLUDED.currency, no_report_data = EXCLUDED.no_report_data, \
        total_mismatches = EXCLUDED.total_mismatches, row_count = EXCLUDED.row_count, \
        fetched_at_utc = EXCLUDED.fetched_at_utc, run_id = EXCLUDED.run_id, \
        extract_window_start_utc = EXCLUDED.extract_window_start_utc, \
        extract_window_end_utc = EXCLUDED.extract_window_end_utc, \
        request_payload = EXCLUDED.request_payload \
     WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash \
     RETURNING (xmax = 0) AS inserted";

/// Inserts a chunk of cells (`$7`, a JSON array of [`CellRow`]) under the key `$1`–`$6`.
const INSERT_CELLS_SQL: &str = "INSERT INTO raw.qb_report_rows (realm_id, report, basis, \
        period_start, period_end, summarize_column_by, line, column_index, section_path, \
        section_path_parts, section_id, report_group, row_type, account_or_entity_id, name, \
        column_title, column_type, column_key, column_period_start, column_period_end, value, \
        text, cell_id) \
     SELECT $1, $2, $3, $4, $5, $6, c.line, c.column_index, c.section_path, \
        c.section_path_parts, c.section_id, c.report_group, c.row_type, \
        c.account_or_entity_id, c.name, c.column_title, c.column_type, c.column_key, \
        c.column_period_start, c.column_period_end, c.value, c.text, c.cell_id \
     FROM jsonb_to_recordset($7::jsonb) AS c(line integer, column_index integer, \
        section_path text, section_path_parts text[], section_id text, report_group text, \
        row_type text, account_or_entity_id text, name text, column_title text, \
        column_type text, column_key text, column_period_start date, column_period_end date, \
        value numeric, text text, cell_id text)";

/// Binds the key to `$1`–`$6` of `sql`.
fn keyed<'q>(
    sql: &'q str,
    key: &'q ReportKey,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(&key.realm_id)
        .bind(key.report.as_str())
        .bind(key.basis)
        .bind(PgDate(key.period_start))
        .bind(PgDate(key.period_end))
        .bind(key.summarize_column_by)
}

/// The stored content hash of `key`, if the report is stored.
async fn stored_hash(
    conn: &mut PgConnection,
    key: &ReportKey,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let sql = format!("SELECT content_hash FROM raw.qb_reports WHERE {KEY_WHERE}");
    let row = keyed(&sql, key).fetch_optional(&mut *conn).await?;
    row.map(|r| sqlx::Row::try_get(&r, 0)).transpose()
}

/// Stores one report answer in `raw.qb_reports` and its cells in `raw.qb_report_rows`, on `conn`
/// within whatever transaction the caller holds (this function never commits). An answer whose
/// content is already stored under its key writes nothing; a different one replaces the stored
/// report and all its cells (see the module docs).
///
/// # Errors
/// [`ReportStoreError::Truncated`] for a truncated answer and [`ReportStoreError::Report`] for
/// one that cannot be flattened (nothing is written for either);
/// [`ReportStoreError::Store`] when a statement fails (the caller's transaction is then aborted
/// and must be rolled back).
pub async fn upsert_report(
    conn: &mut PgConnection,
    piece: &ReportPiece<'_>,
) -> Result<ReportWrite, ReportStoreError> {
    let request = piece.request;
    let report = &piece.fetched.report;
    let bad = |source| ReportStoreError::Report {
        report: request.name,
        start: request.start_date,
        end: request.end_date,
        source,
    };
    if qbo::is_range_too_large(report)
        || qbo::report::body_signals_range_too_large(&piece.fetched.raw)
    {
        return Err(ReportStoreError::Truncated {
            report: request.name,
            start: request.start_date,
            end: request.end_date,
        });
    }
    let key = ReportKey::of(piece.realm_id, request, piece.fetched);
    let hash = content_hash(&piece.fetched.raw).map_err(bad)?;
    if stored_hash(conn, &key).await?.as_deref() == Some(hash.as_slice()) {
        return Ok(ReportWrite {
            key,
            outcome: ReportOutcome::Unchanged,
            rows_written: 0,
        });
    }
    let cells = report.cells().map_err(bad)?;
    let mismatches = report.total_mismatches().map_err(bad)?.len();
    let inserted = write_report_row(conn, piece, &key, &hash, cells.len(), mismatches).await?;
    let outcome = match inserted {
        // A concurrent writer stored the same content meanwhile.
        None => {
            return Ok(ReportWrite {
                key,
                outcome: ReportOutcome::Unchanged,
                rows_written: 0,
            });
        }
        Some(true) => ReportOutcome::Inserted,
        Some(false) => {
            let sql = format!("DELETE FROM raw.qb_report_rows WHERE {KEY_WHERE}");
            keyed(&sql, &key).execute(&mut *conn).await?;
            ReportOutcome::Updated
        }
    };
    let rows_written = write_cells(conn, &key, &cells, bad).await?;
    Ok(ReportWrite {
        key,
        outcome,
        rows_written,
    })
}

/// Inserts or replaces the report's row; `Some(true)` inserted, `Some(false)` replaced, `None`
/// when a concurrent writer stored the same content meanwhile.
async fn write_report_row(
    conn: &mut PgConnection,
    piece: &ReportPiece<'_>,
    key: &ReportKey,
    hash: &[u8; 32],
    cells: usize,
    mismatches: usize,
) -> Result<Option<bool>, ReportStoreError> {
    let request = piece.request;
    let report = &piece.fetched.report;
    let raw_text = String::from_utf8_lossy(&piece.fetched.raw);
    let request_payload = serde_json::json!({
        "path": format!("reports/{}", request.name),
        "query": params(request),
        "intuit_tid": piece.fetched.intuit_tid,
    });
    let header = &report.header;
    let written = keyed(UPSERT_SQL, key)
        .bind(params(request).to_string())
        .bind(jsonb_safe(&raw_text).as_ref())
        .bind(hash.as_slice())
        .bind(
            header
                .time
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(PgTimestamp),
        )
        .bind(header.currency.as_deref())
        .bind(header.no_report_data())
        .bind(i32::try_from(mismatches).unwrap_or(i32::MAX))
        .bind(i32::try_from(cells).unwrap_or(i32::MAX))
        .bind(piece.run_id)
        .bind(PgTimestamp(piece.window_start))
        .bind(PgTimestamp(piece.window_end))
        .bind(request_payload.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(written
        .map(|row| sqlx::Row::try_get::<bool, _>(&row, 0))
        .transpose()?)
}

/// Inserts the report's cells, a chunk per statement; returns how many rows were written.
async fn write_cells(
    conn: &mut PgConnection,
    key: &ReportKey,
    cells: &[ReportCell],
    bad: impl Fn(ReportError) -> ReportStoreError,
) -> Result<u64, ReportStoreError> {
    let mut rows_written = 0;
    for chunk in cells.chunks(CELLS_PER_STATEMENT) {
        let rows: Vec<CellRow<'_>> = chunk.iter().map(|c| CellRow::of(c, key)).collect();
        let json = serde_json::to_string(&rows).map_err(|e| bad(e.into()))?;
        rows_written += keyed(INSERT_CELLS_SQL, key)
            .bind(json)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(rows_written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_header_time_only() {
        let a =
            br#"{"Header":{"Time":"2020-09-29T08:14:02-07:00","ReportName":"CashFlow"},"Rows":{}}"#;
        let b = br#"{"Header": {"ReportName": "CashFlow", "Time": "2021-01-01T00:00:00Z"}, "Rows": {}}"#;
        let c = br#"{"Header":{"Time":"2020-09-29T08:14:02-07:00","ReportName":"CashFlow"},"Rows":{"Row":[]}}"#;
        assert_eq!(content_hash(a).expect("a"), content_hash(b).expect("b"));
        assert_ne!(content_hash(a).expect("a"), content_hash(c).expect("c"));
        assert!(content_hash(b"<html>").is_err());
    }

    #[test]
    fn keys_normalise_basis_summary_and_as_of_periods() {
        let date = |s: &str| s.parse::<Date>().expect("date");
        let fetched = |body: &str| FetchedReport {
            report: qbo::report::parse_report(body.as_bytes()).expect("report"),
            raw: body.as_bytes().to_vec().into(),
            intuit_tid: None,
        };
        let first_quarter = |name, by| {
            ReportRequest::new(name, date("2024-01-01"), date("2024-03-31"))
                .expect("range")
                .summarize_by(by)
        };
        let pl = first_quarter(ReportName::ProfitAndLoss, qbo::SummarizeBy::Total);
        let key = ReportKey::of("1", &pl, &fetched(r#"{"Header":{"ReportBasis":"Cash"}}"#));
        assert_eq!((key.basis, key.summarize_column_by), ("Cash", ""));
        let key = ReportKey::of(
            "1",
            &pl.clone().basis(Basis::Accrual),
            &fetched(r#"{"Header":{"ReportBasis":"Cash"}}"#),
        );
        assert_eq!(key.basis, "Accrual");
        let aged = first_quarter(ReportName::AgedPayables, qbo::SummarizeBy::Vendors);
        let key = ReportKey::of("1", &aged, &fetched("{}"));
        assert_eq!(key.basis, "");
        assert_eq!(key.summarize_column_by, "Vendors");
        assert_eq!(
            (key.period_start, key.period_end),
            (date("2024-03-31"), date("2024-03-31"))
        );
        assert_eq!(
            params(&pl).to_string(),
            r#"{"end_date":"2024-03-31","start_date":"2024-01-01","summarize_column_by":"Total"}"#
        );
    }
}
