//! Stack kinds, owners and names.

use crate::layout::{
    BOOT_STACK_SIZE, IST_DF_STACK_SIZE, IST_MC_STACK_SIZE, IST_NMI_STACK_SIZE, IST_PF_STACK_SIZE,
    IST_VC_STACK_SIZE, PERCPU_STACK_SIZE, SHADOW_STACK_SIZE, TASK_STACK_SIZE,
};

/// Which exception an IST stack serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IstKind {
    DoubleFault,
    PageFault,
    Nmi,
    MachineCheck,
    /// #VC (SEV-SNP).
    Vc,
}

impl IstKind {
    pub const ALL: [IstKind; 5] = [
        IstKind::DoubleFault,
        IstKind::PageFault,
        IstKind::Nmi,
        IstKind::MachineCheck,
        IstKind::Vc,
    ];

    /// Exception vector served by this IST stack.
    pub const fn vector(self) -> u8 {
        match self {
            IstKind::DoubleFault => 8,
            IstKind::PageFault => 14,
            IstKind::Nmi => 2,
            IstKind::MachineCheck => 18,
            IstKind::Vc => 29,
        }
    }
}

/// What a stack is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StackKind {
    /// stage2's identity-mapped stack (registered at a fixed place).
    Stage2,
    /// The kernel boot stack (fixed place, slot 0): CPU 0's stack until it
    /// moves to its per-CPU stack at the end of boot.
    Boot,
    /// A CPU's kernel stack after boot (CPU 0's too).
    PerCpu,
    /// An interrupt stack (TSS IST entry).
    Ist(IstKind),
    /// Stack of a kernel task.
    Task,
    /// Reserved for CET shadow stacks.
    Shadow,
}

impl StackKind {
    /// Every kind, in report order.
    pub const ALL: [StackKind; 10] = [
        StackKind::Stage2,
        StackKind::Boot,
        StackKind::PerCpu,
        StackKind::Ist(IstKind::DoubleFault),
        StackKind::Ist(IstKind::PageFault),
        StackKind::Ist(IstKind::Nmi),
        StackKind::Ist(IstKind::MachineCheck),
        StackKind::Ist(IstKind::Vc),
        StackKind::Task,
        StackKind::Shadow,
    ];

    /// The kind's token in reports and `STACK-HWM` lines.
    pub const fn name(self) -> &'static str {
        match self {
            StackKind::Stage2 => "stage2",
            StackKind::Boot => "boot",
            StackKind::PerCpu => "percpu",
            StackKind::Ist(IstKind::DoubleFault) => "ist-df",
            StackKind::Ist(IstKind::PageFault) => "ist-pf",
            StackKind::Ist(IstKind::Nmi) => "ist-nmi",
            StackKind::Ist(IstKind::MachineCheck) => "ist-mc",
            StackKind::Ist(IstKind::Vc) => "ist-vc",
            StackKind::Task => "task",
            StackKind::Shadow => "shadow",
        }
    }

    /// Inverse of [`StackKind::name`].
    pub fn from_name(s: &str) -> Option<StackKind> {
        StackKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Stack size the allocator uses for this kind; `None` for stage2,
    /// whose stack is placed by igvm-build and only registered.
    pub const fn default_size(self) -> Option<u64> {
        match self {
            StackKind::Stage2 => None,
            StackKind::Boot => Some(BOOT_STACK_SIZE),
            StackKind::PerCpu => Some(PERCPU_STACK_SIZE),
            StackKind::Ist(IstKind::DoubleFault) => Some(IST_DF_STACK_SIZE),
            StackKind::Ist(IstKind::PageFault) => Some(IST_PF_STACK_SIZE),
            StackKind::Ist(IstKind::Nmi) => Some(IST_NMI_STACK_SIZE),
            StackKind::Ist(IstKind::MachineCheck) => Some(IST_MC_STACK_SIZE),
            StackKind::Ist(IstKind::Vc) => Some(IST_VC_STACK_SIZE),
            StackKind::Task => Some(TASK_STACK_SIZE),
            StackKind::Shadow => Some(SHADOW_STACK_SIZE),
        }
    }

    /// Whether [`crate::StackRegistry::allocate`] hands out this kind (the
    /// boot and stage2 stacks have fixed places and are only registered).
    pub const fn is_allocatable(self) -> bool {
        !matches!(self, StackKind::Stage2 | StackKind::Boot)
    }
}

impl core::fmt::Display for StackKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who runs on a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Owner {
    pub cpu: u32,
    pub task: Option<u32>,
}

impl Owner {
    pub const fn cpu(cpu: u32) -> Owner {
        Owner { cpu, task: None }
    }

    pub const fn task(cpu: u32, task: u32) -> Owner {
        Owner {
            cpu,
            task: Some(task),
        }
    }
}

/// A stack name is 1..=32 bytes of ASCII letters, digits, `-`, `_` and
/// `.`, so that reports and `STACK-HWM` lines stay space-separated tokens.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_and_are_unique() {
        for (i, k) in StackKind::ALL.iter().enumerate() {
            assert_eq!(StackKind::from_name(k.name()), Some(*k));
            assert!(valid_name(k.name()));
            for other in &StackKind::ALL[i + 1..] {
                assert_ne!(k.name(), other.name());
            }
        }
        assert_eq!(StackKind::from_name("ist"), None);
        assert_eq!(StackKind::from_name("Task"), None);
    }

    #[test]
    fn sizes_and_allocatability() {
        assert_eq!(StackKind::Stage2.default_size(), None);
        assert_eq!(StackKind::PerCpu.default_size(), Some(64 * 1024));
        assert_eq!(
            StackKind::Ist(IstKind::PageFault).default_size(),
            Some(32 * 1024)
        );
        assert_eq!(StackKind::Ist(IstKind::Nmi).default_size(), Some(24 * 1024));
        assert_eq!(StackKind::Task.default_size(), Some(32 * 1024));
        assert!(!StackKind::Boot.is_allocatable());
        assert!(!StackKind::Stage2.is_allocatable());
        assert!(StackKind::Ist(IstKind::DoubleFault).is_allocatable());
        assert_eq!(IstKind::DoubleFault.vector(), 8);
        assert_eq!(IstKind::PageFault.vector(), 14);
        assert_eq!(IstKind::Vc.vector(), 29);
        assert_eq!(StackKind::Ist(IstKind::Vc).default_size(), Some(24 * 1024));
    }

    #[test]
    fn names() {
        assert!(valid_name("cpu0.kernel"));
        assert!(valid_name("task_7-worker"));
        assert!(!valid_name(""));
        assert!(!valid_name("two words"));
        assert!(!valid_name("a=b"));
        assert!(!valid_name("x:y"));
        assert!(!valid_name(&"a".repeat(33)));
        assert!(!valid_name("café"));
    }
}
