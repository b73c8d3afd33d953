//! CLI behaviour: exit codes, bad input (exit 2, clear message, no panic),
//! reports, baseline, symbolize.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn expect_bad_input(o: &Output, needle: &str) {
    let e = stderr(o);
    assert_eq!(code(o), 2, "stdout: {}\nstderr: {e}", stdout(o));
    assert!(e.contains(needle), "expected `{needle}` in stderr: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn exit_codes_ok_violation_unbounded() {
    let elf = graph_fixture("tail");
    let ok = stackcheck(&[
        "check",
        "--elf",
        s(&elf),
        "--entry",
        "ta_entry",
        "--budget",
        "128",
    ]);
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    assert!(stdout(&ok).contains("bound       128"), "{}", stdout(&ok));
    let over = stackcheck(&[
        "check",
        "--elf",
        s(&elf),
        "--entry",
        "ta_entry",
        "--budget",
        "127",
    ]);
    assert_eq!(code(&over), 1);
    assert!(stdout(&over).contains("OVER BUDGET"));
    let rec = graph_fixture("recursion");
    let unb = stackcheck(&["check", "--elf", s(&rec), "--entry", "rc_entry"]);
    assert_eq!(code(&unb), 1);
    assert!(stdout(&unb).contains("UNBOUNDED") && stdout(&unb).contains("rc_rec"));
}

#[test]
fn bad_elf_inputs_exit_2() {
    let dir = tmp("bad-elf");
    let elf = graph_fixture("tail");
    let good = std::fs::read(&elf).unwrap();
    let run = |p: &Path| stackcheck(&["check", "--elf", s(p), "--entry", "ta_entry"]);

    expect_bad_input(&run(&dir.join("does-not-exist")), "cannot read ELF");
    expect_bad_input(
        &run(&write(
            &dir,
            "text",
            b"hello, not an elf at all, but long enough to have a header.......",
        )),
        "not an ELF file",
    );
    expect_bad_input(&run(&write(&dir, "tiny", &good[..10])), "not an ELF file");
    for cut in [64usize, 200, 1000, good.len() / 2, good.len() - 1] {
        let o = run(&write(&dir, &format!("trunc{cut}"), &good[..cut]));
        assert_eq!(code(&o), 2, "truncated at {cut}: {}", stderr(&o));
        assert!(stderr(&o).contains("error:"), "{}", stderr(&o));
    }
    let mut m = good.clone();
    m[18] = 183; // e_machine = EM_AARCH64
    m[19] = 0;
    expect_bad_input(
        &run(&write(&dir, "aarch64", &m)),
        "unsupported ELF machine 183",
    );
    let mut m = good.clone();
    m[4] = 1; // ELFCLASS32
    expect_bad_input(&run(&write(&dir, "class32", &m)), "unsupported ELF class 1");
    let mut m = good.clone();
    m[5] = 2; // big endian
    expect_bad_input(&run(&write(&dir, "be", &m)), "byte order");
    let mut m = good.clone();
    m[0x28..0x30].copy_from_slice(&0x7fff_ffff_ffffu64.to_le_bytes()); // e_shoff
    expect_bad_input(&run(&write(&dir, "shoff", &m)), "corrupt ELF");

    // Stripped: no symbols to find the entry (this fixture has no CFI either).
    let stripped = dir.join("stripped");
    run_cmd(Command::new("strip").arg("-o").arg(&stripped).arg(&elf));
    expect_bad_input(&run(&stripped), "stripped");
    // Stripped but with CFI: functions exist (from FDEs), the symbol does not.
    let rec = graph_fixture("recursion");
    let stripped2 = dir.join("stripped-cfi");
    run_cmd(Command::new("strip").arg("-o").arg(&stripped2).arg(&rec));
    let o = stackcheck(&["check", "--elf", s(&stripped2), "--entry", "rc_entry"]);
    expect_bad_input(&o, "no .symtab (stripped?)");
}

fn run_cmd(c: &mut Command) {
    run(c)
}

