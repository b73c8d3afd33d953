//! One vCPU's emulated x2APIC: the register file, interrupt acceptance,
//! the choice of the next interrupt to inject, acknowledge and EOI, IPIs
//! as requests to the caller, and the lazy-EOI handshake through the
//! Calling Area's `no_eoi_required` byte.

use crate::regs::{self, icr};
use crate::timer::Timer;
use crate::vectors::{FIRST_INJECTABLE, VectorSet, class, ppr};

/// Why a register access was refused. The APIC protocol reports each as
/// INVALID_PARAMETER.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// Not an x2APIC register this model emulates.
    Unknown(u32),
    /// A write to a read-only register (ID, VERSION, PPR, LDR, ISR, TMR,
    /// IRR, the timer's current count).
    ReadOnly(u32),
    /// A read of a write-only register (EOI, SELF_IPI).
    WriteOnly(u32),
    /// Reserved bits set in the written value.
    Reserved(u32),
    /// A vector 0..=30 where an interrupt vector is required.
    IllegalVector(u8),
    /// An ICR delivery mode or trigger mode the model does not offer (only
    /// fixed edge-triggered interrupts and NMIs), or the TSC-deadline timer.
    Unsupported(u32),
}

/// Who an IPI is for, besides the sender (which the model already served).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpiDest {
    /// Physical destination: the vCPU with this APIC ID.
    Physical(u32),
    /// Logical destination: every vCPU whose logical ID matches (cluster
    /// in 31:16, member bits in 15:0).
    Logical(u32),
    /// Every other vCPU.
    AllButSelf,
}

/// An IPI the caller delivers to every other vCPU `LocalApic::accepts`
/// (with `post_ipi` or `post_nmi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipi {
    pub dest: IpiDest,
    pub vector: u8,
    pub nmi: bool,
}

/// An EOI of a level-triggered vector, which the caller forwards to the
/// interrupt's source (the host).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelEoi(pub u8);

/// The emulated x2APIC of one vCPU.
#[derive(Clone, Debug)]
pub struct LocalApic {
    id: u32,
    tpr: u8,
    svr: u32,
    icr: u64,
    irr: VectorSet,
    isr: VectorSet,
    tmr: VectorSet,
    /// Vectors the guest allowed the host to inject (CONFIGURE_VECTOR).
    allowed: VectorSet,
    timer: Timer,
    /// CMCI, thermal, PMC, LINT0, LINT1, error: stored, never signalled.
    lvt_other: [u32; 6],
    nmi_pending: bool,
    /// The in-service vector may be retired by the guest through the
    /// Calling Area instead of an EOI write.
    lazy_eoi: bool,
    /// The `no_eoi_required` value last presented to the guest.
    presented: u8,
}

const LVT_OTHER: [u32; 6] = [
    regs::LVT_CMCI,
    regs::LVT_THERMAL,
    regs::LVT_PMC,
    regs::LVT_LINT0,
    regs::LVT_LINT1,
    regs::LVT_ERROR,
];

