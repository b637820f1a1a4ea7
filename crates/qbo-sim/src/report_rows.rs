//! The building blocks of a report body in Intuit's shape: [`Cell`]s (`ColData` values, all
//! strings), [`Node`]s (Data rows, Sections with `Header` / `Rows` / `Summary`, and
//! Summary-only total lines), the `Columns` of a period report ([`Period`]), the `Header`, and
//! the "reduce the date range" truncation.

use serde_json::{Map, Value, json};

use crate::json::push_money;
use crate::time::{civil_from_days, days_from_civil, push_date};

/// The row QuickBooks puts where it cuts a report short (the client detects "Unable to
/// display more data").
pub(crate) const RANGE_NOTICE: &str = "Unable to display more data. Please reduce the date range.";

/// Month names of column titles (`Jan 2026`).
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One `ColData` entry.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    /// An amount in cents, written with two decimals.
    Money(i64),
    /// `""`.
    Blank,
    /// A text, with the `id` of what it names.
    Text(String, Option<u64>),
}

impl Cell {
    /// A text cell without id.
    pub(crate) fn text(s: impl Into<String>) -> Self {
        Cell::Text(s.into(), None)
    }

    /// Money, or blank when zero (how data rows show an empty amount).
    pub(crate) fn money_or_blank(cents: i64) -> Self {
        if cents == 0 {
            Cell::Blank
        } else {
            Cell::Money(cents)
        }
    }

    fn cents(&self) -> i64 {
        match self {
            Cell::Money(c) => *c,
            _ => 0,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Cell::Money(c) => json!({ "value": money(*c) }),
            Cell::Blank => json!({ "value": "" }),
            Cell::Text(s, None) => json!({ "value": s }),
            Cell::Text(s, Some(id)) => json!({ "value": s, "id": id.to_string() }),
        }
    }
}

/// Cents as `1234.56` / `-3.50`.
pub(crate) fn money(cents: i64) -> String {
    let mut s = String::new();
    push_money(&mut s, cents);
    s
}

/// `YYYY-MM-DD` of a day number.
pub(crate) fn date(day: i64) -> String {
    let mut s = String::new();
    push_date(&mut s, day);
    s
}

/// A row of a report.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A Data row: its cells (the first is the label).
    Data {
        cells: Vec<Cell>,
        group: Option<&'static str>,
    },
    /// A section: header label, child rows, summary cells (the first is its label).
    Section {
        group: Option<&'static str>,
        header: Cell,
        children: Vec<Node>,
        summary: Vec<Cell>,
    },
    /// A Summary-only line (`GrossProfit`, `NetIncome`, `GrandTotal`).
    Total {
        group: &'static str,
        summary: Vec<Cell>,
    },
}

impl Node {
    /// A Data row labelled `label` (with `id`) and `values`.
    pub(crate) fn data(label: impl Into<String>, id: Option<u64>, values: Vec<Cell>) -> Self {
        let mut cells = vec![Cell::Text(label.into(), id)];
        cells.extend(values);
        Node::Data { cells, group: None }
    }

    /// A section whose summary (`Total …`) is the sum of its rows in every value column.
    pub(crate) fn section(
        group: Option<&'static str>,
        header: Cell,
        children: Vec<Node>,
        total_label: impl Into<String>,
        width: usize,
    ) -> Self {
        let sums = sum_rows(&children, width);
        let mut summary = vec![Cell::text(total_label)];
        summary.extend(sums.into_iter().map(Cell::Money));
        Node::Section {
            group,
            header,
            children,
            summary,
        }
    }

    /// A Summary-only total line.
    pub(crate) fn total(group: &'static str, label: &str, values: &[i64]) -> Self {
        let mut summary = vec![Cell::text(label)];
        summary.extend(values.iter().map(|&c| Cell::Money(c)));
        Node::Total { group, summary }
    }

