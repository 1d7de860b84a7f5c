//! Typed values of result columns (placeholder).
