//! The conformance suite on the host: the real handlers, the guest-memory
//! model and the fake backend. Prints the table of calls x cases x results.

use svsm_protocol::conformance::{CASES, Failure, Passed, run_all, run_case};
use svsm_protocol::model::ModelGuest;

fn describe(r: &Result<Passed, Failure>) -> String {
    match r {
        Ok(p) => {
            let codes: Vec<String> = p.results[..p.calls.min(p.results.len())]
                .iter()
                .map(|c| format!("{c:#x}"))
                .collect();
            format!("pass  {}", codes.join(" "))
        }
        Err(f) => format!("FAIL  step {}: {:x?}", f.step, f.kind),
    }
}

#[test]
fn every_case_passes_in_sequence_on_one_guest() {
    let mut g = ModelGuest::new(0);
    let env = g.env();
    let mut table = Vec::new();
    let failed = run_all(&mut g, &env, |case, r| {
        table.push(format!(
            "{:<16} {:<36} {}",
            case.call,
            case.name,
            describe(r)
        ));
    });
    println!("{}", table.join("\n"));
    assert_eq!(failed, 0, "{}", table.join("\n"));
    assert_eq!(g.double_fetch, None, "a guest byte was read twice");
    // Every case left the scratch region as it found it.
    let s = g.backend.state.lock();
    assert!(s.vcpus.is_empty() && s.sealed.is_empty() && s.deposited.is_empty());
    assert_eq!(g.ca, env.ca);
}

/// The protocol layer alone keeps the SVSM's pages from the guest: the
/// same results with a backend that does not check ownership itself.
#[test]
fn every_case_passes_with_a_trusting_backend() {
    let mut g = ModelGuest::new(0);
    g.backend.check_owned = false;
    let env = g.env();
    let failed = run_all(&mut g, &env, |case, r| {
        assert!(r.is_ok(), "{}: {}", case.name, describe(r));
    });
    assert_eq!(failed, 0);
}

#[test]
fn every_case_passes_alone() {
    for case in CASES {
        let mut g = ModelGuest::new(0);
        let env = g.env();
        let r = run_case(&mut g, &env, case);
        assert!(r.is_ok(), "{}: {}", case.name, describe(&r));
    }
}

#[test]
fn case_names_are_unique_and_every_core_call_is_covered() {
    let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
    for call in [
        "REMAP_CA",
        "PVALIDATE",
        "CREATE_VCPU",
        "DELETE_VCPU",
        "DEPOSIT_MEM",
        "WITHDRAW_MEM",
        "QUERY_PROTOCOL",
        "CONFIGURE_VTOM",
    ] {
        assert!(CASES.iter().any(|c| c.call == call), "{call}");
    }
}
