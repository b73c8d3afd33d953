//! The bodies of stackcheck's fuzz targets, shared by the libFuzzer binaries
//! (fuzz_targets/, `make fuzz`) and by the corpus replay test that runs in
//! `make test` on stable (stackcheck/tests/fuzz_corpus.rs). Each takes any
//! bytes and must return (Ok or a clear error), never panic.

use stackcheck::config::Config;

/// Any bytes as an ELF: analysis (as `frames` does it) and symbolization
/// return Ok or an `InputError`.
pub fn elf(data: &[u8]) {
    let cfg = Config::default();
    if let Err(e) = stackcheck::analysis::analyze_image(data, &cfg, "main", true) {
        assert!(
            e.downcast_ref::<stackcheck::InputError>().is_some(),
            "not an input error: {e:#}"
        );
    }
    let _ = stackcheck::symbolize::symbolize(
        data,
        "BACKTRACE BEGIN build-id=00\n  #00 pc=0x1 sp=0x2 x\n",
    );
}

/// Any text as a TOML config.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = Config::parse(&text, "fuzz");
}

/// Any text as a serial log: the BACKTRACE and STACK-HWM readers.
pub fn log(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = stackcheck::symbolize::parse_log(&text);
    let _ = stackcheck::hwm::parse(&text);
}
