//! The benchmark harness of issue 5: `resilient` against its peers, group by group, in one run.
//!
//! The bench target `compare` (`cargo bench` in this folder) runs every group and prints the
//! medians, the ratios between the entries of each group and the targets.

pub mod alloc;
pub mod compile_time;
pub mod contention;
pub mod family;
pub mod first_call;
pub mod groups;
pub mod registry;
pub mod report;
pub mod scaling;
