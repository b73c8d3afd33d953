//! Reset-vector ROM generator (in progress).
