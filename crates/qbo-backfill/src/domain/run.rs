//! A run's vocabulary: its status, its windows' status and what started it, each a closed set
//! stored as `text` (the names below are the stored ones).

/// Maps a fieldless enum to and from a PostgreSQL `text` column.
macro_rules! text_enum {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored name.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s { $($name => Ok(Self::$variant),)+ other => Err(format!("unknown {} `{other}`", stringify!($ty))) }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl<'q> sqlx::Encode<'q, sqlx::Postgres> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> std::result::Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> std::result::Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(text.parse::<Self>()?)
            }
        }
    };
}

/// The status of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// A worker is loading it.
    Running,
    /// Every window succeeded.
    Succeeded,
    /// Some windows failed, or a fatal error stopped it.
    Failed,
    /// Stopped by the operator (Ctrl-C) or found dead; retryable.
    Interrupted,
    /// Cancelled through the API or UI.
    Cancelled,
}

text_enum!(RunStatus {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Interrupted => "interrupted",
    Cancelled => "cancelled",
});

impl RunStatus {
    /// Every status, in the order they are shown.
    pub const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Interrupted,
        Self::Cancelled,
    ];

    /// Whether the run is over (nothing will change it without a retry).
    #[must_use]
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Running)
    }
}

/// The status of a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowStatus {
    /// Not loaded yet (or given back unfinished).
    Pending,
    /// Being loaded.
    Running,
    /// Loaded completely.
    Succeeded,
    /// Failed after the client's retries.
    Failed,
}

text_enum!(WindowStatus {
    Pending => "pending",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
});

impl WindowStatus {
    /// Every status.
    pub const ALL: [Self; 4] = [Self::Pending, Self::Running, Self::Succeeded, Self::Failed];
}

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
    /// QuickBooks webhooks: changes coalesced into one incremental sync.
    Webhook,
}

text_enum!(RunOrigin {
    Cli => "cli",
    Api => "api",
    Ui => "ui",
    Retry => "retry",
    Trigger => "trigger",
    Demo => "demo",
    Webhook => "webhook",
});

impl RunOrigin {
    /// Every origin.
    pub const ALL: [Self; 7] = [
        Self::Cli,
        Self::Api,
        Self::Ui,
        Self::Retry,
        Self::Trigger,
        Self::Demo,
        Self::Webhook,
    ];
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
