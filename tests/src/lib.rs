//! rill-tests
