//! # pinion-jobs (being built)
