//! QuickBooks financial reports (`GET /v3/company/{realm}/reports/{Name}`): the request
//! ([`ReportRequest`]), the typed body ([`Report`], tolerant of the fields real bodies leave
//! out), its flattening into one [`ReportCell`] per non-empty cell, the report's own totals
//! ([`Report::totals`]) with a check that the rows add up to them ([`Report::total_mismatches`]),
//! and the detector for QuickBooks' "reduce the date range" truncation
//! ([`is_range_too_large`]).
//!
//! # Shape of a body
//! `Header` (name, period, basis, `Option` name/value pairs), `Columns.Column[]` (title, type,
//! `MetaData` such as `ColKey`, `StartDate`, `EndDate`; a column may nest sub-columns) and
//! `Rows.Row[]`. A row is either a *Data* row (`ColData[]`, one entry per leaf column; the first
//! is the row's label, with the account or entity `id` when the report has one) or a *Section*
//! (`Header.ColData`, nested `Rows`, `Summary.ColData`, and a `group` such as `Income`,
//! `GrossProfit`, `GrandTotal`). Values are strings; empty strings mean "no value".
//!
//! # Row kinds ([`RowKind`])
//! * `Data`: a row with `ColData` (its `type` is `"Data"` or, in some bodies, missing).
//! * `SectionSummary`: the `Summary` of a section that has a `Header` or `Rows`: the subtotal of
//!   what the section holds ("Total Income", "Total for Checking").
//! * `Total`: the `Summary` of a section with neither `Header` nor `Rows`: a line QuickBooks
//!   computes from other sections (`GrossProfit`, `NetOperatingIncome`, `NetIncome`,
//!   `CashIncrease`, `EndingCash`) or the whole report (`GrandTotal`, "TOTAL").
//! * `SectionHeader`: a value printed on a section's header line beyond its label (rare; kept so
//!   that no value is dropped).
//!
//! # Truncation
//! QuickBooks does not refuse a too-large report with an error status or a `Fault`: it answers
//! HTTP 200 with a report cut short whose rows hold a Data row reading "Unable to display more
//! data. Please reduce the date range." (see `tests/fixtures/reports/PROVENANCE.md` for the
//! public sources). [`is_range_too_large`] looks for that notice everywhere in the body.

mod amount;
#[cfg(test)]
mod fixture_tests;

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;
use serde::{Deserialize, Deserializer};

pub use amount::{Amount, AmountError, MAX_DIGITS};

/// The notice QuickBooks puts in a truncated report's rows (matched without regard to case).
pub const RANGE_TOO_LARGE_NOTICE: &str = "Unable to display more data";

/// What can go wrong reading or flattening a report, or building its request.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The body is not a report in JSON.
    #[error("the report body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A cell of an amount column is not a decimal.
    #[error("row {line}, column {column} (`{title}`): {source}")]
    Amount {
        /// Document-order number of the row ([`ReportCell::line`]).
        line: usize,
        /// Leaf column index.
        column: usize,
        /// The column's title.
        title: String,
        /// What was wrong.
        source: AmountError,
    },
    /// A column's `StartDate`/`EndDate` metadata is not a `YYYY-MM-DD` date.
    #[error("column {column}: `{name}` = `{value}` is not a date")]
    ColumnDate {
        /// Leaf column index.
        column: usize,
        /// `StartDate` or `EndDate`.
        name: String,
        /// The text sent.
        value: String,
    },
    /// A sum of a section's rows does not fit an exact decimal.
    #[error("the sum of a section's rows overflows (row {line}, column {column})")]
    Overflow {
        /// Document-order number of the summary row.
        line: usize,
        /// Leaf column index.
        column: usize,
    },
    /// The request's start date is after its end date.
    #[error("the report range {start}..{end} is empty (start after end)")]
    EmptyRange {
        /// Requested start.
        start: Date,
        /// Requested end.
        end: Date,
    },
    /// An unknown report name, basis or summary option.
    #[error("unknown {what} `{value}`")]
    Unknown {
        /// What kind of value.
        what: &'static str,
        /// The text given.
        value: String,
    },
}

// ---------------------------------------------------------------------------------------------
// The body
// ---------------------------------------------------------------------------------------------

/// `null` and a missing field both become the type's default.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A report as QuickBooks returns it. Every part may be missing; missing parts are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Report {
    /// What was asked and when it was produced.
    #[serde(default, deserialize_with = "nullable")]
    pub header: ReportHeader,
    /// The columns, in `ColData` order (after flattening nested columns).
    #[serde(default, deserialize_with = "nullable")]
    pub columns: Columns,
    /// The rows.
    #[serde(default, deserialize_with = "nullable")]
    pub rows: Rows,
}

/// A report's `Header`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReportHeader {
    /// When the report was produced (`2020-09-29T08:14:02-07:00`), as sent.
    pub time: Option<String>,
    /// `ProfitAndLoss`, `AgedReceivables`, …
    pub report_name: Option<String>,
    /// The date macro QuickBooks used when no explicit dates were given.
    pub date_macro: Option<String>,
    /// `Accrual` or `Cash` (missing on aging reports).
    pub report_basis: Option<String>,
    /// First day covered (`YYYY-MM-DD`), as sent.
    pub start_period: Option<String>,
    /// Last day covered (`YYYY-MM-DD`), as sent.
    pub end_period: Option<String>,
    /// `Total`, `Month`, `Customers`, …
    pub summarize_columns_by: Option<String>,
    /// Currency code (`USD`).
    pub currency: Option<String>,
    /// Customer filter (comma-separated ids), if any.
    pub customer: Option<String>,
    /// Vendor filter, if any.
    pub vendor: Option<String>,
    /// Employee filter, if any.
    pub employee: Option<String>,
    /// Item filter, if any.
    pub item: Option<String>,
    /// Class filter, if any.
    pub class: Option<String>,
    /// Department filter, if any.
    pub department: Option<String>,
    /// `Option` name/value pairs (`NoReportData`, `AccountingStandard`, `report_date`, …).
    #[serde(default, deserialize_with = "nullable")]
    pub option: Vec<NameValue>,
}

