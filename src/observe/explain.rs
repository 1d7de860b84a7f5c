//! Capturing plans of slow statements with EXPLAIN on control-plane
//! connections.
