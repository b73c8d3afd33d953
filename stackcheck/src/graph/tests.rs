//! Unit tests of site classification and trait names.

use iced_x86::{Decoder, DecoderOptions};

use super::data::trait_of;
use super::{SiteKind, site_kind};

fn kind(bytes: &[u8]) -> Option<SiteKind> {
    let mut d = Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE);
    site_kind(&d.decode())
}

#[test]
fn instructions_leaving_the_image_are_not_sites() {
    for (name, b) in [
        ("vmgexit", &[0xf3, 0x0f, 0x01, 0xd9][..]),
        ("tdcall", &[0x66, 0x0f, 0x01, 0xcc]),
        ("vmmcall", &[0x0f, 0x01, 0xd9]),
        ("vmcall", &[0x0f, 0x01, 0xc1]),
        ("syscall", &[0x0f, 0x05]),
        ("sysenter", &[0x0f, 0x34]),
        ("int 0x80", &[0xcd, 0x80]),
        ("call far [rax]", &[0x48, 0xff, 0x18]),
        ("retfq", &[0x48, 0xcb]),
    ] {
        assert_eq!(kind(b), None, "{name}");
    }
}

#[test]
fn near_calls_and_jumps_are_sites() {
    assert_eq!(kind(&[0xe8, 0, 0, 0, 0]), Some(SiteKind::Call));
    assert_eq!(kind(&[0xff, 0xd0]), Some(SiteKind::Call)); // call rax
    assert_eq!(kind(&[0xff, 0x50, 0x18]), Some(SiteKind::Call)); // call [rax+0x18]
    assert_eq!(kind(&[0xe9, 0, 0, 0, 0]), Some(SiteKind::Tail));
    assert_eq!(kind(&[0xff, 0xe0]), Some(SiteKind::Tail)); // jmp rax
    assert_eq!(kind(&[0x74, 0x00]), Some(SiteKind::Tail)); // je
}

#[test]
fn trait_names_from_method_names() {
    assert_eq!(
        trait_of("<svsm::Console as core::fmt::Write>::write_str").as_deref(),
        Some("core::fmt::Write")
    );
    assert_eq!(
        trait_of("<&mut W as core::fmt::Write>::write_char").as_deref(),
        Some("core::fmt::Write")
    );
    assert_eq!(
        trait_of("<alloc::vec::Vec<u8> as core::ops::Fn<(u32,)>>::call").as_deref(),
        Some("core::ops::Fn")
    );
    assert_eq!(
        trait_of("<<a::B as c::D>::E as f::G>::h").as_deref(),
        Some("f::G")
    );
    assert_eq!(trait_of("core::fmt::write"), None);
    assert_eq!(trait_of("<core::fmt::Formatter>::pad"), None);
}