impl ReportHeader {
    /// The value of the header option `name`, if sent.
    #[must_use]
    pub fn option(&self, name: &str) -> Option<&str> {
        self.option
            .iter()
            .find(|o| o.name == name)
            .and_then(|o| o.value.as_deref())
    }

    /// `NoReportData`: `Some(true)` when QuickBooks says the report holds no data.
    #[must_use]
    pub fn no_report_data(&self) -> Option<bool> {
        self.option("NoReportData")
            .map(|v| v.eq_ignore_ascii_case("true"))
    }

    /// `StartPeriod` as a date, if sent and valid.
    #[must_use]
    pub fn start_date(&self) -> Option<Date> {
        self.start_period.as_deref().and_then(|s| s.parse().ok())
    }

    /// `EndPeriod` as a date, if sent and valid.
    #[must_use]
    pub fn end_date(&self) -> Option<Date> {
        self.end_period.as_deref().and_then(|s| s.parse().ok())
    }
}

/// A `{"Name": …, "Value": …}` pair (header options, column metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NameValue {
    /// The name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// The value, if any.
    pub value: Option<String>,
}

/// `Columns`: the column list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Columns {
    /// The columns, possibly with nested sub-columns.
    #[serde(default, deserialize_with = "nullable")]
    pub column: Vec<Column>,
}

/// One column of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Column {
    /// Its title ("" for the label column, "Total", "Jan 2016", "Debit", …).
    #[serde(default, deserialize_with = "nullable")]
    pub col_title: String,
    /// `Account`, `Money`, `Customer`, `tx_date`, `subt_nat_amount`, …
    pub col_type: Option<String>,
    /// `ColKey`, `StartDate`, `EndDate`, …
    #[serde(default, deserialize_with = "nullable")]
    pub meta_data: Vec<NameValue>,
    /// Sub-columns, if this column groups others.
    pub columns: Option<Columns>,
}

impl Column {
    /// The metadata value `name`, if sent.
    #[must_use]
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.meta_data
            .iter()
            .find(|m| m.name == name)
            .and_then(|m| m.value.as_deref())
    }
}

/// `Rows`: a list of rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Rows {
    /// The rows, in order.
    #[serde(default, deserialize_with = "nullable")]
    pub row: Vec<Row>,
}

/// One row: a Data row (with `col_data`) or a Section (with `header`, `rows`, `summary`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Row {
    /// `"Data"`, `"Section"`, or missing.
    #[serde(rename = "type")]
    pub row_type: Option<String>,
    /// The report group (`Income`, `Expenses`, `GrossProfit`, `NetIncome`, `GrandTotal`, …).
    pub group: Option<String>,
    /// A Data row's cells.
    #[serde(rename = "ColData")]
    pub col_data: Option<Vec<ColData>>,
    /// A section's header line.
    #[serde(rename = "Header")]
    pub header: Option<Line>,
    /// A section's rows.
    #[serde(rename = "Rows")]
    pub rows: Option<Rows>,
    /// A section's summary line.
    #[serde(rename = "Summary")]
    pub summary: Option<Line>,
}

impl Row {
    /// Whether this is a Data row (it has `ColData`).
    #[must_use]
    pub fn is_data(&self) -> bool {
        self.col_data.is_some()
    }

    /// A section's own rows (empty for Data rows and row-less sections).
    #[must_use]
    pub fn children(&self) -> &[Row] {
        self.rows.as_ref().map_or(&[], |r| r.row.as_slice())
    }

    /// Whether this section holds anything of its own (a header or rows); a section without
    /// either is a computed total line.
    #[must_use]
    pub fn has_body(&self) -> bool {
        self.header.is_some() || !self.children().is_empty()
    }

    /// The section's label (first header cell), if any and not empty.
    #[must_use]
    pub fn label(&self) -> Option<&str> {
        self.header
            .as_ref()
            .and_then(|h| h.col_data.first())
            .map(|c| c.value.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// A `Header` or `Summary` line: its cells.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Line {
    /// The cells, one per leaf column.
    #[serde(rename = "ColData", default, deserialize_with = "nullable")]
    pub col_data: Vec<ColData>,
}

/// One cell: its text and, for names, the id of the account or entity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ColData {
    /// The text ("" when empty).
    #[serde(default, deserialize_with = "nullable")]
    pub value: String,
    /// The account/customer/vendor/transaction id, when the cell names one.
    pub id: Option<String>,
    /// A link, when sent.
    pub href: Option<String>,
}

impl ColData {
    /// The id, unless missing or empty (QuickBooks sends `"id": ""` for unnamed cells).
    #[must_use]
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref().filter(|s| !s.is_empty())
    }
}

/// Parses a report body.
///
/// # Errors
/// [`ReportError::Json`] when the body is not JSON or not shaped like a report.
pub fn parse_report(body: &[u8]) -> Result<Report, ReportError> {
    Ok(serde_json::from_slice(body)?)
}

// ---------------------------------------------------------------------------------------------
// Columns and cells
// ---------------------------------------------------------------------------------------------

/// A leaf column: what a `ColData` index means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafColumn {
    /// Position in `ColData`.
    pub index: usize,
    /// Title; a sub-column's title is prefixed with its parents' (`"Jan 2016 > % of Income"`).
    pub title: String,
    /// `ColType`, if sent.
    pub col_type: Option<String>,
    /// `ColKey` metadata, if sent.
    pub key: Option<String>,
    /// `StartDate` metadata (inherited from the parent column), if sent.
    pub start: Option<Date>,
    /// `EndDate` metadata (inherited from the parent column), if sent.
    pub end: Option<Date>,
}

impl LeafColumn {
    /// Whether the column holds amounts: `ColType` `Money` or `Rate`, or a detail-report amount
    /// type (`subt_nat_amount`, `rbal_nat_amount`, `debt_amt`, `nat_open_bal`, …).
    #[must_use]
    pub fn is_amount(&self) -> bool {
        let Some(t) = self.col_type.as_deref() else {
            return false;
        };
        let t = t.to_ascii_lowercase();
        matches!(t.as_str(), "money" | "rate" | "amount")
            || t.ends_with("_amount")
            || t.ends_with("_amt")
            || t.ends_with("_bal")
    }
}