#[test]
fn bad_config_exit_2() {
    let dir = tmp("bad-config");
    let elf = graph_fixture("tail");
    let check = |cfg: &str| {
        let p = write(&dir, "c.toml", cfg.as_bytes());
        stackcheck(&["check", "--config", s(&p), "--elf", s(&elf)])
    };
    let good = "[[entry]]\nname = \"e\"\nsymbol = \"ta_entry\"\nstack = \"s\"\nbudget = 1000\n";
    assert_eq!(code(&check(good)), 0);
    expect_bad_input(
        &check(&good.replace("budget", "budgte")),
        "unknown field `budgte`",
    );
    expect_bad_input(
        &check(&format!("[thresholds]\nlarge_mvoe = 5\n{good}")),
        "unknown field `large_mvoe`",
    );
    expect_bad_input(
        &check(&format!("[analysis]\nindirect = \"maybe\"\n{good}")),
        "unknown variant `maybe`",
    );
    expect_bad_input(&check("[[entry]\nname = "), "invalid config");
    expect_bad_input(&check(&good.replace("1000", "\"lots\"")), "invalid config");
    expect_bad_input(&check(&good.replace("1000", "-5")), "invalid config");
    expect_bad_input(
        &check(&good.replace("ta_entry", "no_such_fn")),
        "symbol `no_such_fn` not found",
    );
    expect_bad_input(
        &check(&format!("{good}nested = [\"ghost\"]\n")),
        "nests unknown entry `ghost`",
    );
    expect_bad_input(&check(&format!("{good}{good}")), "duplicate entry name");
    expect_bad_input(
        &check(
            "[stacks.a]\nsize = 10\n[[entry]]\nname = \"e\"\nsymbol = \"ta_entry\"\nstack = \"b\"\nbudget = 1\n",
        ),
        "undefined stack `b`",
    );
    expect_bad_input(&check(""), "no entry points");
    let nest_cycle = "[[entry]]\nname = \"a\"\nsymbol = \"ta_entry\"\nstack = \"s\"\nbudget = 1000\nnested = [\"b\"]\n[[entry]]\nname = \"b\"\nsymbol = \"ta_leaf\"\nstack = \"s\"\nbudget = 1000\nnested = [\"a\"]\n";
    expect_bad_input(&check(nest_cycle), "nesting cycle");
    expect_bad_input(
        &stackcheck(&[
            "check",
            "--config",
            s(&dir.join("missing.toml")),
            "--elf",
            s(&elf),
        ]),
        "cannot read config",
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(code(&stackcheck(&[])), 2);
    assert_eq!(code(&stackcheck(&["check", "--bogus"])), 2);
    expect_bad_input(&stackcheck(&["check", "--entry", "x"]), "no ELF given");
    let elf = graph_fixture("tail");
    expect_bad_input(
        &stackcheck(&[
            "check",
            "--elf",
            s(&elf),
            "--entry",
            "ta_entry",
            "--max-growth",
            "5",
        ]),
        "--baseline",
    );
}

#[test]
fn reports_all_formats_and_baseline() {
    let dir = tmp("reports");
    let elf = graph_fixture("got");
    let cfg = "[thresholds]\nlarge_frame = 200\n[[entry]]\nname = \"gb\"\nsymbol = \"gb_entry\"\nstack = \"s\"\nbudget = 300\n";
    let cfgp = write(&dir, "c.toml", cfg.as_bytes());
    let out = dir.join("out");
    let o = stackcheck(&[
        "report",
        "--config",
        s(&cfgp),
        "--elf",
        s(&elf),
        "--out-dir",
        s(&out),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], "stackcheck-report/1");
    assert_eq!(json["entries"][0]["bound"], 224);
    assert_eq!(json["entries"][0]["headroom"], 76);
    assert_eq!(json["entries"][0]["status"], "ok");
    assert_eq!(json["large_moves"][0]["size"], 4096);
    assert_eq!(json["large_frames"][0]["function"], "gb_leaf");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| `gb` (`gb_entry`) | main | s | 224 | 300 | 76 | ok | gb_entry → gb_leaf |"),
        "{md}"
    );
    let svg = std::fs::read_to_string(out.join("stack-depth.svg")).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("gb_leaf"),
        "{}",
        &svg[..200.min(svg.len())]
    );
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    // Run from the package directory, the fixture's source is in the
    // "repository": a location relative to it.
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let loc = &results
        .iter()
        .find(|r| r["ruleId"] == "large-move")
        .expect("large move")["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(loc["uri"], "fixtures/graphs/got.S", "{loc}");
    assert_eq!(loc["uriBaseId"], "%SRCROOT%");
    let json = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert!(
        !json.contains(env!("CARGO_MANIFEST_DIR")),
        "absolute path in {json}"
    );
    // Run from elsewhere, it is outside: named in the message, no location
    // that code scanning would drop.
    let o = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args([
            "report",
            "--config",
            s(&cfgp),
            "--elf",
            s(&elf),
            "--out-dir",
            s(&out),
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let sarif: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.sarif")).unwrap()).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| {
        let text = r["message"]["text"].as_str().unwrap();
        r["ruleId"] == "large-move"
            && r["locations"].as_array().unwrap().is_empty()
            && text.contains("fixtures/graphs/got.S:")
            && text.contains("outside the repository")
    }));
    assert!(results.iter().any(|r| r["ruleId"] == "large-frame"));

    // Baseline: pretend the old bound was 200 -> growth 24.
    let old = std::fs::read_to_string(out.join("report.json"))
        .unwrap()
        .replace("\"bound\": 224", "\"bound\": 200");
    let oldp = write(&dir, "old.json", old.as_bytes());
    let o = stackcheck(&[
        "check",
        "--config",
        s(&cfgp),
        "--elf",
        s(&elf),
        "--baseline",
        s(&oldp),
    ]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("200 -> 224 (+24 B"), "{}", stdout(&o));
    let o = stackcheck(&[
        "check",
        "--config",
        s(&cfgp),
        "--elf",
        s(&elf),
        "--baseline",
        s(&oldp),
        "--max-growth",
        "23",
    ]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("GROWTH OVER LIMIT"));
    let o = stackcheck(&[
        "check",
        "--config",
        s(&cfgp),
        "--elf",
        s(&elf),
        "--baseline",
        s(&oldp),
        "--max-growth",
        "24",
    ]);
    assert_eq!(code(&o), 0);
    let badp = write(&dir, "bad.json", b"{\"entries\": 5}");
    expect_bad_input(
        &stackcheck(&[
            "check",
            "--config",
            s(&cfgp),
            "--elf",
            s(&elf),
            "--baseline",
            s(&badp),
        ]),
        "invalid baseline",
    );

    // Over budget: SARIF carries the violation.
    let cfg2 = write(&dir, "c2.toml", cfg.replace("300", "100").as_bytes());
    let o = stackcheck(&[
        "report",
        "--config",
        s(&cfg2),
        "--elf",
        s(&elf),
        "--out-dir",
        s(&out),
    ]);
    assert_eq!(code(&o), 1);
    let sarif = std::fs::read_to_string(out.join("report.sarif")).unwrap();
    assert!(sarif.contains("stack-budget-exceeded"));
}

