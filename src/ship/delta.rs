//! Offline transfer: `export --since` and `load` of a delta (filled below).
