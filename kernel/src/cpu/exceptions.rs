//! The Rust side of exception entry: the dispatcher the entry stubs
//! (`arch::entry`) call.

use crate::arch::entry::ExceptionFrame;

pub use svsm_kernel::vectors::vector_name;

/// Called by `svsm_exc_common` with the saved frame, on the stack the IDT
/// selected for the vector.
#[unsafe(no_mangle)]
extern "C" fn svsm_exception_dispatch(frame: &mut ExceptionFrame) {
    crate::fault::handle_exception(frame);
}
