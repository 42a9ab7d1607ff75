//! The TechEmpower Framework Benchmarks' test types, together: `/plaintext`, `/json`,
//! `/db`, `/queries`, `/updates`, `/cached-queries` and `/fortunes`, as the benchmark's rules
//! ask for them (a row per query, no result cache but for `/cached-queries`). They are routed
//! after the demo's session layer, so they pay nothing for it.

pub mod fortunes;
pub mod json;
pub mod plaintext;
pub mod world;
