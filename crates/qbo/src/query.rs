//! The QBO query language as this client writes it: [`Query`] builds
//! `SELECT * | COUNT(*) FROM <Entity> WHERE … ORDERBY … STARTPOSITION n MAXRESULTS m`,
//! [`escape_literal`] escapes string literals the way QBO reads them, [`format_datetime`] writes
//! timestamps with an explicit offset, and [`TimeWindow`] is the half-open `CreateTime` range a
//! backfill pages through.
//!
//! URL encoding is not done here; the client percent-encodes the finished text.

use std::fmt;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::Entity;

/// Escapes a string for use inside a QBO `'…'` literal: a backslash goes before every `'` and
/// every `\`. Returns the content only, without the surrounding quotes.
#[must_use]
pub fn escape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '\'' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Formats a timestamp for a QBO filter: UTC with an explicit offset and whole seconds,
/// e.g. `2026-01-01T00:00:00+00:00` (sub-second parts are truncated toward the past).
#[must_use]
pub fn format_datetime(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

/// A half-open time range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeWindow {
    /// The first instant inside the window.
    pub start: Timestamp,
    /// The first instant after the window.
    pub end: Timestamp,
}

impl TimeWindow {
    /// The window `[start, end)`.
    #[must_use]
    pub const fn new(start: Timestamp, end: Timestamp) -> Self {
        Self { start, end }
    }

    /// Whether the window holds no instant at all (`start >= end`).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Whether `t` lies inside the window.
    #[must_use]
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {})",
            format_datetime(self.start),
            format_datetime(self.end)
        )
    }
}

/// A comparison operator of the QBO query language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `=`
    Eq,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
    /// `LIKE` (QBO supports only `%`).
    Like,
    /// `IN`, with a [`Literal::List`].
    In,
}

impl Operator {
    /// The operator as written in a query.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Lt => "<",
            Self::Gt => ">",
            Self::Le => "<=",
            Self::Ge => ">=",
            Self::Like => "LIKE",
            Self::In => "IN",
        }
    }
}

/// A value on the right-hand side of a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// A string, quoted and escaped with [`escape_literal`].
    Str(String),
    /// A timestamp, quoted and written with [`format_datetime`].
    DateTime(Timestamp),
    /// `true` / `false`.
    Bool(bool),
    /// An integer, unquoted.
    Int(i64),
    /// `(a, b, …)` for `IN`.
    List(Vec<Literal>),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => write!(f, "'{}'", escape_literal(s)),
            Self::DateTime(t) => write!(f, "'{}'", format_datetime(*t)),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::List(items) => {
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
        }
    }
}

impl From<&str> for Literal {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<String> for Literal {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<Timestamp> for Literal {
    fn from(t: Timestamp) -> Self {
        Self::DateTime(t)
    }
}

impl From<bool> for Literal {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for Literal {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

/// One `property op value` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    property: String,
    op: Operator,
    value: Literal,
}

/// The `CreateTime` property backfill windows filter on: it never changes, so an edited row
/// stays in its window (`LastUpdatedTime` would move it).
pub const CREATE_TIME: &str = "MetaData.CreateTime";

/// The `LastUpdatedTime` property incremental windows filter on: every edit moves a row to the
/// window of its edit.
pub const LAST_UPDATED_TIME: &str = "MetaData.LastUpdatedTime";

/// Which of an entity's timestamps a [`TimeWindow`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeField {
    /// `MetaData.CreateTime` (backfills).
    Created,
    /// `MetaData.LastUpdatedTime` (incremental syncs).
    LastUpdated,
}

impl TimeField {
    /// The QBO property name.
    #[must_use]
    pub const fn property(self) -> &'static str {
        match self {
            Self::Created => CREATE_TIME,
            Self::LastUpdated => LAST_UPDATED_TIME,
        }
    }
}

/// A QBO query under construction. `Display` gives the text to send.
///
/// List entities get `Active IN (true, false)` appended (a plain `SELECT` hides inactive rows)
/// unless [`Query::include_inactive`]`(false)` or a condition on `Active` says otherwise;
/// transactions never get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    entity: Entity,
    count: bool,
    conditions: Vec<Condition>,
    include_inactive: bool,
    order_by: Vec<String>,
    start_position: Option<u32>,
    max_results: Option<u32>,
}

