//! Deterministic randomized-input robustness: mutated ELFs, configs and
//! serial logs must give Ok or a clear error, never a panic. (The libFuzzer
//! target in stackcheck/fuzz explores the same entry points without bounds.)

mod common;

use std::collections::BTreeMap;
use svsm_testkit::Rng;

use stackcheck::analysis;
use stackcheck::config::Config;

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut d = base.to_vec();
    match rng.index(4) {
        0 => d.truncate(rng.index(d.len())),
        1 => {
            for _ in 0..1 + rng.index(16) {
                let i = rng.index(d.len());
                d[i] = rng.next_u64() as u8;
            }
        }
        2 => {
            // Corrupt header/section-header fields specifically.
            let i = rng.index(64.min(d.len()));
            d[i] ^= 1 << rng.index(8);
            let j = rng.index(d.len());
            d[j] = 0xff;
        }
        _ => {
            let at = rng.index(d.len());
            let n = rng.index(256);
            for k in at..(at + n).min(d.len()) {
                d[k] = rng.next_u64() as u8;
            }
        }
    }
    d
}

#[test]
fn mutated_elfs_never_panic() {
    let cfg = Config::parse(
        "[[entry]]\nname = \"e\"\nsymbol = \"rc_entry\"\nstack = \"s\"\nbudget = 1000\n[[recursion]]\nfunctions = [\"rc_rec\"]\nmax_depth = 3\n",
        "t",
    )
    .unwrap();
    let bases = [
        std::fs::read(common::graph_fixture("recursion")).unwrap(),
        std::fs::read(common::graph_fixture("indirect")).unwrap(),
        std::fs::read(common::graph_fixture("got")).unwrap(),
    ];
    let dir = common::tmp("robust");
    let mut rng = Rng::new(0x5eed_1234_abcd_0001);
    let (mut ok, mut err) = (0, 0);
    for iter in 0..600 {
        let base = &bases[iter % bases.len()];
        let d = mutate(&mut rng, base);
        match analysis::analyze_image(&d, &cfg, "main", true) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(
                    e.downcast_ref::<stackcheck::InputError>().is_some(),
                    "not an input error: {e:#}"
                );
                err += 1;
            }
        }
        if iter % 50 == 0 {
            // The full pipeline (bounds, DWARF lines, reports) as well.
            let p = dir.join("m.elf");
            std::fs::write(&p, &d).unwrap();
            let mut paths = BTreeMap::new();
            paths.insert("main".to_string(), p);
            if let Ok(r) = analysis::run(&cfg, &paths) {
                let _ = stackcheck::report::markdown(&r);
                let _ = stackcheck::report::sarif(&r);
                let _ = stackcheck::chart::svg(&r);
            }
        }
    }
    assert!(
        ok > 0 && err > 0,
        "mutations should produce both outcomes: ok {ok} err {err}"
    );
}

#[test]
fn mutated_configs_never_panic() {
    let base = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../stackcheck.toml"))
        .unwrap_or_else(|_| {
            "[[entry]]\nname = \"e\"\nsymbol = \"x\"\nstack = \"s\"\nbudget = 1\n".into()
        });
    let mut rng = Rng::new(42);
    let bytes = base.as_bytes();
    let mut accepted = 0;
    for _ in 0..2000 {
        let d = mutate(&mut rng, bytes);
        let text = String::from_utf8_lossy(&d);
        if Config::parse(&text, "fuzz").is_ok() {
            accepted += 1;
        }
    }
    assert!(accepted < 2000);
}

#[test]
fn mutated_logs_never_panic() {
    let base = "x\nBACKTRACE BEGIN build-id=abcd\n  #00 pc=0x10 sp=0x20 f+0x1\n  #01 pc=0x11 sp=0x28 [exception vector=14] g\nBACKTRACE END frames=2 stop=loop\n";
    let mut rng = Rng::new(7);
    for _ in 0..3000 {
        let d = mutate(&mut rng, base.as_bytes());
        let _ = stackcheck::symbolize::parse_log(&String::from_utf8_lossy(&d));
    }
}
