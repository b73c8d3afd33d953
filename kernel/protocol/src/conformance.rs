//! The conformance suite: named cases as data, and a runner generic over
//! how a call is made.
