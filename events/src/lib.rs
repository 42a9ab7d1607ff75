//! # pinion-events (being built)
