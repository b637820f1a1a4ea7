//! QuickBooks Online simulator.