impl Query {
    /// `SELECT * FROM <entity>`.
    #[must_use]
    pub fn select(entity: Entity) -> Self {
        Self {
            entity,
            count: false,
            conditions: Vec::new(),
            include_inactive: true,
            order_by: Vec::new(),
            start_position: None,
            max_results: None,
        }
    }

    /// `SELECT COUNT(*) FROM <entity>`.
    #[must_use]
    pub fn count(entity: Entity) -> Self {
        Self {
            count: true,
            ..Self::select(entity)
        }
    }

    /// The same filters as `self`, as a `COUNT(*)` query without ordering or paging.
    #[must_use]
    pub fn to_count(&self) -> Self {
        Self {
            count: true,
            order_by: Vec::new(),
            start_position: None,
            max_results: None,
            ..self.clone()
        }
    }

    /// The entity queried.
    #[must_use]
    pub const fn entity(&self) -> Entity {
        self.entity
    }

    /// Adds `property op value` (ANDed with the others). `property` is written verbatim, so it
    /// must be a QBO property name such as `MetaData.CreateTime`.
    #[must_use]
    pub fn filter(mut self, property: &str, op: Operator, value: impl Into<Literal>) -> Self {
        self.conditions.push(Condition {
            property: property.to_owned(),
            op,
            value: value.into(),
        });
        self
    }

    /// Restricts to rows created inside `window`:
    /// `MetaData.CreateTime >= start AND MetaData.CreateTime < end`.
    #[must_use]
    pub fn created_in(self, window: TimeWindow) -> Self {
        self.within(TimeField::Created, window)
    }

    /// Restricts to rows whose `field` lies inside `window`: `field >= start AND field < end`.
    #[must_use]
    pub fn within(self, field: TimeField, window: TimeWindow) -> Self {
        let property = field.property();
        self.filter(property, Operator::Ge, window.start)
            .filter(property, Operator::Lt, window.end)
    }

    /// Whether to add `Active IN (true, false)` for list entities (default `true`). Has no effect
    /// on transactions, which never get it.
    #[must_use]
    pub fn include_inactive(mut self, include: bool) -> Self {
        self.include_inactive = include;
        self
    }

    /// Adds an `ORDERBY` term, e.g. `"Id"` or `"TxnDate DESC"` (written verbatim).
    #[must_use]
    pub fn order_by(mut self, term: &str) -> Self {
        self.order_by.push(term.to_owned());
        self
    }

    /// `STARTPOSITION n` (1-based).
    #[must_use]
    pub fn start_position(mut self, n: u32) -> Self {
        self.start_position = Some(n);
        self
    }

    /// `MAXRESULTS m` (QBO allows at most 1000).
    #[must_use]
    pub fn max_results(mut self, m: u32) -> Self {
        self.max_results = Some(m);
        self
    }

