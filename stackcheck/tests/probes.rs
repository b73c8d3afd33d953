//! The stack-probe check against gcc's own probing: with
//! `-fstack-clash-protection` a 64 KiB frame is allocated a page at a time
//! and touched (no finding); without it, it is one unprobed `sub rsp`.

mod common;

use common::{fixtures, gcc_link, tmp};
use stackcheck::elf::Image;
use stackcheck::probes;

fn findings(flag: &str) -> Vec<probes::ProbeFinding> {
    let out = tmp("probes").join(format!("big{flag}-{}", std::process::id()));
    gcc_link(
        &[fixtures().join("probes/big.c")],
        &out,
        &[
            "-O2",
            flag,
            "-fno-stack-protector",
            "-fno-pie",
            "-fno-omit-frame-pointer",
        ],
    );
    let data = std::fs::read(&out).unwrap();
    let img = Image::parse(&data).unwrap();
    probes::check(&img)
}

#[test]
fn unprobed_frame_is_found() {
    let f = findings("-fno-stack-clash-protection");
    assert!(
        f.iter()
            .any(|x| x.function == "big_frame" && x.what.contains("unprobed stack allocation")),
        "{f:?}"
    );
    assert!(!f.iter().any(|x| x.function == "small_frame"), "{f:?}");
}

#[test]
fn probed_frame_passes() {
    let f = findings("-fstack-clash-protection");
    assert!(f.is_empty(), "{f:?}");
}