#[test]
fn symbolize_with_inlined_frames_and_build_id_check() {
    let dir = tmp("symbolize");
    let obj = dir.join("inline.o");
    run(Command::new("gcc")
        .args([
            "-O2",
            "-g",
            "-ffreestanding",
            "-fno-stack-protector",
            "-fno-pie",
            "-c",
        ])
        .arg(fixtures().join("graphs/inline.c"))
        .arg("-o")
        .arg(&obj));
    let elf = dir.join("inline");
    gcc_link(&[obj], &elf, &["-Wl,--build-id=sha1"]);
    let data = std::fs::read(&elf).unwrap();
    let img = stackcheck::elf::Image::parse(&data).unwrap();
    let id: String = img
        .build_id()
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let lines = stackcheck::dwarf::Lines::new(&img);
    let outer = &img.functions[img.lookup("outer").unwrap()];
    // An address inside `outer` that DWARF attributes to the inlined `inner`.
    let pc = (outer.addr..outer.end())
        .find(|&a| lines.frames(a).len() >= 2)
        .expect("inlined code in outer");
    let sink = img.functions[img.lookup("sink").unwrap()].addr;
    let log = format!(
        "noise\nBACKTRACE BEGIN build-id={id}\n  #00 pc={sink:#x} sp=0x1000 sink+0x0\n  #01 pc={:#x} sp=0x1010 outer\n  #02 pc={pc:#x} sp=0x1020 [exception vector=14] outer\nBACKTRACE END frames=3 stop=end-of-stack\n",
        pc + 1
    );
    let logp = write(&dir, "serial.log", log.as_bytes());
    let o = stackcheck(&["symbolize", "--elf", s(&elf), s(&logp)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("#00") && out.contains("sink at ") && out.contains("inline.c:"),
        "{out}"
    );
    // Frame #01 (return address pc: looked up at pc-1) and #02 (exception: pc) both show the inlined frame.
    assert_eq!(out.matches("(inlined) inner at ").count(), 2, "{out}");
    assert!(out.matches("    outer at ").count() >= 2, "{out}");
    assert!(out.contains("end: frames=3 stop=end-of-stack"));

    // Wrong build id: refuse.
    let bad = log.replace(&id, "00112233445566778899aabbccddeeff00112233");
    let badp = write(&dir, "bad.log", bad.as_bytes());
    expect_bad_input(
        &stackcheck(&["symbolize", "--elf", s(&elf), s(&badp)]),
        "build-id mismatch",
    );
    let nop = write(&dir, "none.log", b"no backtrace here\n");
    expect_bad_input(
        &stackcheck(&["symbolize", "--elf", s(&elf), s(&nop)]),
        "no BACKTRACE BEGIN block",
    );
}

#[test]
fn hwm_soundness_check() {
    let dir = tmp("hwm");
    let elf = graph_fixture("tail");
    let cfg = write(
        &dir,
        "c.toml",
        b"[[entry]]\nname = \"t\"\nsymbol = \"ta_entry\"\nstack = \"task\"\nbudget = 1000\n",
    );
    let log = |used: u64| {
        write(&dir, "serial.log", format!("boot\nSTACK-HWM kind=task name=init cpu=0 task=1 size=32768 used={used}\nSTACK-HWM kind=boot name=boot cpu=0 task=- size=65536 used=5000\n").as_bytes())
    };
    let o = stackcheck(&[
        "hwm",
        "--config",
        s(&cfg),
        "--elf",
        s(&elf),
        "--log",
        s(&log(128)),
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ok (100% of bound)"), "{}", stdout(&o));
    assert!(stdout(&o).contains("no entry point uses this stack"));
    let o = stackcheck(&[
        "hwm",
        "--config",
        s(&cfg),
        "--elf",
        s(&elf),
        "--log",
        s(&log(129)),
    ]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("UNSOUND"));
    let empty = write(&dir, "empty.log", b"nothing\n");
    expect_bad_input(
        &stackcheck(&[
            "hwm",
            "--config",
            s(&cfg),
            "--elf",
            s(&elf),
            "--log",
            s(&empty),
        ]),
        "no STACK-HWM lines",
    );
}
