//! rill-scenarios
