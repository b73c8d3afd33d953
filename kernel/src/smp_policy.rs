//! Decisions of the multi-CPU kernel that are pure logic: how many CPUs to
//! start from the count the host reports, and which CPU reports a fatal
//! error when several fail at once.

use core::sync::atomic::{AtomicU32, Ordering};

/// CPUs to run on: the reported count (the boot CPU included), at least 1,
/// at most `max`.
pub fn cpus_to_start(reported: u32, max: usize) -> usize {
    (reported as usize).clamp(1, max.max(1))
}

/// The fatal-report owner word's value while nobody reports.
pub const NO_OWNER: u32 = u32::MAX;

/// Whether a CPU may report a fatal error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FatalClaim {
    /// The first fatal error anywhere: this CPU reports it.
    First,
    /// This CPU is already reporting one (a fault in the report).
    Nested,
    /// Another CPU is reporting: this one waits to be stopped.
    Other,
}

/// Claims `owner` (initially `NO_OWNER`) for CPU `me`.
pub fn claim(owner: &AtomicU32, me: u32) -> FatalClaim {
    match owner.compare_exchange(NO_OWNER, me, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => FatalClaim::First,
        Err(o) if o == me => FatalClaim::Nested,
        Err(_) => FatalClaim::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_count_is_clamped() {
        assert_eq!(cpus_to_start(0, 8), 1);
        assert_eq!(cpus_to_start(1, 8), 1);
        assert_eq!(cpus_to_start(4, 8), 4);
        assert_eq!(cpus_to_start(255, 8), 8);
        assert_eq!(cpus_to_start(4, 0), 1);
    }

    #[test]
    fn one_cpu_wins_the_fatal_report() {
        let owner = AtomicU32::new(NO_OWNER);
        let claims: Vec<(u32, FatalClaim)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8u32)
                .map(|cpu| {
                    let owner = &owner;
                    s.spawn(move || (cpu, claim(owner, cpu)))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<u32> = claims
            .iter()
            .filter(|(_, c)| *c == FatalClaim::First)
            .map(|(cpu, _)| *cpu)
            .collect();
        assert_eq!(winners.len(), 1, "{claims:?}");
        assert!(
            claims.iter().all(|(cpu, c)| *c == FatalClaim::First
                || (*c == FatalClaim::Other && *cpu != winners[0]))
        );
        // The winner faulting again while reporting is nested, the rest stay out.
        assert_eq!(claim(&owner, winners[0]), FatalClaim::Nested);
        assert_eq!(claim(&owner, (winners[0] + 1) % 8), FatalClaim::Other);
    }
}
