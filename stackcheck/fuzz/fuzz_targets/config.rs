//! Any text as a config or a serial log: Ok or a clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = stackcheck::config::Config::parse(&text, "fuzz");
    let _ = stackcheck::symbolize::parse_log(&text);
});
