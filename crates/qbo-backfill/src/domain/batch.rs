//! Batches: one action for the whole company. `all_backfill` is one backfill run per entity,
//! `all_incremental` one incremental sync per entity, enqueued together (one transaction) and
//! followed together. The names are accepted wherever a pipeline is (`run`, `POST
//! /api/v1/runs`, the UI), so an operator never clicks Run once 26 times.

use std::fmt;
use std::str::FromStr;

use super::pipeline::{Mode, Pipeline, UnknownPipeline, echo};

/// A batch of every entity's pipeline of one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Batch {
    /// `all_backfill`: `qb_<plural>_backfill` for every entity.
    AllBackfill,
    /// `all_incremental`: `qb_<plural>_incremental` for every entity.
    AllIncremental,
}

impl Batch {
    /// Both batches.
    pub const ALL: [Self; 2] = [Self::AllBackfill, Self::AllIncremental];

    /// `all_backfill` or `all_incremental`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::AllBackfill => "all_backfill",
            Self::AllIncremental => "all_incremental",
        }
    }

    /// The mode of its pipelines.
    #[must_use]
    pub const fn mode(self) -> Mode {
        match self {
            Self::AllBackfill => Mode::Backfill,
            Self::AllIncremental => Mode::Incremental,
        }
    }

    /// Its pipelines, one per entity, in catalog order.
    #[must_use]
    pub fn pipelines(self) -> Vec<Pipeline> {
        Pipeline::every(self.mode()).collect()
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Batch {
    type Err = UnknownPipeline;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownPipeline(echo(s)))
    }
}

/// What `run` and `POST /api/v1/runs` start: one pipeline, or a batch of every entity's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTarget {
    /// One pipeline.
    Pipeline(Pipeline),
    /// Every entity's pipeline of one mode.
    Batch(Batch),
}

impl RunTarget {
    /// The pipeline's or the batch's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Pipeline(p) => p.name(),
            Self::Batch(b) => b.name(),
        }
    }

    /// The pipelines it runs: one, or every entity's.
    #[must_use]
    pub fn pipelines(self) -> Vec<Pipeline> {
        match self {
            Self::Pipeline(p) => vec![p],
            Self::Batch(b) => b.pipelines(),
        }
    }

    /// Whether it runs without dates (from each cursor): incremental syncs only.
    #[must_use]
    pub fn runs_without_dates(self) -> bool {
        match self {
            Self::Pipeline(p) => p.mode() == Mode::Incremental,
            Self::Batch(b) => b.mode() == Mode::Incremental,
        }
    }
}

impl fmt::Display for RunTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RunTarget {
    type Err = UnknownPipeline;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<Batch>() {
            Ok(batch) => Ok(Self::Batch(batch)),
            Err(_) => s.parse::<Pipeline>().map(Self::Pipeline),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_name_every_entity_of_their_mode() {
        assert_eq!(
            "all_backfill".parse::<RunTarget>().ok(),
            Some(RunTarget::Batch(Batch::AllBackfill))
        );
        let sync = Batch::AllIncremental.pipelines();
        assert_eq!(sync.len(), crate::domain::catalog::ENTITIES.len());
        assert!(sync.iter().all(|p| p.mode() == Mode::Incremental));
        assert_eq!(sync[0].name(), "qb_customers_incremental");
        assert!(RunTarget::Batch(Batch::AllIncremental).runs_without_dates());
        assert!(!RunTarget::Batch(Batch::AllBackfill).runs_without_dates());
        assert_eq!(
            "qb_items_backfill".parse::<RunTarget>().ok(),
            Some(RunTarget::Pipeline(Pipeline::ITEMS))
        );
        for bad in ["all", "all_verify", "ALL_BACKFILL", "all_backfill "] {
            let err = bad.parse::<RunTarget>().expect_err(bad).to_string();
            assert!(err.contains("all_backfill"), "{err}");
        }
    }
}