impl Report {
    /// The leaf columns in `ColData` order.
    ///
    /// # Errors
    /// [`ReportError::ColumnDate`] when a `StartDate`/`EndDate` is not a date.
    pub fn leaf_columns(&self) -> Result<Vec<LeafColumn>, ReportError> {
        let mut out = Vec::new();
        push_leaves(&self.columns.column, "", None, None, &mut out)?;
        Ok(out)
    }
}

fn meta_date(col: &Column, name: &str, index: usize) -> Result<Option<Date>, ReportError> {
    match col.meta(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ReportError::ColumnDate {
            column: index,
            name: name.to_owned(),
            value: v.to_owned(),
        }),
    }
}

fn push_leaves(
    cols: &[Column],
    prefix: &str,
    start: Option<Date>,
    end: Option<Date>,
    out: &mut Vec<LeafColumn>,
) -> Result<(), ReportError> {
    for col in cols {
        let index = out.len();
        let title = match (prefix.is_empty(), col.col_title.is_empty()) {
            (true, _) => col.col_title.clone(),
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix} > {}", col.col_title),
        };
        let start = meta_date(col, "StartDate", index)?.or(start);
        let end = meta_date(col, "EndDate", index)?.or(end);
        match col.columns.as_ref().filter(|c| !c.column.is_empty()) {
            Some(sub) => push_leaves(&sub.column, &title, start, end, out)?,
            None => out.push(LeafColumn {
                index,
                title,
                col_type: col.col_type.clone(),
                key: col.meta("ColKey").map(str::to_owned),
                start,
                end,
            }),
        }
    }
    Ok(())
}

/// What kind of line a cell comes from (see the module docs for the exact mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum RowKind {
    /// A Data row.
    Data,
    /// The summary of a section with a header or rows.
    SectionSummary,
    /// The summary of a section with neither: a computed or grand total.
    Total,
    /// A value on a section's header line beyond its label.
    SectionHeader,
}

impl RowKind {
    /// `data`, `section_summary`, `total`, `section_header`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::SectionSummary => "section_summary",
            Self::Total => "total",
            Self::SectionHeader => "section_header",
        }
    }
}

/// One non-empty cell of a report, with everything needed to store it as a row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportCell {
    /// Document-order number of the source line (rows, headers and summaries counted as met),
    /// shared by every cell of that line.
    pub line: usize,
    /// Labels of the enclosing sections, outermost first (`["Income", "Sales"]`). A summary's
    /// path includes the section it summarises; a computed total's does not.
    pub section_path: Vec<String>,
    /// Id on the innermost enclosing section's header (the account, in a General Ledger).
    pub section_id: Option<String>,
    /// The row's `group`, or for a Data row without one, its section's.
    pub group: Option<String>,
    /// What kind of line this is.
    pub row_kind: RowKind,
    /// Id in the line's first cell (account, customer, vendor), if any.
    pub account_or_entity_id: Option<String>,
    /// Text of the line's first cell ("Sales", "Total Income", "Beginning Balance"), if any.
    pub name: Option<String>,
    /// Leaf column index (≥ 1; column 0 is the label, carried in `name`).
    pub column_index: usize,
    /// Leaf column title ("Total", "Debit", "1 - 30", …; "" if the body had fewer columns).
    pub column_title: String,
    /// `ColType` of the column.
    pub column_type: Option<String>,
    /// `ColKey` of the column.
    pub column_key: Option<String>,
    /// The column's `StartDate`; `None` means the report's own period applies.
    pub period_start: Option<Date>,
    /// The column's `EndDate`; `None` means the report's own period applies.
    pub period_end: Option<Date>,
    /// The cell's text, as sent.
    pub text: String,
    /// The cell's own id (a GL's transaction, name or split account), if any.
    pub cell_id: Option<String>,
    /// The amount, for amount columns ([`LeafColumn::is_amount`]); `None` for text columns.
    pub value: Option<Amount>,
}

impl ReportCell {
    /// The section path joined with `" > "` (`"Income > Sales"`).
    #[must_use]
    pub fn section_label(&self) -> String {
        self.section_path.join(" > ")
    }
}

/// A summary line of the report, with its amounts per column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportTotal {
    /// Document-order number of the summary line.
    pub line: usize,
    /// As [`ReportCell::section_path`].
    pub section_path: Vec<String>,
    /// The section's `group`.
    pub group: Option<String>,
    /// `SectionSummary` or `Total`.
    pub kind: RowKind,
    /// The summary's label ("Total Income", "TOTAL").
    pub label: Option<String>,
    /// `(leaf column index, amount)` for every non-empty amount cell.
    pub values: Vec<(usize, Amount)>,
}

/// A summary that its rows do not add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotalMismatch {
    /// Document-order number of the summary line.
    pub line: usize,
    /// The section's `group`.
    pub group: Option<String>,
    /// The summary's label.
    pub label: Option<String>,
    /// Leaf column index.
    pub column: usize,
    /// What the report says.
    pub reported: Amount,
    /// What its rows add up to.
    pub computed: Amount,
}

/// Walk state: the path and id of the enclosing sections and the line counter.
struct Walk<'a> {
    columns: &'a [LeafColumn],
    line: usize,
    path: Vec<String>,
    ids: Vec<Option<String>>,
    cells: Vec<ReportCell>,
    totals: Vec<ReportTotal>,
}

