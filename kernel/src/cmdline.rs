//! The IGVM command line: copied once out of the loader-filled parameter
//! page (untrusted), then parsed from the copy.

use core::fmt;

/// Bytes of the command line the kernel keeps; the rest is ignored.
pub const CMDLINE_MAX: usize = 256;

/// The command line, copied into kernel memory.
pub struct Cmdline {
    buf: [u8; CMDLINE_MAX],
    len: usize,
}

impl Cmdline {
    /// Copies up to `max` bytes (at most `CMDLINE_MAX`), stopping at the
    /// first NUL; `read(i)` reads byte `i` of the source once.
    pub fn copy_from(max: usize, mut read: impl FnMut(usize) -> u8) -> Self {
        let mut c = Self {
            buf: [0; CMDLINE_MAX],
            len: 0,
        };
        for i in 0..max.min(CMDLINE_MAX) {
            let b = read(i);
            if b == 0 {
                break;
            }
            c.buf[i] = b;
            c.len = i + 1;
        }
        c
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<invalid utf-8>")
    }

    /// `test=<name>` names an in-kernel test case (the first one counts).
    pub fn test_name(&self) -> Option<&str> {
        self.as_str()
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix("test="))
    }

    /// `guest=<word>`: handed to the hosted guest as its command line
    /// (the first one counts), e.g. the scenario a test guest runs.
    pub fn guest_arg(&self) -> Option<&str> {
        self.as_str()
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix("guest="))
    }

    /// The test case to run, if any: an image built without test cases
    /// refuses a command line that asks for one.
    pub fn test_selection(&self, testcases_built: bool) -> Result<Option<&str>, TestRefused<'_>> {
        match self.test_name() {
            Some(name) if !testcases_built => Err(TestRefused(name)),
            other => Ok(other),
        }
    }
}

/// `test=<name>` given to an image without test cases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TestRefused<'a>(pub &'a str);

impl fmt::Display for TestRefused<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`test={}` refused: this image has no test cases (they are built into the test image only)",
            self.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(s: &[u8]) -> Cmdline {
        Cmdline::copy_from(s.len(), |i| s[i])
    }

    #[test]
    fn guest_argument() {
        assert_eq!(
            from(b"test=x guest=conformance guest=y").guest_arg(),
            Some("conformance")
        );
        assert_eq!(from(b"test=guest=x").guest_arg(), None);
        assert_eq!(from(b"").guest_arg(), None);
    }

    #[test]
    fn stops_at_nul_and_at_the_limits() {
        assert_eq!(from(b"a b\0test=x").as_str(), "a b");
        let long = [b'x'; 1000];
        assert_eq!(from(&long).as_str().len(), CMDLINE_MAX);
        // `max` below the buffer size bounds the copy too, and each byte is read once.
        let mut reads = 0;
        let c = Cmdline::copy_from(3, |_| {
            reads += 1;
            b'y'
        });
        assert_eq!((c.as_str(), reads), ("yyy", 3));
        assert_eq!(from(b"").as_str(), "");
        assert_eq!(from(&[0xff, 0xfe]).as_str(), "<invalid utf-8>");
    }

    #[test]
    fn finds_the_first_test_word() {
        assert_eq!(
            from(b"quiet test=heap test=smoke").test_name(),
            Some("heap")
        );
        assert_eq!(from(b"  test=nmi\t").test_name(), Some("nmi"));
        assert_eq!(from(b"test=").test_name(), Some(""));
        assert_eq!(from(b"mytest=heap").test_name(), None);
        assert_eq!(from(b"console=ttyS0").test_name(), None);
    }

    #[test]
    fn production_images_refuse_test_cases() {
        let c = from(b"test=overflow-boot");
        assert_eq!(c.test_selection(true), Ok(Some("overflow-boot")));
        let e = c.test_selection(false).unwrap_err();
        assert_eq!(e, TestRefused("overflow-boot"));
        assert!(e.to_string().contains("`test=overflow-boot` refused"));
        assert_eq!(from(b"quiet").test_selection(false), Ok(None));
    }
}