    /// The row's amounts per value column (a section: its summary).
    pub(crate) fn sums(&self, width: usize) -> Vec<i64> {
        let cells = match self {
            Node::Data { cells, .. } => cells,
            Node::Section { summary, .. } | Node::Total { summary, .. } => summary,
        };
        (0..width)
            .map(|i| cells.get(i + 1).map_or(0, Cell::cents))
            .collect()
    }

    fn to_json(&self, width: usize) -> Value {
        let line = |cells: &[Cell]| json!({ "ColData": cells.iter().map(Cell::to_json).collect::<Vec<_>>() });
        let mut m = Map::new();
        let group = match self {
            Node::Data { cells, group } => {
                m.insert("ColData".into(), line(cells)["ColData"].clone());
                m.insert("type".into(), "Data".into());
                *group
            }
            Node::Section {
                group,
                header,
                children,
                summary,
            } => {
                let mut head = vec![header.clone()];
                head.extend(std::iter::repeat_n(Cell::Blank, width));
                m.insert("Header".into(), line(&head));
                let rows: Vec<Value> = children.iter().map(|c| c.to_json(width)).collect();
                m.insert("Rows".into(), json!({ "Row": rows }));
                m.insert("Summary".into(), line(summary));
                m.insert("type".into(), "Section".into());
                *group
            }
            Node::Total { group, summary } => {
                m.insert("Summary".into(), line(summary));
                m.insert("type".into(), "Section".into());
                Some(*group)
            }
        };
        if let Some(g) = group {
            m.insert("group".into(), g.into());
        }
        Value::Object(m)
    }
}

/// The sum of Data rows and section summaries per value column (what a section's summary
/// shows; Summary-only lines are not part of it).
pub(crate) fn sum_rows(rows: &[Node], width: usize) -> Vec<i64> {
    let mut sums = vec![0; width];
    for r in rows.iter().filter(|r| !matches!(r, Node::Total { .. })) {
        for (s, v) in sums.iter_mut().zip(r.sums(width)) {
            *s += v;
        }
    }
    sums
}

/// A value column of a period report: its title and its days (inclusive).
#[derive(Debug, Clone)]
pub(crate) struct Period {
    pub(crate) title: String,
    pub(crate) start: i64,
    pub(crate) end: i64,
    /// `ColKey`: `total` or the title.
    pub(crate) key: String,
}

/// The value columns of `[start, end]`: one `Total`, or one per calendar month (clipped to the
/// range) and then `Total` (`with_total`).
pub(crate) fn periods(start: i64, end: i64, by_month: bool, with_total: bool) -> Vec<Period> {
    let total = Period {
        title: "Total".to_owned(),
        start,
        end,
        key: "total".to_owned(),
    };
    if !by_month {
        return vec![total];
    }
    let mut out = Vec::new();
    let mut day = start;
    while day <= end {
        let (y, m, _) = civil_from_days(day);
        let next = if m == 12 {
            days_from_civil(y + 1, 1, 1)
        } else {
            days_from_civil(y, m + 1, 1)
        };
        let title = format!("{} {y}", MONTHS[(m as usize).saturating_sub(1) % 12]);
        out.push(Period {
            key: title.clone(),
            title,
            start: day,
            end: (next - 1).min(end),
        });
        day = next;
    }
    if with_total {
        out.push(total);
    }
    out
}

/// The first column (`Account`, `Customer`, `Vendor`) and the money columns of `periods`.
pub(crate) fn period_columns(first: &str, periods: &[Period], dated: bool) -> Value {
    let mut cols = vec![json!({
        "ColTitle": "", "ColType": first,
        "MetaData": [{ "Name": "ColKey", "Value": first.to_ascii_lowercase() }],
    })];
    for p in periods {
        let mut meta = Vec::new();
        if dated && p.key != "total" {
            meta.push(json!({ "Name": "StartDate", "Value": date(p.start) }));
            meta.push(json!({ "Name": "EndDate", "Value": date(p.end) }));
        }
        meta.push(json!({ "Name": "ColKey", "Value": p.key }));
        cols.push(json!({ "ColTitle": p.title, "ColType": "Money", "MetaData": meta }));
    }
    json!({ "Column": cols })
}

