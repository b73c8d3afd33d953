//! A recording fake of the hardware and the hypervisor for the host tests:
//! every MSR write, VMGEXIT, PVALIDATE, RMPADJUST and zeroing is recorded;
//! the MSR-protocol responses are queued by the test, GHCB-page requests
//! are answered by a test-supplied hypervisor function.

use crate::hw::{PvalidateResult, RmpPageSize, SnpHardware};
use crate::msr_protocol::TerminationReason;
use std::boxed::Box;
use std::collections::VecDeque;
use std::vec::Vec;
use svsm_defs::ghcb::Ghcb;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    WriteMsr(u64),
    Vmgexit {
        page: bool,
    },
    Pvalidate {
        va: u64,
        size: RmpPageSize,
        validate: bool,
    },
    Rmpadjust {
        va: u64,
        size: RmpPageSize,
        attrs: u64,
    },
    Zero {
        va: u64,
        len: u64,
    },
}

type Hypervisor = Box<dyn FnMut(&mut Ghcb)>;
type PvalidateFn = Box<dyn FnMut(u64, RmpPageSize, bool) -> PvalidateResult>;
type RmpadjustFn = Box<dyn FnMut(u64, RmpPageSize, u64) -> u32>;

pub struct FakeHw {
    pub sev_status: u64,
    pub msr: u64,
    pub msr_responses: VecDeque<u64>,
    pub events: Vec<Event>,
    pub hypervisor: Hypervisor,
    pub pvalidate: PvalidateFn,
    pub rmpadjust: RmpadjustFn,
}

impl Default for FakeHw {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHw {
    /// Every instruction succeeds; the hypervisor answers GHCB requests
    /// with success and changes nothing else.
    pub fn new() -> Self {
        Self {
            sev_status: 0,
            msr: 0,
            msr_responses: VecDeque::new(),
            events: Vec::new(),
            hypervisor: Box::new(|g| g.sw_exit_info_1 = 0),
            pvalidate: Box::new(|_, _, _| PvalidateResult {
                code: 0,
                unchanged: false,
            }),
            rmpadjust: Box::new(|_, _, _| 0),
        }
    }

    pub fn msr_writes(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::WriteMsr(v) => Some(*v),
                _ => None,
            })
            .collect()
    }

    pub fn terminations(&self) -> Vec<TerminationReason> {
        self.msr_writes()
            .into_iter()
            .filter(|v| v & 0xfff == 0x100)
            .map(|v| TerminationReason {
                set: ((v >> 12) & 0xf) as u8,
                code: (v >> 16) as u8,
            })
            .collect()
    }

    pub fn pvalidates(&self) -> Vec<(u64, RmpPageSize, bool)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Pvalidate { va, size, validate } => Some((*va, *size, *validate)),
                _ => None,
            })
            .collect()
    }
}

impl SnpHardware for FakeHw {
    fn sev_status(&mut self) -> u64 {
        self.sev_status
    }
    fn read_ghcb_msr(&mut self) -> u64 {
        self.msr
    }
    fn write_ghcb_msr(&mut self, value: u64) {
        self.events.push(Event::WriteMsr(value));
        self.msr = value;
    }
    fn vmgexit(&mut self, ghcb: Option<&mut Ghcb>) {
        self.events.push(Event::Vmgexit {
            page: ghcb.is_some(),
        });
        match ghcb {
            Some(g) => (self.hypervisor)(g),
            None => {
                if let Some(r) = self.msr_responses.pop_front() {
                    self.msr = r;
                }
            }
        }
    }
    fn pvalidate(&mut self, va: u64, size: RmpPageSize, validate: bool) -> PvalidateResult {
        self.events.push(Event::Pvalidate { va, size, validate });
        (self.pvalidate)(va, size, validate)
    }
    fn rmpadjust(&mut self, va: u64, size: RmpPageSize, attrs: u64) -> u32 {
        self.events.push(Event::Rmpadjust { va, size, attrs });
        (self.rmpadjust)(va, size, attrs)
    }
    fn zero(&mut self, va: u64, len: u64) {
        self.events.push(Event::Zero { va, len });
    }
}