impl Walk<'_> {
    /// Emits the cells of one line and returns its amounts.
    fn line(
        &mut self,
        data: &[ColData],
        kind: RowKind,
        group: Option<&str>,
    ) -> Result<Vec<(usize, Amount)>, ReportError> {
        let line = self.line;
        self.line += 1;
        let first = data.first();
        let mut amounts = Vec::new();
        for (i, cell) in data.iter().enumerate().skip(1) {
            if cell.value.is_empty() {
                continue;
            }
            let col = self.columns.get(i);
            let value = match col {
                Some(c) if c.is_amount() => {
                    let v: Amount = cell.value.parse().map_err(|source| ReportError::Amount {
                        line,
                        column: i,
                        title: c.title.clone(),
                        source,
                    })?;
                    amounts.push((i, v.clone()));
                    Some(v)
                }
                _ => None,
            };
            self.cells.push(ReportCell {
                line,
                section_path: self.path.clone(),
                section_id: self.ids.last().cloned().flatten(),
                group: group.map(str::to_owned),
                row_kind: kind,
                account_or_entity_id: first.and_then(ColData::id).map(str::to_owned),
                name: first.map(|c| c.value.clone()).filter(|v| !v.is_empty()),
                column_index: i,
                column_title: col.map(|c| c.title.clone()).unwrap_or_default(),
                column_type: col.and_then(|c| c.col_type.clone()),
                column_key: col.and_then(|c| c.key.clone()),
                period_start: col.and_then(|c| c.start),
                period_end: col.and_then(|c| c.end),
                text: cell.value.clone(),
                cell_id: cell.id().map(str::to_owned),
                value,
            });
        }
        Ok(amounts)
    }

    fn rows(&mut self, rows: &[Row], parent_group: Option<&str>) -> Result<(), ReportError> {
        for row in rows {
            if let Some(data) = &row.col_data {
                let group = row.group.as_deref().or(parent_group);
                self.line(data, RowKind::Data, group)?;
                continue;
            }
            let group = row.group.as_deref();
            let body = row.has_body();
            if body {
                self.path.push(row.label().unwrap_or_default().to_owned());
                self.ids.push(
                    row.header
                        .as_ref()
                        .and_then(|h| h.col_data.first())
                        .and_then(ColData::id)
                        .map(str::to_owned),
                );
            }
            if let Some(h) = &row.header {
                self.line(&h.col_data, RowKind::SectionHeader, group)?;
            }
            self.rows(row.children(), group.or(parent_group))?;
            if let Some(s) = &row.summary {
                let kind = if body {
                    RowKind::SectionSummary
                } else {
                    RowKind::Total
                };
                let line = self.line;
                let values = self.line(&s.col_data, kind, group)?;
                self.totals.push(ReportTotal {
                    line,
                    section_path: self.path.clone(),
                    group: group.map(str::to_owned),
                    kind,
                    label: s
                        .col_data
                        .first()
                        .map(|c| c.value.clone())
                        .filter(|v| !v.is_empty()),
                    values,
                });
            }
            if body {
                self.path.pop();
                self.ids.pop();
            }
        }
        Ok(())
    }
}

impl Report {
    fn run_walk(
        &self,
        columns: &[LeafColumn],
    ) -> Result<(Vec<ReportCell>, Vec<ReportTotal>), ReportError> {
        let mut walk = Walk {
            columns,
            line: 0,
            path: Vec::new(),
            ids: Vec::new(),
            cells: Vec::new(),
            totals: Vec::new(),
        };
        walk.rows(&self.rows.row, None)?;
        Ok((walk.cells, walk.totals))
    }

    /// Every non-empty cell beyond each line's label, in document order.
    ///
    /// # Errors
    /// A non-decimal value in an amount column, or a bad column date.
    pub fn cells(&self) -> Result<Vec<ReportCell>, ReportError> {
        let columns = self.leaf_columns()?;
        Ok(self.run_walk(&columns)?.0)
    }

    /// The report's own summary lines (section subtotals and computed totals), in order.
    ///
    /// # Errors
    /// As [`Report::cells`].
    pub fn totals(&self) -> Result<Vec<ReportTotal>, ReportError> {
        let columns = self.leaf_columns()?;
        Ok(self.run_walk(&columns)?.1)
    }

    /// The summaries whose rows do not add up to them. Checked, per amount column where the
    /// summary has a value:
    /// * a section with rows: its summary equals the sum of its direct Data rows and, for each
    ///   child section, that section's summary (or, when it has none, the sum of its own rows);
    /// * a `GrandTotal` line (trial balance, aging reports): it equals the sum of the Data rows
    ///   and section summaries beside it.
    ///
    /// Computed totals such as `GrossProfit` or `NetIncome` are differences of sections and are
    /// not checked here. An empty cell counts as zero.
    ///
    /// # Errors
    /// As [`Report::cells`], or [`ReportError::Overflow`].
    pub fn total_mismatches(&self) -> Result<Vec<TotalMismatch>, ReportError> {
        let columns = self.leaf_columns()?;
        let amount_cols: Vec<usize> = columns
            .iter()
            .filter(|c| c.is_amount())
            .map(|c| c.index)
            .collect();
        let mut out = Vec::new();
        let mut line = 0;
        sum_rows(&self.rows.row, &amount_cols, &mut line, &mut out)?;
        Ok(out)
    }
}

/// The amount in `data[col]`, empty counting as `None`.
fn amount_at(data: &[ColData], col: usize) -> Result<Option<Amount>, AmountError> {
    match data.get(col).map(|c| c.value.as_str()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse().map(Some),
    }
}

fn add(a: &Amount, b: &Amount, line: usize, column: usize) -> Result<Amount, ReportError> {
    a.checked_add(b)
        .ok_or(ReportError::Overflow { line, column })
}