/// Plain columns: `(title, type)` each.
pub(crate) fn plain_columns(cols: &[(&str, &str)]) -> Value {
    let cols: Vec<Value> = cols
        .iter()
        .map(|(t, ty)| json!({ "ColTitle": t, "ColType": ty }))
        .collect();
    json!({ "Column": cols })
}

/// What a report's `Header` says besides the name.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderInfo {
    pub(crate) basis: Option<&'static str>,
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) summarize: Option<&'static str>,
    /// Aging reports: their `report_date` option.
    pub(crate) report_date: Option<i64>,
    pub(crate) no_data: bool,
}

/// The `Header` object.
pub(crate) fn header(name: &str, h: &HeaderInfo) -> Value {
    let mut m = Map::new();
    m.insert("Time".into(), crate::time::envelope_time().into());
    m.insert("ReportName".into(), name.into());
    if let Some(b) = h.basis {
        m.insert("ReportBasis".into(), b.into());
    }
    m.insert("StartPeriod".into(), date(h.start).into());
    m.insert("EndPeriod".into(), date(h.end).into());
    if let Some(s) = h.summarize {
        m.insert("SummarizeColumnsBy".into(), s.into());
    }
    m.insert("Currency".into(), "USD".into());
    let mut options = Vec::new();
    if let Some(d) = h.report_date {
        options.push(json!({ "Name": "report_date", "Value": date(d) }));
    }
    options.push(json!({ "Name": "NoReportData", "Value": h.no_data.to_string() }));
    m.insert("Option".into(), Value::Array(options));
    Value::Object(m)
}

/// The whole body: `Header`, `Columns`, `Rows`. `truncate`: keep the first half of the
/// top-level rows and end with the [`RANGE_NOTICE`] row, as QuickBooks does for a range it
/// will not display.
pub(crate) fn body(
    header: Value,
    columns: Value,
    rows: &[Node],
    width: usize,
    truncate: bool,
) -> String {
    let mut out: Vec<Value> = rows.iter().map(|r| r.to_json(width)).collect();
    if truncate {
        out.truncate(rows.len() / 2);
        let mut cells = vec![Cell::text(RANGE_NOTICE)];
        cells.extend(std::iter::repeat_n(Cell::Blank, width));
        out.push(Node::Data { cells, group: None }.to_json(width));
    }
    json!({ "Header": header, "Columns": columns, "Rows": { "Row": out } }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_clip_to_the_range() {
        let start = days_from_civil(2026, 1, 15);
        let end = days_from_civil(2026, 3, 3);
        let p = periods(start, end, true, true);
        let titles: Vec<&str> = p.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(titles, ["Jan 2026", "Feb 2026", "Mar 2026", "Total"]);
        assert_eq!(
            (p[0].start, p[0].end),
            (start, days_from_civil(2026, 1, 31))
        );
        assert_eq!((p[2].start, p[2].end), (days_from_civil(2026, 3, 1), end));
    }

    #[test]
    fn sections_sum_their_rows() {
        let rows = vec![
            Node::data("a", Some(1), vec![Cell::Money(150), Cell::Blank]),
            Node::data("b", None, vec![Cell::Money(-50), Cell::Money(7)]),
        ];
        let s = Node::section(
            Some("Income"),
            Cell::text("Income"),
            rows,
            "Total Income",
            2,
        );
        assert_eq!(s.sums(2), vec![100, 7]);
        let v = s.to_json(2);
        assert_eq!(v["Summary"]["ColData"][1]["value"], "1.00");
        assert_eq!(v["Rows"]["Row"][0]["ColData"][0]["id"], "1");
        assert_eq!(v["group"], "Income");
    }
}
