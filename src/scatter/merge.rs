//! Merging the shards' rows (placeholder: written by the merge engine).

/// Combines the rows of a fanned-out SELECT.
pub struct Merger;