/// Sums `rows` per amount column (same line numbering as the walk), recording mismatches.
fn sum_rows(
    rows: &[Row],
    cols: &[usize],
    line: &mut usize,
    out: &mut Vec<TotalMismatch>,
) -> Result<Vec<Amount>, ReportError> {
    let amount_err = |line: usize, column: usize, source| ReportError::Amount {
        line,
        column,
        title: String::new(),
        source,
    };
    let mut sums = vec![Amount::zero(); cols.len()];
    for row in rows {
        if let Some(data) = &row.col_data {
            for (k, &c) in cols.iter().enumerate() {
                if let Some(v) = amount_at(data, c).map_err(|e| amount_err(*line, c, e))? {
                    sums[k] = add(&sums[k], &v, *line, c)?;
                }
            }
            *line += 1;
            continue;
        }
        if row.header.is_some() {
            *line += 1;
        }
        let inner = sum_rows(row.children(), cols, line, out)?;
        let Some(summary) = &row.summary else {
            for (k, v) in inner.iter().enumerate() {
                sums[k] = add(&sums[k], v, *line, cols[k])?;
            }
            continue;
        };
        let here = *line;
        *line += 1;
        let label = summary
            .col_data
            .first()
            .map(|c| c.value.clone())
            .filter(|v| !v.is_empty());
        let grand = !row.has_body() && row.group.as_deref() == Some("GrandTotal");
        for (k, &c) in cols.iter().enumerate() {
            let reported = amount_at(&summary.col_data, c).map_err(|e| amount_err(here, c, e))?;
            let computed = if row.has_body() {
                Some(&inner[k])
            } else if grand {
                Some(&sums[k])
            } else {
                None
            };
            if let (Some(reported), Some(computed)) = (&reported, computed)
                && reported != computed
            {
                out.push(TotalMismatch {
                    line: here,
                    group: row.group.clone(),
                    label: label.clone(),
                    column: c,
                    reported: reported.clone(),
                    computed: computed.clone(),
                });
            }
        }
        if row.has_body() {
            for (k, &c) in cols.iter().enumerate() {
                let part = amount_at(&summary.col_data, c)
                    .map_err(|e| amount_err(here, c, e))?
                    .unwrap_or_else(|| inner[k].clone());
                sums[k] = add(&sums[k], &part, here, c)?;
            }
        }
    }
    Ok(sums)
}

// ---------------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------------

fn has_notice(text: &str) -> bool {
    text.to_ascii_lowercase()
        .contains(&RANGE_TOO_LARGE_NOTICE.to_ascii_lowercase())
}

fn rows_have_notice(rows: &[Row]) -> bool {
    rows.iter().any(|r| {
        let lines = [
            r.col_data.as_deref(),
            r.header.as_ref().map(|h| h.col_data.as_slice()),
            r.summary.as_ref().map(|s| s.col_data.as_slice()),
        ];
        lines
            .iter()
            .flatten()
            .any(|cells| cells.iter().any(|c| has_notice(&c.value)))
            || rows_have_notice(r.children())
    })
}

/// Whether QuickBooks cut this report short because its range was too large: the notice
/// [`RANGE_TOO_LARGE_NOTICE`] in any cell at any depth, or in a header option. Such a report
/// must be read again in smaller windows, never stored as complete.
#[must_use]
pub fn is_range_too_large(report: &Report) -> bool {
    report
        .header
        .option
        .iter()
        .any(|o| o.value.as_deref().is_some_and(has_notice))
        || rows_have_notice(&report.rows.row)
}

/// The same test on raw bytes (works even when the body does not parse).
#[must_use]
pub fn body_signals_range_too_large(body: &[u8]) -> bool {
    let needle = RANGE_TOO_LARGE_NOTICE.as_bytes();
    body.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

// ---------------------------------------------------------------------------------------------
// The answer
// ---------------------------------------------------------------------------------------------

/// A report as fetched: parsed, with the exact bytes QuickBooks sent (to store as returned).
#[derive(Debug, Clone)]
pub struct FetchedReport {
    /// The parsed body.
    pub report: Report,
    /// The body, byte for byte.
    pub raw: bytes::Bytes,
    /// The `intuit_tid` response header.
    pub intuit_tid: Option<String>,
}

/// Why [`crate::QboClient::fetch_report`] returned no usable report.
#[derive(Debug, thiserror::Error)]
pub enum ReportFetchError {
    /// The request failed (after the client's retries) or the body was not a report.
    #[error(transparent)]
    Qbo(#[from] crate::QboError),
    /// QuickBooks answered, but cut the report short: ask again for smaller windows
    /// ([`ReportRequest::halves`]). Nothing of this answer may be stored as complete.
    #[error(
        "QuickBooks truncated the {} report for {}..={} (\"{RANGE_TOO_LARGE_NOTICE}\"): read it in smaller windows",
        request.name, request.start_date, request.end_date
    )]
    RangeTooLarge {
        /// The request that was too large.
        request: ReportRequest,
        /// The truncated answer, for the record.
        fetched: Box<FetchedReport>,
    },
}

/// Turns a whole answer to a report request into the report or a classified error: non-2xx
/// statuses, XML/HTML bodies and JSON `Fault`s are classified like any other answer; a 2xx
/// body that is not JSON (or is cut short) is a retryable decode error.
pub(crate) fn interpret_report_response(
    meta: &crate::response::ResponseMeta,
    body: &[u8],
) -> Result<FetchedReport, crate::QboError> {
    use crate::response::{classify_error, parse_error_body};
    if !(200..300).contains(&meta.status) || body.trim_ascii_start().first() == Some(&b'<') {
        let parsed = parse_error_body(body);
        if (200..300).contains(&meta.status) && parsed.fault.is_none() {
            return Err(crate::QboError::Decode {
                status: meta.status,
                message: format!(
                    "expected a JSON report, got {}",
                    parsed.summary.unwrap_or_else(|| "markup".to_owned())
                ),
                retryable: true,
                intuit_tid: meta.intuit_tid.clone(),
            });
        }
        return Err(classify_error(meta, &parsed));
    }
    let report: Report = serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        crate::QboError::Decode {
            status: meta.status,
            message: crate::redact::redact(&format!("the report body is not valid JSON: {e}")),
            retryable: matches!(
                e.classify(),
                Category::Eof | Category::Syntax | Category::Io
            ),
            intuit_tid: meta.intuit_tid.clone(),
        }
    })?;
    if report.header.report_name.is_none() {
        let parsed = parse_error_body(body);
        if parsed.fault.is_some() {
            return Err(classify_error(meta, &parsed));
        }
        return Err(crate::QboError::Decode {
            status: meta.status,
            message: "the answer has no Header.ReportName: not a report".to_owned(),
            retryable: false,
            intuit_tid: meta.intuit_tid.clone(),
        });
    }
    Ok(FetchedReport {
        report,
        raw: bytes::Bytes::copy_from_slice(body),
        intuit_tid: meta.intuit_tid.clone(),
    })
}

// ---------------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------------

