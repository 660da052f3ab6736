//! sluice-group
