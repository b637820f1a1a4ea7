//! [`PgTimestamp`]: binds and reads PostgreSQL `timestamptz` as a [`jiff::Timestamp`] (sqlx has
//! no jiff support of its own). Microsecond precision, as PostgreSQL stores it.

use sqlx::decode::Decode;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::{Postgres, Type};

/// Microseconds from the Unix epoch to PostgreSQL's epoch, 2000-01-01T00:00:00Z.
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// A `timestamptz` value as a [`jiff::Timestamp`] (sub-microsecond digits are truncated on write).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgTimestamp(pub jiff::Timestamp);

impl From<jiff::Timestamp> for PgTimestamp {
    fn from(ts: jiff::Timestamp) -> Self {
        Self(ts)
    }
}

impl From<PgTimestamp> for jiff::Timestamp {
    fn from(ts: PgTimestamp) -> Self {
        ts.0
    }
}

impl Type<Postgres> for PgTimestamp {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1184))
    }
}

impl PgHasArrayType for PgTimestamp {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1185))
    }
}

impl Encode<'_, Postgres> for PgTimestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let micros = self.0.as_microsecond() - PG_EPOCH_OFFSET_MICROS;
        buf.extend(&micros.to_be_bytes());
        Ok(IsNull::No)
    }
}

impl<'r> Decode<'r, Postgres> for PgTimestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes: [u8; 8] = value
                    .as_bytes()?
                    .try_into()
                    .map_err(|_| "timestamptz value is not 8 bytes")?;
                let micros = i64::from_be_bytes(bytes);
                if micros == i64::MAX || micros == i64::MIN {
                    return Err("infinite timestamptz has no jiff::Timestamp equivalent".into());
                }
                let unix = micros
                    .checked_add(PG_EPOCH_OFFSET_MICROS)
                    .ok_or("timestamptz value out of range")?;
                Ok(Self(jiff::Timestamp::from_microsecond(unix)?))
            }
            PgValueFormat::Text => Ok(Self(parse_text(value.as_str()?)?)),
        }
    }
}

/// A `date` value as a [`jiff::civil::Date`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgDate(pub jiff::civil::Date);

/// PostgreSQL's epoch for dates.
const PG_EPOCH_DATE: jiff::civil::Date = jiff::civil::date(2000, 1, 1);

impl Type<Postgres> for PgDate {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(1082))
    }
}

impl Encode<'_, Postgres> for PgDate {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let days = PG_EPOCH_DATE.until((jiff::Unit::Day, self.0))?.get_days();
        buf.extend(&days.to_be_bytes());
        Ok(IsNull::No)
    }
}

impl<'r> Decode<'r, Postgres> for PgDate {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let bytes: [u8; 4] = value
                    .as_bytes()?
                    .try_into()
                    .map_err(|_| "date value is not 4 bytes")?;
                let days = i32::from_be_bytes(bytes);
                Ok(Self(PG_EPOCH_DATE.checked_add(
                    jiff::Span::new().try_days(i64::from(days))?,
                )?))
            }
            PgValueFormat::Text => Ok(Self(value.as_str()?.trim().parse()?)),
        }
    }
}

/// Parses PostgreSQL's ISO text output of a `timestamptz` (`2026-01-01 00:00:00.5+00`,
/// `… -05`, `… +05:30`).
fn parse_text(text: &str) -> Result<jiff::Timestamp, BoxDynError> {
    let iso = text.trim().replacen(' ', "T", 1);
    // jiff wants minutes in the offset: `+00` -> `+00:00`.
    let needs_minutes = iso.len() > 3
        && matches!(iso.as_bytes()[iso.len() - 3], b'+' | b'-')
        && iso.as_bytes()[iso.len() - 2..]
            .iter()
            .all(u8::is_ascii_digit);
    let iso = if needs_minutes {
        format!("{iso}:00")
    } else {
        iso
    };
    Ok(iso.parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_output_parses() {
        let utc = |s: &str| parse_text(s).expect(s).to_string();
        assert_eq!(utc("2026-01-01 00:00:00+00"), "2026-01-01T00:00:00Z");
        assert_eq!(utc("2026-01-01 00:00:00.25-05"), "2026-01-01T05:00:00.25Z");
        assert_eq!(utc("2026-01-01 05:30:00+05:30"), "2026-01-01T00:00:00Z");
        assert!(parse_text("infinity").is_err());
    }
}
