//! GUIDs as the SVSM specification puts them on the wire: the first three
//! fields little-endian, the last eight bytes as written.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

const fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("not a hex digit"),
    }
}

const fn byte_at(s: &[u8], i: usize) -> u8 {
    (hex(s[i]) << 4) | hex(s[i + 1])
}

impl Guid {
    /// From the text form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (compile
    /// time: a malformed constant does not build).
    pub const fn from_text(text: &str) -> Guid {
        let s = text.as_bytes();
        assert!(s.len() == 36 && s[8] == b'-' && s[13] == b'-' && s[18] == b'-' && s[23] == b'-');
        // Text byte positions, in wire order.
        const POS: [usize; 16] = [6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34];
        let mut out = [0u8; 16];
        let mut i = 0;
        while i < 16 {
            out[i] = byte_at(s, POS[i]);
            i += 1;
        }
        Guid(out)
    }
}

/// The services manifest's own GUID (its header).
pub const SERVICES_MANIFEST: Guid = Guid::from_text("63849ebb-3d92-4670-a1ff-58f9c94b87bb");
/// The vTPM service.
pub const VTPM: Guid = Guid::from_text("c476f1eb-0123-45a5-9641-b4e7dde5bfe3");
