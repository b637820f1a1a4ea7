//! What started a run: one closed set instead of string literals at each call site.

use std::fmt;
use std::str::FromStr;

/// What started a run (`ops.runs.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunOrigin {
    /// `qbo-backfill run` or `verify` on the command line.
    Cli,
    /// `POST /api/v1/runs` or `/api/v1/verify`.
    Api,
    /// Run once (or Verify) in the web UI.
    Ui,
    /// A retry of another run (CLI, API or UI).
    Retry,
    /// A trigger that fired.
    Trigger,
    /// `qbo-backfill demo`.
    Demo,
}

impl RunOrigin {
    /// Every origin.
    pub const ALL: [Self; 6] = [
        Self::Cli,
        Self::Api,
        Self::Ui,
        Self::Retry,
        Self::Trigger,
        Self::Demo,
    ];

    /// The stored name (`cli`, `api`, `ui`, `retry`, `trigger`, `demo`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Api => "api",
            Self::Ui => "ui",
            Self::Retry => "retry",
            Self::Trigger => "trigger",
            Self::Demo => "demo",
        }
    }
}

impl fmt::Display for RunOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored origin this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run origin `{0}`")]
pub struct UnknownRunOrigin(pub String);

impl FromStr for RunOrigin {
    type Err = UnknownRunOrigin;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownRunOrigin(s.chars().take(40).collect()))
    }
}

impl serde::Serialize for RunOrigin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl sqlx::Type<sqlx::Postgres> for RunOrigin {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Postgres> for RunOrigin {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for RunOrigin {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        Ok(text.parse::<Self>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_round_trip_by_their_stored_names() {
        for origin in RunOrigin::ALL {
            assert_eq!(origin.as_str().parse::<RunOrigin>(), Ok(origin));
        }
        assert!("webhooks".parse::<RunOrigin>().is_err());
    }
}
