//! Named in-kernel test cases, selected by `test=<name>` on the IGVM command
//! line; one boot per case. Each case ends the boot itself.

use crate::println;
use svsm_bootdefs::ExitCode;

type Case = fn() -> Result<(), &'static str>;

const CASES: &[(&str, Case)] = &[
    ("smoke", smoke),
    ("panic", panic_case),
    ("invalid-opcode", invalid_opcode),
];

pub fn run(name: &str) -> ! {
    let Some((_, case)) = CASES.iter().find(|(n, _)| *n == name) else {
        println!("TEST {name}: FAIL unknown test case");
        crate::shutdown(ExitCode::TestFailure);
    };
    println!("TEST {name}: start");
    match case() {
        Ok(()) => {
            println!("TEST {name}: PASS");
            crate::shutdown(ExitCode::Success)
        }
        Err(why) => {
            println!("TEST {name}: FAIL {why}");
            crate::shutdown(ExitCode::TestFailure)
        }
    }
}

fn smoke() -> Result<(), &'static str> {
    if crate::boot_info().validate().is_err() {
        return Err("boot info invalid");
    }
    Ok(())
}

fn panic_case() -> Result<(), &'static str> {
    panic!("deliberate panic from test case");
}

fn invalid_opcode() -> Result<(), &'static str> {
    // SAFETY: deliberately raises #UD to exercise the exception path.
    unsafe { core::arch::asm!("ud2") };
    Err("ud2 returned")
}
