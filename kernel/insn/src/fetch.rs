//! Instruction bytes, copied in through a caller-supplied accessor.
//!
//! The decoder never holds a reference into guest memory: it asks the
//! accessor to copy at most [`MAX_INSN_LEN`] bytes into its own 15-byte
//! window, one page at a time. The first copy runs from RIP to the end of
//! its page (or 15 bytes); the next page is read only if the instruction
//! really continues there, so an instruction that ends just before an
//! unmapped page decodes, and one that crosses into it is a fetch fault.

/// The architectural limit: a longer instruction raises #GP, so no prefix
/// or REX combination makes the decoder look past this many bytes.
pub const MAX_INSN_LEN: usize = 15;

/// The granule an accessor is asked for: one copy never crosses a 4 KiB
/// page, so each can be translated (and can fault) on its own.
pub const PAGE_SIZE: u64 = 4096;

/// A fetch the accessor could not satisfy (not mapped, not executable, not
/// readable by the caller): the caller reports it to the guest as a fault
/// at `addr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchFault {
    pub addr: u64,
}

/// Copies instruction bytes at a linear address (the guest's, or the
/// SVSM's own for #VC/#VE) into `buf`, and returns how many it copied: at
/// least one, at most `buf.len()`. The decoder only asks for ranges within
/// one 4 KiB page, at most 15 bytes long, and asks again (at the next
/// address) only if the instruction needs more; a short copy is how an
/// accessor with a fixed number of bytes (the VMCB's) says where they end.
pub trait InsnFetch {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, FetchFault>;
}

/// Instruction bytes already copied out (e.g. the VMCB's guest-instruction
/// bytes of a nested page fault, or a test vector), mapped at `base`.
/// Addresses outside `bytes` are fetch faults.
#[derive(Clone, Copy, Debug)]
pub struct SliceFetch<'a> {
    pub base: u64,
    pub bytes: &'a [u8],
}

impl InsnFetch for SliceFetch<'_> {
    fn fetch(&mut self, addr: u64, buf: &mut [u8]) -> Result<usize, FetchFault> {
        let src = addr
            .checked_sub(self.base)
            .and_then(|o| usize::try_from(o).ok())
            .and_then(|o| self.bytes.get(o..))
            .filter(|s| !s.is_empty())
            .ok_or(FetchFault { addr })?;
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }
}

/// The decoder's view of the instruction: up to 15 bytes from `rip`, copied
/// lazily, page by page.
pub(crate) struct Window<'f, F: InsnFetch + ?Sized> {
    fetch: &'f mut F,
    rip: u64,
    bytes: [u8; MAX_INSN_LEN],
    /// Bytes copied so far.
    have: usize,
    /// Bytes consumed by the decoder so far (the instruction's length).
    pos: usize,
}

/// Why the decoder could not get its next byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowError {
    Fetch(FetchFault),
    TooLong,
}

impl<'f, F: InsnFetch + ?Sized> Window<'f, F> {
    pub(crate) fn new(fetch: &'f mut F, rip: u64) -> Self {
        Window {
            fetch,
            rip,
            bytes: [0; MAX_INSN_LEN],
            have: 0,
            pos: 0,
        }
    }

    /// The number of bytes consumed so far.
    pub(crate) fn len(&self) -> usize {
        self.pos
    }

    /// The next byte, without consuming it.
    pub(crate) fn peek(&mut self) -> Result<u8, WindowError> {
        if self.pos >= MAX_INSN_LEN {
            return Err(WindowError::TooLong);
        }
        if self.pos >= self.have {
            self.refill()?;
        }
        Ok(self.bytes[self.pos])
    }

    pub(crate) fn next(&mut self) -> Result<u8, WindowError> {
        let b = self.peek()?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn le(&mut self, n: usize) -> Result<u64, WindowError> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.next()?) << (8 * i);
        }
        Ok(v)
    }

    /// Copies (part of) the rest of the current page, up to 15 bytes in
    /// all. A copy of zero bytes is a fault: the decoder never loops.
    fn refill(&mut self) -> Result<(), WindowError> {
        let addr = self.rip.wrapping_add(self.have as u64);
        let to_page_end = PAGE_SIZE - (addr % PAGE_SIZE);
        let n = (MAX_INSN_LEN - self.have).min(to_page_end as usize);
        let dst = &mut self.bytes[self.have..self.have + n];
        let got = self.fetch.fetch(addr, dst).map_err(WindowError::Fetch)?;
        if got == 0 {
            return Err(WindowError::Fetch(FetchFault { addr }));
        }
        self.have += got.min(n);
        Ok(())
    }
}
