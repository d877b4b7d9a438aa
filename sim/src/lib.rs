//! rill-sim
