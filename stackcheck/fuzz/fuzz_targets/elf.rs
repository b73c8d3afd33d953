//! Any byte string as an ELF: Ok or an InputError, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stackcheck::config::Config;

fuzz_target!(|data: &[u8]| {
    let cfg = Config::default();
    if let Err(e) = stackcheck::analysis::analyze_image(data, &cfg, "main", true) {
        assert!(e.downcast_ref::<stackcheck::InputError>().is_some());
    }
    let _ = stackcheck::symbolize::symbolize(
        data,
        "BACKTRACE BEGIN build-id=00\n  #00 pc=0x1 sp=0x2 x\n",
    );
});
