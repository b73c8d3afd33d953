//! A model of guest memory and a fake backend, for host tests, fuzzing and
//! the host run of the conformance suite.