/// The reports this crate loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReportName {
    /// `ProfitAndLoss`.
    ProfitAndLoss,
    /// `BalanceSheet`.
    BalanceSheet,
    /// `TrialBalance`.
    TrialBalance,
    /// `GeneralLedger`.
    GeneralLedger,
    /// `CashFlow`.
    CashFlow,
    /// `AgedReceivables` (A/R aging summary, as of a date).
    AgedReceivables,
    /// `AgedPayables` (A/P aging summary, as of a date).
    AgedPayables,
}

impl ReportName {
    /// All seven, in a stable order.
    pub const ALL: [Self; 7] = [
        Self::ProfitAndLoss,
        Self::BalanceSheet,
        Self::TrialBalance,
        Self::GeneralLedger,
        Self::CashFlow,
        Self::AgedReceivables,
        Self::AgedPayables,
    ];

    /// The endpoint name (`reports/{name}`), which is also `Header.ReportName`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProfitAndLoss => "ProfitAndLoss",
            Self::BalanceSheet => "BalanceSheet",
            Self::TrialBalance => "TrialBalance",
            Self::GeneralLedger => "GeneralLedger",
            Self::CashFlow => "CashFlow",
            Self::AgedReceivables => "AgedReceivables",
            Self::AgedPayables => "AgedPayables",
        }
    }

    /// Whether the report is a snapshot as of one date (`report_date`) rather than a range.
    #[must_use]
    pub fn is_as_of(self) -> bool {
        matches!(self, Self::AgedReceivables | Self::AgedPayables)
    }
}

impl fmt::Display for ReportName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ReportName {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ReportError::Unknown {
                what: "report name",
                value: s.to_owned(),
            })
    }
}

/// `accounting_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Basis {
    /// `Accrual`.
    Accrual,
    /// `Cash`.
    Cash,
}

impl Basis {
    /// `Accrual` or `Cash`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accrual => "Accrual",
            Self::Cash => "Cash",
        }
    }
}

impl FromStr for Basis {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "accrual" => Ok(Self::Accrual),
            "cash" => Ok(Self::Cash),
            _ => Err(ReportError::Unknown {
                what: "accounting method",
                value: s.to_owned(),
            }),
        }
    }
}

/// `summarize_column_by` (the values Intuit's reference lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SummarizeBy {
    /// One `Total` column.
    Total,
    /// One column per month.
    Month,
    /// One column per week.
    Week,
    /// One column per day.
    Days,
    /// One column per quarter.
    Quarter,
    /// One column per year.
    Year,
    /// One column per customer.
    Customers,
    /// One column per vendor.
    Vendors,
    /// One column per class.
    Classes,
    /// One column per department.
    Departments,
    /// One column per employee.
    Employees,
    /// One column per product or service.
    ProductsAndServices,
}

impl SummarizeBy {
    const ALL: [Self; 12] = [
        Self::Total,
        Self::Month,
        Self::Week,
        Self::Days,
        Self::Quarter,
        Self::Year,
        Self::Customers,
        Self::Vendors,
        Self::Classes,
        Self::Departments,
        Self::Employees,
        Self::ProductsAndServices,
    ];

    /// The query value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Total => "Total",
            Self::Month => "Month",
            Self::Week => "Week",
            Self::Days => "Days",
            Self::Quarter => "Quarter",
            Self::Year => "Year",
            Self::Customers => "Customers",
            Self::Vendors => "Vendors",
            Self::Classes => "Classes",
            Self::Departments => "Departments",
            Self::Employees => "Employees",
            Self::ProductsAndServices => "ProductsAndServices",
        }
    }
}

impl FromStr for SummarizeBy {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ReportError::Unknown {
                what: "summarize_column_by",
                value: s.to_owned(),
            })
    }
}

/// One report to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRequest {
    /// Which report.
    pub name: ReportName,
    /// First day (inclusive). Not sent for the aging reports.
    pub start_date: Date,
    /// Last day (inclusive); the `report_date` of the aging reports.
    pub end_date: Date,
    /// `accounting_method`; QuickBooks' company default when `None`.
    pub accounting_method: Option<Basis>,
    /// `summarize_column_by`; `Total` when `None`.
    pub summarize_column_by: Option<SummarizeBy>,
}

impl ReportRequest {
    /// A request for `name` over `start..=end`.
    ///
    /// # Errors
    /// [`ReportError::EmptyRange`] when `start > end`.
    pub fn new(name: ReportName, start: Date, end: Date) -> Result<Self, ReportError> {
        if start > end {
            return Err(ReportError::EmptyRange { start, end });
        }
        Ok(Self {
            name,
            start_date: start,
            end_date: end,
            accounting_method: None,
            summarize_column_by: None,
        })
    }

    /// With `accounting_method`.
    #[must_use]
    pub fn basis(mut self, basis: Basis) -> Self {
        self.accounting_method = Some(basis);
        self
    }

    /// With `summarize_column_by`.
    #[must_use]
    pub fn summarize_by(mut self, by: SummarizeBy) -> Self {
        self.summarize_column_by = Some(by);
        self
    }

    /// The path below the API base: `v3/company/{realm}/reports/{Name}` (the realm is
    /// percent-encoded by the caller's URL builder; this form is for logs and the simulator).
    #[must_use]
    pub fn path(&self, realm_id: &str) -> String {
        format!("v3/company/{realm_id}/reports/{}", self.name)
    }

    /// The query parameters, in a stable order: `start_date`/`end_date` (or `report_date` for
    /// the aging reports), `accounting_method`, `summarize_column_by`, `minorversion`.
    #[must_use]
    pub fn query_pairs(&self, minor_version: u32) -> Vec<(&'static str, String)> {
        let mut q = Vec::with_capacity(5);
        if self.name.is_as_of() {
            q.push(("report_date", self.end_date.to_string()));
        } else {
            q.push(("start_date", self.start_date.to_string()));
            q.push(("end_date", self.end_date.to_string()));
        }
        if let Some(b) = self.accounting_method {
            q.push(("accounting_method", b.as_str().to_owned()));
        }
        if let Some(s) = self.summarize_column_by {
            q.push(("summarize_column_by", s.as_str().to_owned()));
        }
        q.push(("minorversion", minor_version.to_string()));
        q
    }