impl LocalApic {
    /// The state after reset: software-disabled (SVR 0xFF), every LVT
    /// masked, nothing pending, no vector allowed for the host.
    pub fn new(id: u32) -> Self {
        LocalApic {
            id,
            tpr: 0,
            svr: regs::SVR_RESET,
            icr: 0,
            irr: VectorSet::default(),
            isr: VectorSet::default(),
            tmr: VectorSet::default(),
            allowed: VectorSet::default(),
            timer: Timer::default(),
            lvt_other: [regs::LVT_MASKED; 6],
            nmi_pending: false,
            lazy_eoi: false,
            presented: 0,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    fn enabled(&self) -> bool {
        self.svr & regs::SVR_ENABLE != 0
    }

    /// Reads register `reg` (an x2APIC MSR number) at clock `now`.
    pub fn read(&self, reg: u32, now: u64) -> Result<u64, RegisterError> {
        let v = match reg {
            regs::ID => self.id,
            regs::VERSION => regs::VERSION_VALUE,
            regs::TPR => u32::from(self.tpr),
            regs::PPR => u32::from(ppr(self.tpr, &self.isr)),
            regs::LDR => regs::logical_id(self.id),
            regs::SVR => self.svr,
            regs::ISR0..=regs::ISR7 => self.isr.0[(reg - regs::ISR0) as usize],
            regs::TMR0..=regs::TMR7 => self.tmr.0[(reg - regs::TMR0) as usize],
            regs::IRR0..=regs::IRR7 => self.irr.0[(reg - regs::IRR0) as usize],
            regs::ESR => 0,
            regs::ICR => return Ok(self.icr),
            regs::LVT_TIMER => self.timer.lvt,
            regs::TIMER_INITIAL_COUNT => self.timer.initial,
            regs::TIMER_CURRENT_COUNT => self.timer.current(now),
            regs::TIMER_DIVIDE => self.timer.dcr,
            regs::EOI | regs::SELF_IPI => return Err(RegisterError::WriteOnly(reg)),
            _ => match LVT_OTHER.iter().position(|r| *r == reg) {
                Some(i) => self.lvt_other[i],
                None => return Err(RegisterError::Unknown(reg)),
            },
        };
        Ok(u64::from(v))
    }

    /// Writes `value` to register `reg` at clock `now`. An ICR write may
    /// return an IPI for the caller to deliver to other vCPUs.
    pub fn write(&mut self, reg: u32, value: u64, now: u64) -> Result<Option<Ipi>, RegisterError> {
        match reg {
            regs::ICR => return self.write_icr(value),
            regs::SELF_IPI => {
                let v = checked(reg, value, 0xFF)? as u8;
                injectable(v)?;
                self.post_fixed(v, false);
            }
            regs::EOI => {
                checked(reg, value, 0)?;
                self.eoi();
            }
            regs::TPR => self.tpr = checked(reg, value, 0xFF)? as u8,
            regs::SVR => self.write_svr(checked(reg, value, regs::SVR_WRITABLE)?),
            regs::ESR => {
                checked(reg, value, 0)?;
            }
            regs::LVT_TIMER => {
                self.write_lvt_timer(checked(reg, value, regs::LVT_TIMER_WRITABLE)?)?
            }
            regs::TIMER_INITIAL_COUNT => {
                let v = checked(reg, value, u32::MAX)?;
                self.timer.load(v, now);
            }
            regs::TIMER_DIVIDE => {
                self.timer.dcr = checked(reg, value, regs::TIMER_DIVIDE_WRITABLE)?;
            }
            regs::ID
            | regs::VERSION
            | regs::PPR
            | regs::LDR
            | regs::ISR0..=regs::IRR7
            | regs::TIMER_CURRENT_COUNT => return Err(RegisterError::ReadOnly(reg)),
            _ => {
                let i = LVT_OTHER
                    .iter()
                    .position(|r| *r == reg)
                    .ok_or(RegisterError::Unknown(reg))?;
                let v = checked(reg, value, regs::LVT_OTHER_WRITABLE)?;
                self.lvt_other[i] = if self.enabled() {
                    v
                } else {
                    v | regs::LVT_MASKED
                };
            }
        }
        Ok(None)
    }

    fn write_svr(&mut self, v: u32) {
        self.svr = v;
        if !self.enabled() {
            // Software disable masks every LVT entry.
            self.timer.lvt |= regs::LVT_MASKED;
            self.lvt_other
                .iter_mut()
                .for_each(|l| *l |= regs::LVT_MASKED);
        }
    }

    fn write_lvt_timer(&mut self, v: u32) -> Result<(), RegisterError> {
        if v & regs::LVT_TIMER_MODE_MASK >= regs::LVT_TIMER_TSC_DEADLINE {
            return Err(RegisterError::Unsupported(regs::LVT_TIMER));
        }
        self.timer.lvt = if self.enabled() {
            v
        } else {
            v | regs::LVT_MASKED
        };
        Ok(())
    }

    fn write_icr(&mut self, value: u64) -> Result<Option<Ipi>, RegisterError> {
        if value & icr::RESERVED != 0 {
            return Err(RegisterError::Reserved(regs::ICR));
        }
        let mode = (value & icr::DELIVERY_MODE_MASK) >> icr::DELIVERY_MODE_SHIFT;
        let nmi = match mode {
            icr::MODE_FIXED if value & icr::TRIGGER_LEVEL == 0 => false,
            icr::MODE_NMI => true,
            _ => return Err(RegisterError::Unsupported(regs::ICR)),
        };
        let vector = (value & icr::VECTOR) as u8;
        if !nmi {
            injectable(vector)?;
        }
        self.icr = value;
        let dest32 = (value >> 32) as u32;
        let shorthand = (value & icr::SHORTHAND_MASK) >> icr::SHORTHAND_SHIFT;
        let (to_self, others) = match shorthand {
            icr::SHORTHAND_SELF => (true, None),
            icr::SHORTHAND_ALL_INCLUDING_SELF => (true, Some(IpiDest::AllButSelf)),
            icr::SHORTHAND_ALL_EXCLUDING_SELF => (false, Some(IpiDest::AllButSelf)),
            _ if dest32 == icr::BROADCAST => (true, Some(IpiDest::AllButSelf)),
            _ if value & icr::DEST_LOGICAL != 0 => {
                let d = IpiDest::Logical(dest32);
                (self.accepts(d), Some(d))
            }
            _ if dest32 == self.id => (true, None),
            _ => (false, Some(IpiDest::Physical(dest32))),
        };
        if to_self {
            if nmi {
                self.post_nmi();
            } else {
                self.post_fixed(vector, false);
            }
        }
        Ok(others.map(|dest| Ipi { dest, vector, nmi }))
    }

    /// Whether this vCPU is a target of `dest` (the caller's IPI routing).
    pub fn accepts(&self, dest: IpiDest) -> bool {
        match dest {
            IpiDest::Physical(id) => id == self.id || id == icr::BROADCAST,
            IpiDest::Logical(d) => {
                let mine = regs::logical_id(self.id);
                d == icr::BROADCAST || ((d >> 16) == (mine >> 16) && d & mine & 0xFFFF != 0)
            }
            IpiDest::AllButSelf => true,
        }
    }

    /// CONFIGURE_VECTOR: allow (or stop allowing) the host to inject
    /// `vector`. Vectors 0..=30 can never be allowed.
    pub fn configure_vector(&mut self, vector: u8, allow: bool) -> Result<(), RegisterError> {
        if allow {
            injectable(vector)?;
            self.allowed.set(vector);
        } else {
            self.allowed.clear(vector);
        }
        Ok(())
    }

    pub fn is_allowed(&self, vector: u8) -> bool {
        self.allowed.contains(vector)
    }

    /// An interrupt from the host (hypervisor): accepted only if the guest
    /// allowed its vector. Returns whether it was accepted.
    pub fn post_host_interrupt(&mut self, vector: u8, level: bool) -> bool {
        self.allowed.contains(vector) && self.post_fixed(vector, level)
    }

    /// A fixed IPI from another vCPU of the guest.
    pub fn post_ipi(&mut self, vector: u8) -> bool {
        self.post_fixed(vector, false)
    }

    pub fn post_nmi(&mut self) {
        self.nmi_pending = true;
    }

    /// A software-disabled APIC accepts no fixed interrupts; vectors
    /// 0..=30 are never accepted.
    fn post_fixed(&mut self, vector: u8, level: bool) -> bool {
        if vector < FIRST_INJECTABLE || !self.enabled() {
            return false;
        }
        self.irr.set(vector);
        if level {
            self.tmr.set(vector);
        } else {
            self.tmr.clear(vector);
        }
        true
    }

    /// Advances the timer to `now`; on expiry its vector is posted (unless
    /// the LVT is masked). Returns whether it expired.
    pub fn poll_timer(&mut self, now: u64) -> bool {
        let fired = self.timer.poll(now);
        if fired && self.timer.lvt & regs::LVT_MASKED == 0 {
            self.post_fixed((self.timer.lvt & regs::LVT_VECTOR) as u8, false);
        }
        fired
    }

    /// When the caller must next call `poll_timer`.
    pub fn next_timer_deadline(&self) -> Option<u64> {
        self.timer.next_deadline()
    }

    /// The interrupt to inject next, if any: the highest pending vector,
    /// when its priority class is above the processor priority. (Whether
    /// the vCPU can take it now, RFLAGS.IF and the interrupt shadow, is the
    /// caller's to check.)
    pub fn pending_interrupt(&self) -> Option<u8> {
        if !self.enabled() {
            return None;
        }
        let v = self.irr.highest()?;
        (class(v) > class(ppr(self.tpr, &self.isr))).then_some(v)
    }

    /// Takes a pending NMI (injected ahead of any interrupt).
    pub fn take_nmi(&mut self) -> bool {
        core::mem::take(&mut self.nmi_pending)
    }

    /// The caller injected `vector` (from `pending_interrupt`): it moves
    /// from IRR to ISR. Lazy EOI becomes possible when it is edge-triggered
    /// and the only interrupt in service. `false` if `vector` was not the
    /// pending one (nothing changes).
    pub fn acknowledge(&mut self, vector: u8) -> bool {
        if self.pending_interrupt() != Some(vector) {
            return false;
        }
        self.lazy_eoi = self.isr.is_empty() && !self.tmr.contains(vector);
        self.irr.clear(vector);
        self.isr.set(vector);
        true
    }

    /// An EOI: retires the highest in-service vector. A level-triggered one
    /// is returned for the caller to forward to its source.
    pub fn eoi(&mut self) -> Option<LevelEoi> {
        let v = self.isr.highest()?;
        self.isr.clear(v);
        self.lazy_eoi = false;
        if self.tmr.contains(v) {
            self.tmr.clear(v);
            return Some(LevelEoi(v));
        }
        None
    }

    /// On every exit of this vCPU, before anything else touches the APIC:
    /// the `no_eoi_required` byte as the guest left it. A 1 presented and
    /// now 0 means the guest retired its interrupt without an EOI write
    /// (it clears the byte instead), so the EOI is done here.
    pub fn sync_no_eoi_required(&mut self, ca_byte: u8) -> Option<LevelEoi> {
        let consumed = self.presented == 1 && ca_byte == 0 && self.lazy_eoi;
        self.presented = ca_byte;
        if consumed { self.eoi() } else { None }
    }

    /// Before resuming this vCPU: the value to write to its Calling Area's
    /// `no_eoi_required` byte. 1 only while exactly one edge-triggered
    /// vector is in service and nothing else is pending; otherwise 0, so
    /// the guest writes EOI and the next interrupt follows.
    pub fn present_no_eoi_required(&mut self) -> u8 {
        self.presented = u8::from(self.lazy_eoi && self.irr.is_empty() && !self.isr.is_empty());
        self.presented
    }
}

/// `value` as a 32-bit register value with only `writable` bits set.
fn checked(reg: u32, value: u64, writable: u32) -> Result<u32, RegisterError> {
    if value & !u64::from(writable) != 0 {
        return Err(RegisterError::Reserved(reg));
    }
    Ok(value as u32)
}

fn injectable(vector: u8) -> Result<(), RegisterError> {
    if vector < FIRST_INJECTABLE {
        return Err(RegisterError::IllegalVector(vector));
    }
    Ok(())
}
