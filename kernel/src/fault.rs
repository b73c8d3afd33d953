//! Exception handling: reports and fatal exits.

use crate::cpu::exceptions::{ExceptionFrame, vector_name};
use crate::cpu::read_cr2;
use crate::println;
use crate::serial::CONSOLE;
use svsm_bootdefs::ExitCode;

pub fn handle_exception(frame: &mut ExceptionFrame) {
    CONSOLE.force_unlock();
    let cr2 = read_cr2();
    println!(
        "EXCEPTION: vector={} ({}) error={:#x} rip={:#x} rsp={:#x} cr2={:#x}",
        frame.vector,
        vector_name(frame.vector),
        frame.error_code,
        frame.rip,
        frame.rsp,
        cr2
    );
    crate::shutdown(ExitCode::Exception);
}