    /// The query string (`start_date=…&end_date=…&minorversion=75`); values are dates and
    /// fixed words, so nothing needs escaping.
    #[must_use]
    pub fn query_string(&self, minor_version: u32) -> String {
        self.query_pairs(minor_version)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The two halves of the range (`start..=mid`, `mid+1..=end`) to ask for instead when
    /// QuickBooks truncated this one; `None` for a single day or an as-of (aging) report, which
    /// cannot be split by date.
    #[must_use]
    pub fn halves(&self) -> Option<(Self, Self)> {
        if self.name.is_as_of() || self.start_date >= self.end_date {
            return None;
        }
        let days = self.start_date.until(self.end_date).ok()?.get_days();
        let mid = self
            .start_date
            .checked_add(jiff::Span::new().days(days / 2))
            .ok()?;
        let next = mid.tomorrow().ok()?;
        Some((
            Self {
                end_date: mid,
                ..self.clone()
            },
            Self {
                start_date: next,
                ..self.clone()
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Date {
        s.parse().expect("date")
    }

    #[test]
    fn request_builds_path_and_query() {
        let r = ReportRequest::new(
            ReportName::ProfitAndLoss,
            date("2024-01-01"),
            date("2024-06-30"),
        )
        .expect("range")
        .basis(Basis::Cash)
        .summarize_by(SummarizeBy::Month);
        assert_eq!(r.path("123"), "v3/company/123/reports/ProfitAndLoss");
        assert_eq!(
            r.query_string(75),
            "start_date=2024-01-01&end_date=2024-06-30&accounting_method=Cash&summarize_column_by=Month&minorversion=75"
        );
        let aged = ReportRequest::new(
            ReportName::AgedReceivables,
            date("2024-01-01"),
            date("2024-06-30"),
        )
        .expect("range");
        assert_eq!(
            aged.query_string(75),
            "report_date=2024-06-30&minorversion=75"
        );
        assert!(aged.halves().is_none());
        assert!(matches!(
            ReportRequest::new(ReportName::CashFlow, date("2024-02-01"), date("2024-01-01")),
            Err(ReportError::EmptyRange { .. })
        ));
    }

    #[test]
    fn names_round_trip() {
        for n in ReportName::ALL {
            assert_eq!(n.as_str().parse::<ReportName>().expect("name"), n);
        }
        assert!("ProfitAndLossDetail".parse::<ReportName>().is_err());
        assert_eq!("cash".parse::<Basis>().expect("basis"), Basis::Cash);
        assert_eq!(
            "month".parse::<SummarizeBy>().expect("by"),
            SummarizeBy::Month
        );
    }

    #[test]
    fn halves_cover_the_range_without_overlap() {
        let r = ReportRequest::new(
            ReportName::GeneralLedger,
            date("2024-01-01"),
            date("2024-01-31"),
        )
        .expect("range");
        let (a, b) = r.halves().expect("split");
        assert_eq!(
            (a.start_date, a.end_date),
            (date("2024-01-01"), date("2024-01-16"))
        );
        assert_eq!(
            (b.start_date, b.end_date),
            (date("2024-01-17"), date("2024-01-31"))
        );
        let two = ReportRequest::new(
            ReportName::GeneralLedger,
            date("2024-01-01"),
            date("2024-01-02"),
        )
        .expect("range");
        let (a, b) = two.halves().expect("split");
        assert_eq!(
            (a.start_date, a.end_date),
            (date("2024-01-01"), date("2024-01-01"))
        );
        assert_eq!(
            (b.start_date, b.end_date),
            (date("2024-01-02"), date("2024-01-02"))
        );
        let one = ReportRequest::new(
            ReportName::GeneralLedger,
            date("2024-01-01"),
            date("2024-01-01"),
        )
        .expect("range");
        assert!(one.halves().is_none());
    }

    /// Test data written for this test (a monthly P&L layout with nested columns), not a
    /// QuickBooks body.
    const MONTHLY: &str = r#"{
      "Header": {"ReportName": "ProfitAndLoss", "SummarizeColumnsBy": "Month"},
      "Columns": {"Column": [
        {"ColTitle": "", "ColType": "Account", "MetaData": [{"Name": "ColKey", "Value": "account"}]},
        {"ColTitle": "Jan 2024", "ColType": "Money", "MetaData": [
          {"Name": "StartDate", "Value": "2024-01-01"}, {"Name": "EndDate", "Value": "2024-01-31"},
          {"Name": "ColKey", "Value": "Jan 2024"}]},
        {"ColTitle": "Feb 2024", "MetaData": [
          {"Name": "StartDate", "Value": "2024-02-01"}, {"Name": "EndDate", "Value": "2024-02-29"}],
         "Columns": {"Column": [{"ColTitle": "", "ColType": "Money"}, {"ColTitle": "%", "ColType": "Rate"}]}}
      ]},
      "Rows": {"Row": [
        {"type": "Section", "group": "Income",
         "Header": {"ColData": [{"value": "Income"}, {"value": ""}, {"value": ""}, {"value": ""}]},
         "Rows": {"Row": [
           {"type": "Data", "ColData": [{"value": "Sales", "id": "6"}, {"value": "10.50"}, {"value": "2"}, {"value": "100.00"}]},
           {"type": "Section",
            "Header": {"ColData": [{"value": "Services", "id": "7"}, {"value": ""}, {"value": ""}, {"value": ""}]},
            "Rows": {"Row": [{"type": "Data", "ColData": [{"value": "Design", "id": "8"}, {"value": "1"}, {"value": ""}, {"value": ""}]}]},
            "Summary": {"ColData": [{"value": "Total Services"}, {"value": "1.00"}, {"value": ""}, {"value": ""}]}}
         ]},
         "Summary": {"ColData": [{"value": "Total Income"}, {"value": "11.50"}, {"value": "2.00"}, {"value": "100.00"}]}},
        {"type": "Section", "group": "NetIncome",
         "Summary": {"ColData": [{"value": "Net Income"}, {"value": "11.50"}, {"value": "2.00"}, {"value": ""}]}}
      ]}
    }"#;

    #[test]
    fn nested_columns_flatten_with_inherited_periods() {
        let r = parse_report(MONTHLY.as_bytes()).expect("parse");
        let cols = r.leaf_columns().expect("columns");
        let titles: Vec<_> = cols.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["", "Jan 2024", "Feb 2024", "Feb 2024 > %"]);
        assert_eq!(cols[2].start, Some(date("2024-02-01")));
        assert_eq!(cols[3].end, Some(date("2024-02-29")));
        assert_eq!(cols[1].key.as_deref(), Some("Jan 2024"));
        assert!(cols[3].is_amount() && !cols[0].is_amount());
    }

    #[test]
    fn cells_carry_paths_kinds_ids_and_periods() {
        let r = parse_report(MONTHLY.as_bytes()).expect("parse");
        let cells = r.cells().expect("cells");
        let design = cells
            .iter()
            .find(|c| c.name.as_deref() == Some("Design"))
            .expect("design");
        assert_eq!(design.section_label(), "Income > Services");
        assert_eq!(design.section_id.as_deref(), Some("7"));
        assert_eq!(design.account_or_entity_id.as_deref(), Some("8"));
        assert_eq!(design.group.as_deref(), Some("Income"));
        assert_eq!(design.row_kind, RowKind::Data);
        assert_eq!(design.period_start, Some(date("2024-01-01")));
        let total = cells
            .iter()
            .find(|c| c.name.as_deref() == Some("Total Income") && c.column_index == 3)
            .expect("total income");
        assert_eq!(total.row_kind, RowKind::SectionSummary);
        assert_eq!(total.section_label(), "Income");
        assert_eq!(total.value.as_ref().map(Amount::as_str), Some("100.00"));
        let net = cells
            .iter()
            .find(|c| c.name.as_deref() == Some("Net Income"))
            .expect("net");
        assert_eq!(net.row_kind, RowKind::Total);
        assert!(net.section_path.is_empty());
        // Empty strings make no cells: 3 + 1 data, 1 + 3 summaries, 2 net income.
        assert_eq!(cells.len(), 10);
        assert!(r.total_mismatches().expect("check").is_empty());
        let totals = r.totals().expect("totals");
        assert_eq!(totals.len(), 3);
        assert_eq!(totals[2].kind, RowKind::Total);
    }

    #[test]
    fn a_wrong_subtotal_and_a_bad_amount_are_reported() {
        let wrong = MONTHLY.replace(
            r#"{"value": "Total Services"}, {"value": "1.00"}"#,
            r#"{"value": "Total Services"}, {"value": "1.01"}"#,
        );
        let r = parse_report(wrong.as_bytes()).expect("parse");
        let m = r.total_mismatches().expect("check");
        // The Services summary is off by 0.01, and so (using the reported 1.01) is Income.
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(m[0].label.as_deref(), Some("Total Services"));
        assert_eq!(m[0].computed.as_str(), "1");
        let bad = MONTHLY.replace(r#"{"value": "10.50"}"#, r#"{"value": "10,50"}"#);
        let r = parse_report(bad.as_bytes()).expect("parse");
        assert!(matches!(
            r.cells(),
            Err(ReportError::Amount { column: 1, .. })
        ));
    }

    #[test]
    fn truncation_is_found_at_any_depth_and_in_raw_bytes() {
        let cut = MONTHLY.replace(
            r#"{"value": "Design", "id": "8"}"#,
            r#"{"value": "Unable to display more data. Please reduce the date range."}"#,
        );
        let r = parse_report(cut.as_bytes()).expect("parse");
        assert!(is_range_too_large(&r));
        assert!(body_signals_range_too_large(cut.as_bytes()));
        let ok = parse_report(MONTHLY.as_bytes()).expect("parse");
        assert!(!is_range_too_large(&ok));
        assert!(!body_signals_range_too_large(MONTHLY.as_bytes()));
    }

    #[test]
    fn answers_are_interpreted_like_queries() {
        let meta = |status| crate::response::ResponseMeta {
            status,
            intuit_tid: Some("1-tid".to_owned()),
            retry_after: None,
        };
        let ok = interpret_report_response(&meta(200), MONTHLY.as_bytes()).expect("report");
        assert_eq!(ok.raw.as_ref(), MONTHLY.as_bytes());
        assert_eq!(ok.intuit_tid.as_deref(), Some("1-tid"));
        let html = interpret_report_response(&meta(200), b"<html><title>Oops</title></html>")
            .expect_err("html");
        assert!(
            matches!(
                html,
                crate::QboError::Decode {
                    retryable: true,
                    ..
                }
            ),
            "{html}"
        );
        let cut = interpret_report_response(&meta(200), &MONTHLY.as_bytes()[..100])
            .expect_err("cut short");
        assert!(cut.is_retryable(), "{cut}");
        let fault = br#"{"Fault":{"Error":[{"Message":"x","Detail":"y","code":"4000"}],"type":"ValidationFault"},"time":"2020-09-29T08:14:02.000-07:00"}"#;
        for status in [200, 400] {
            let e = interpret_report_response(&meta(status), fault).expect_err("fault");
            assert!(!matches!(e, crate::QboError::Decode { .. }), "{e}");
        }
        let other = interpret_report_response(&meta(200), br#"{"QueryResponse":{}}"#)
            .expect_err("not a report");
        assert!(
            matches!(
                other,
                crate::QboError::Decode {
                    retryable: false,
                    ..
                }
            ),
            "{other}"
        );
    }

    #[test]
    fn missing_and_null_parts_are_empty() {
        for body in [
            "{}",
            r#"{"Header": null, "Columns": null, "Rows": null}"#,
            r#"{"Header": {"ReportName": "CashFlow"}, "Columns": {"Column": []}, "Rows": {}}"#,
        ] {
            let r = parse_report(body.as_bytes()).expect(body);
            assert!(r.cells().expect("cells").is_empty());
        }
        assert!(parse_report(b"<html>").is_err());
    }
}
