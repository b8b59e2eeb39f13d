//! (written by its owner area)