    fn adds_active_clause(&self) -> bool {
        self.include_inactive
            && self.entity.is_list_entity()
            && !self
                .conditions
                .iter()
                .any(|c| c.property.eq_ignore_ascii_case("Active"))
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.count { "COUNT(*)" } else { "*" };
        write!(f, "SELECT {what} FROM {}", self.entity.qbo_name())?;
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { " WHERE " } else { " AND " };
            first = false;
            f.write_str(s)
        };
        for c in &self.conditions {
            sep(f)?;
            write!(f, "{} {} {}", c.property, c.op.as_str(), c.value)?;
        }
        if self.adds_active_clause() {
            sep(f)?;
            f.write_str("Active IN (true, false)")?;
        }
        if !self.order_by.is_empty() {
            write!(f, " ORDERBY {}", self.order_by.join(", "))?;
        }
        if let Some(n) = self.start_position {
            write!(f, " STARTPOSITION {n}")?;
        }
        if let Some(m) = self.max_results {
            write!(f, " MAXRESULTS {m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    fn window() -> TimeWindow {
        TimeWindow::new(ts("2026-01-01T00:00:00Z"), ts("2026-01-02T00:00:00Z"))
    }

    #[test]
    fn escaping_backslashes_quotes_and_backslashes() {
        assert_eq!(
            escape_literal("Amy's Bird Sanctuary"),
            r"Amy\'s Bird Sanctuary"
        );
        assert_eq!(escape_literal(r"a\b"), r"a\\b");
        assert_eq!(escape_literal(r"\'"), r"\\\'");
        assert_eq!(escape_literal("A & B + C %"), "A & B + C %");
    }

    #[test]
    fn datetimes_carry_an_explicit_offset() {
        assert_eq!(
            format_datetime(ts("2026-01-01T00:00:00Z")),
            "2026-01-01T00:00:00+00:00"
        );
        assert_eq!(
            format_datetime(ts("2015-10-01T16:54:59-07:00")),
            "2015-10-01T23:54:59+00:00"
        );
        assert_eq!(
            format_datetime(ts("2026-01-01T00:00:00.999Z")),
            "2026-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn window_query_for_list_entity_includes_inactive() {
        let q = Query::select(Entity::Customer)
            .created_in(window())
            .order_by("Id")
            .start_position(1)
            .max_results(1000);
        assert_eq!(
            q.to_string(),
            "SELECT * FROM Customer WHERE MetaData.CreateTime >= '2026-01-01T00:00:00+00:00' AND \
             MetaData.CreateTime < '2026-01-02T00:00:00+00:00' AND Active IN (true, false) ORDERBY Id \
             STARTPOSITION 1 MAXRESULTS 1000"
        );
        assert_eq!(
            q.to_count().to_string(),
            "SELECT COUNT(*) FROM Customer WHERE MetaData.CreateTime >= '2026-01-01T00:00:00+00:00' \
             AND MetaData.CreateTime < '2026-01-02T00:00:00+00:00' AND Active IN (true, false)"
        );
    }

    #[test]
    fn transactions_never_get_the_active_clause() {
        let q = Query::select(Entity::Invoice)
            .created_in(window())
            .include_inactive(true);
        assert!(!q.to_string().contains("Active"));
        assert_eq!(
            Query::select(Entity::Payment).to_string(),
            "SELECT * FROM Payment"
        );
    }

    #[test]
    fn list_entity_without_conditions_and_explicit_active_filters() {
        assert_eq!(
            Query::select(Entity::Item).to_string(),
            "SELECT * FROM Item WHERE Active IN (true, false)"
        );
        assert_eq!(
            Query::select(Entity::Item)
                .include_inactive(false)
                .to_string(),
            "SELECT * FROM Item"
        );
        assert_eq!(
            Query::select(Entity::Vendor)
                .filter("Active", Operator::Eq, false)
                .to_string(),
            "SELECT * FROM Vendor WHERE Active = false"
        );
    }

    #[test]
    fn literals_render_quoted_and_listed() {
        let q = Query::select(Entity::Customer)
            .filter("DisplayName", Operator::Eq, "Amy's")
            .filter(
                "Id",
                Operator::In,
                Literal::List(vec!["5".into(), "6".into()]),
            )
            .filter("Balance", Operator::Gt, 10_i64)
            .include_inactive(false)
            .order_by("Id")
            .order_by("DisplayName DESC");
        assert_eq!(
            q.to_string(),
            r"SELECT * FROM Customer WHERE DisplayName = 'Amy\'s' AND Id IN ('5', '6') AND Balance > 10 ORDERBY Id, DisplayName DESC"
        );
    }

    #[test]
    fn windows_are_half_open() {
        let w = window();
        assert!(w.contains(w.start));
        assert!(!w.contains(w.end));
        assert!(!w.is_empty());
        assert!(TimeWindow::new(w.end, w.start).is_empty());
    }
}
