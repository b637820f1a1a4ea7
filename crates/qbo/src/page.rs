//! One page of query results as the rest of the system consumes it: the rows (raw JSON, exactly
//! as QBO sent them, plus the few fields an exporter needs) and where they came from.

use serde_json::value::RawValue;

use crate::Entity;

/// One entity from a query page.
#[derive(Debug, Clone)]
pub struct Row {
    /// The entity's `Id`.
    pub id: String,
    /// The entity's `SyncToken` (a decimal number sent as a string), as sent.
    pub sync_token: String,
    /// The entity's JSON exactly as QBO returned it.
    pub raw: Box<RawValue>,
    /// `MetaData.CreateTime`, when present and well-formed.
    pub created: Option<jiff::Timestamp>,
    /// `MetaData.LastUpdatedTime`, when present and well-formed.
    pub updated: Option<jiff::Timestamp>,
}

impl Row {
    /// The row's `field` timestamp.
    #[must_use]
    pub const fn time(&self, field: crate::TimeField) -> Option<jiff::Timestamp> {
        match field {
            crate::TimeField::Created => self.created,
            crate::TimeField::LastUpdated => self.updated,
        }
    }
}

/// One page of a paged query.
#[derive(Debug, Clone)]
pub struct Page {
    /// The entity queried.
    pub entity: Entity,
    /// 1-based number of this page within its window's paging.
    pub number: u32,
    /// The `STARTPOSITION` sent (1-based).
    pub start_position: u32,
    /// The `MAXRESULTS` sent.
    pub page_size: u32,
    /// The full query text sent.
    pub query: String,
    /// The `minorversion` sent.
    pub minor_version: u32,
    /// Intuit's transaction id (`intuit_tid` response header), if the server sent one.
    pub intuit_tid: Option<String>,
    /// The rows, in the order QBO returned them.
    pub rows: Vec<Row>,
}
