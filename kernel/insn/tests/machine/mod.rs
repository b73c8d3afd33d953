//! A fake guest (registers, sparse memory, segment bases) and fake devices
//! (a port and MMIO log with canned read values) for the emulator tests and
//! the benchmark.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use svsm_insn::{DeviceError, Devices, Gpr, GuestState, MemFault, Segment, Width};

#[derive(Clone, Debug, Default)]
pub struct Guest {
    pub gpr: [u64; 16],
    pub rip: u64,
    pub rflags: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    /// Byte-granular memory; an address not present faults.
    pub mem: BTreeMap<u64, u8>,
}

impl Guest {
    pub fn map(&mut self, addr: u64, len: u64) {
        for a in addr..addr + len {
            self.mem.insert(a, 0);
        }
    }
    pub fn poke(&mut self, addr: u64, data: &[u8]) {
        for (i, b) in data.iter().enumerate() {
            self.mem.insert(addr + i as u64, *b);
        }
    }
    pub fn peek(&self, addr: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| self.mem[&(addr + i)]).collect()
    }
}

impl GuestState for Guest {
    fn gpr(&self, r: Gpr) -> u64 {
        self.gpr[usize::from(r.0)]
    }
    fn set_gpr(&mut self, r: Gpr, value: u64) {
        self.gpr[usize::from(r.0)] = value;
    }
    fn rip(&self) -> u64 {
        self.rip
    }
    fn set_rip(&mut self, rip: u64) {
        self.rip = rip;
    }
    fn rflags(&self) -> u64 {
        self.rflags
    }
    fn segment_base(&self, seg: Segment) -> u64 {
        match seg {
            Segment::Fs => self.fs_base,
            Segment::Gs => self.gs_base,
            _ => 0,
        }
    }
    fn read_memory(&mut self, linear: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = linear.wrapping_add(i as u64);
            *b = *self.mem.get(&a).ok_or(MemFault { addr: a })?;
        }
        Ok(())
    }
    fn write_memory(&mut self, linear: u64, data: &[u8]) -> Result<(), MemFault> {
        for i in 0..data.len() as u64 {
            let a = linear.wrapping_add(i);
            if !self.mem.contains_key(&a) {
                return Err(MemFault { addr: a });
            }
        }
        self.poke(linear, data);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    IoRead(u16, Width),
    IoWrite(u16, Width, u32),
    MmioRead(u64, Width),
    MmioWrite(u64, Width, u64),
}

#[derive(Debug, Default)]
pub struct Dev {
    pub log: Vec<Access>,
    /// Values the next reads return (then 0).
    pub reads: VecDeque<u64>,
    /// Accesses to this port or address fail.
    pub broken: Option<u64>,
}

impl Dev {
    fn next_read(&mut self) -> u64 {
        self.reads.pop_front().unwrap_or(0)
    }
    fn check(&self, at: u64) -> Result<(), DeviceError> {
        if self.broken == Some(at) {
            Err(DeviceError)
        } else {
            Ok(())
        }
    }
}

impl Devices for Dev {
    fn io_read(&mut self, port: u16, width: Width) -> Result<u32, DeviceError> {
        self.check(u64::from(port))?;
        self.log.push(Access::IoRead(port, width));
        Ok((self.next_read() & width.mask()) as u32)
    }
    fn io_write(&mut self, port: u16, width: Width, value: u32) -> Result<(), DeviceError> {
        self.check(u64::from(port))?;
        self.log.push(Access::IoWrite(port, width, value));
        Ok(())
    }
    fn mmio_read(&mut self, linear: u64, width: Width) -> Result<u64, DeviceError> {
        self.check(linear)?;
        self.log.push(Access::MmioRead(linear, width));
        Ok(self.next_read() & width.mask())
    }
    fn mmio_write(&mut self, linear: u64, width: Width, value: u64) -> Result<(), DeviceError> {
        self.check(linear)?;
        self.log.push(Access::MmioWrite(linear, width, value));
        Ok(())
    }
}
