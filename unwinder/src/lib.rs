//! DWARF-CFI unwinder (placeholder, see issue 4).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
