//! Kernel memory-management logic, host-testable (placeholder).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
