//! What users see: a closed pipe, machine-readable output that stays pure,
//! file names in errors, options a subcommand does not take, help texts,
//! and every report format (the SVG chart rendered at its intended size).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// An ELF with `n` small functions (f0 calls f1 ... so explain has edges),
/// large enough that `frames` prints far more than a pipe buffer.
fn many_functions(n: usize) -> PathBuf {
    let dir = tmp("many");
    let mut asm = String::from(".text\n");
    for i in 0..n {
        asm.push_str(&format!(
            ".globl f{i}\n.type f{i},@function\nf{i}:\n.cfi_startproc\nsub $24, %rsp\n.cfi_adjust_cfa_offset 24\n{}add $24, %rsp\n.cfi_adjust_cfa_offset -24\nret\n.cfi_endproc\n.size f{i}, .-f{i}\n",
            if i + 1 < n { format!("call f{}\n", i + 1) } else { String::new() }
        ));
    }
    let src = write(&dir, "many.S", asm.as_bytes());
    let elf = dir.join("many");
    gcc_link(&[src], &elf, &[]);
    elf
}

/// Runs stackcheck, reads one line of its stdout and closes the pipe.
fn read_one_line_then_close(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackcheck"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    let o = child.wait_with_output().unwrap();
    (code(&o), stderr(&o))
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let elf = many_functions(3000);
    for args in [
        vec!["frames", "--elf", s(&elf)],
        vec!["explain", "--elf", s(&elf), "f*"],
    ] {
        let (c, e) = read_one_line_then_close(&args);
        assert_eq!(c, 0, "{args:?}: {e}");
        assert!(e.is_empty(), "{args:?}: stderr: {e}");
    }
}

#[test]
fn json_stays_json_with_a_baseline() {
    let dir = tmp("json-baseline");
    let elf = graph_fixture("tail");
    let args = [
        "check",
        "--elf",
        s(&elf),
        "--entry",
        "ta_entry",
        "--budget",
        "200",
    ];
    let o = stackcheck(&[&args[..], &["--format", "json"]].concat());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let old = stdout(&o).replace("\"bound\": 128", "\"bound\": 100");
    let oldp = write(&dir, "old.json", old.as_bytes());
    for fmt in [&["--format", "json"][..], &["--json"][..]] {
        let o = stackcheck(&[&args[..], fmt, &["--baseline", s(&oldp)]].concat());
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
        assert_eq!(v["entries"][0]["bound"], 128);
        assert!(stderr(&o).contains("100 -> 128 (+28 B"), "{}", stderr(&o));
    }
    // The text summary keeps the growth table on stdout.
    let o = stackcheck(&[&args[..], &["--baseline", s(&oldp)]].concat());
    assert!(stdout(&o).contains("100 -> 128 (+28 B"), "{}", stdout(&o));
}

#[test]
fn parse_errors_name_the_file() {
    let dir = tmp("named-errors");
    let text = write(&dir, "text.txt", b"hello world\n");
    let cfg = write(
        &dir,
        "c.toml",
        b"[images.stage2]\npath = \"nothing\"\n[[entry]]\nname = \"e\"\nimage = \"stage2\"\nsymbol = \"x\"\nstack = \"s\"\nbudget = 1\n",
    );
    let image = format!("stage2={}", s(&text));
    for args in [
        vec!["check", "--config", s(&cfg), "--image", &image],
        vec!["check", "--elf", s(&text), "--entry", "x"],
        vec!["frames", "--elf", s(&text)],
        vec!["probes", "--elf", s(&text)],
        vec!["explain", "--elf", s(&text), "x"],
        vec!["symbolize", "--elf", s(&text), s(&text)],
    ] {
        let o = stackcheck(&args);
        assert_eq!(code(&o), 2, "{args:?}");
        assert!(stderr(&o).contains("text.txt"), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("not an ELF file"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn explain_without_a_match_is_an_error() {
    let elf = graph_fixture("tail");
    let o = stackcheck(&["explain", "--elf", s(&elf), "no_such_*"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("no function matches `no_such_*`"),
        "{}",
        stderr(&o)
    );
    let o = stackcheck(&["explain", "--elf", s(&elf), "ta_*"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("ta_entry @"), "{}", stdout(&o));
}

#[test]
fn options_a_subcommand_does_not_take_are_refused() {
    let elf = graph_fixture("tail");
    let e = s(&elf);
    for args in [
        vec![
            "report",
            "--elf",
            e,
            "--entry",
            "ta_entry",
            "--all-functions",
        ],
        vec![
            "check",
            "--elf",
            e,
            "--all-functions",
            "--entry",
            "ta_entry",
        ],
        vec![
            "check",
            "--elf",
            e,
            "--all-functions",
            "--baseline",
            "x.json",
        ],
        vec!["explain", "--elf", e, "--entry", "ta_entry", "ta_entry"],
        vec!["explain", "--elf", e, "--baseline", "x.json", "ta_entry"],
        vec![
            "hwm",
            "--elf",
            e,
            "--entry",
            "ta_entry",
            "--log",
            "x",
            "--baseline",
            "y",
        ],
        vec!["check", "--elf", e, "--budget", "5"],
        vec![
            "check",
            "--elf",
            e,
            "--entry",
            "ta_entry",
            "--max-growth",
            "5",
        ],
        vec!["frames", "--elf", e, "--entry", "ta_entry"],
    ] {
        let o = stackcheck(&args);
        assert_eq!(code(&o), 2, "{args:?} was accepted: {}", stdout(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}

#[test]
fn help_shows_exit_codes_and_no_u64_max() {
    for args in [
        vec!["--help"],
        vec!["check", "--help"],
        vec!["report", "--help"],
        vec!["frames", "--help"],
        vec!["explain", "--help"],
        vec!["symbolize", "--help"],
    ] {
        let o = stackcheck(&args);
        assert_eq!(code(&o), 0, "{args:?}");
        let h = stdout(&o);
        assert!(
            h.contains("Exit codes:") && h.contains("2  bad input"),
            "{args:?}: {h}"
        );
        assert!(!h.contains("18446744073709551615"), "{args:?}: {h}");
    }
    let elf = graph_fixture("tail");
    let o = stackcheck(&["check", "--elf", s(&elf), "--entry", "ta_entry"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("budget      none ok"), "{}", stdout(&o));
    assert!(
        !stdout(&o).contains("18446744073709551615"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn frames_sorted_by_size_with_a_minimum() {
    let elf = graph_fixture("got");
    let o = stackcheck(&["frames", "--elf", s(&elf), "--sort", "size", "--min", "16"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let sizes: Vec<u64> = stdout(&o)
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(sizes.len() >= 2, "{}", stdout(&o));
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    assert!(sizes.iter().all(|&v| v >= 16), "{sizes:?}");
    let all = stackcheck(&["frames", "--elf", s(&elf)]);
    assert!(
        stdout(&all).lines().count() > sizes.len(),
        "--min filtered nothing"
    );
}

fn two_entries(dir: &Path) -> PathBuf {
    write(
        dir,
        "c.toml",
        b"[[entry]]\nname = \"fits\"\nsymbol = \"ta_leaf\"\nstack = \"s\"\nbudget = 1000\n[[entry]]\nname = \"tight\"\nsymbol = \"ta_entry\"\nstack = \"s\"\nbudget = 100\n",
    )
}

#[test]
fn quiet_keeps_only_violations() {
    let dir = tmp("quiet");
    let elf = graph_fixture("tail");
    let cfg = two_entries(&dir);
    let o = stackcheck(&["check", "--config", s(&cfg), "--elf", s(&elf)]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains("fits") && stdout(&o).contains("tight"));
    let o = stackcheck(&["check", "-q", "--config", s(&cfg), "--elf", s(&elf)]);
    assert_eq!(code(&o), 1);
    assert!(
        !stdout(&o).contains("fits") && stdout(&o).contains("tight"),
        "{}",
        stdout(&o)
    );
    let o = stackcheck(&[
        "check",
        "-q",
        "--format",
        "json",
        "--config",
        s(&cfg),
        "--elf",
        s(&elf),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
}

#[test]
fn markdown_sarif_folded_and_dot() {
    let dir = tmp("formats");
    let elf = graph_fixture("tail");
    let cfg = two_entries(&dir);
    let run = |fmt: &str| {
        let o = stackcheck(&[
            "check",
            "--format",
            fmt,
            "--config",
            s(&cfg),
            "--elf",
            s(&elf),
        ]);
        assert_eq!(code(&o), 1, "{fmt}: {}", stderr(&o));
        stdout(&o)
    };
    assert!(run("md").contains("| `tight` (`ta_entry`) |"));
    let sarif: serde_json::Value = serde_json::from_str(&run("sarif")).unwrap();
    assert_eq!(
        sarif["runs"][0]["results"][0]["ruleId"],
        "stack-budget-exceeded"
    );
    assert!(
        run("folded")
            .lines()
            .any(|l| l.starts_with("tight [s];ta_entry"))
    );
    let dot = run("dot");
    assert!(
        dot.starts_with("digraph") && dot.contains("ta_entry") && dot.contains("->"),
        "{dot}"
    );
    graphviz_accepts(&dot);
    let o = stackcheck(&["explain", "--format", "dot", "--elf", s(&elf), "ta_entry"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let dot = stdout(&o);
    assert!(
        dot.contains("style=bold") && dot.contains("ta_leaf"),
        "{dot}"
    );
    graphviz_accepts(&dot);
}

/// Graphviz parses and lays out the graph (installed by `make setup`).
fn graphviz_accepts(dot: &str) {
    use std::io::Write;
    let mut c = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("graphviz `dot` (make setup installs it)");
    c.stdin.take().unwrap().write_all(dot.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "dot: {}\n{dot}", stderr(&o));
}

/// Width and height of a PNG from its IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let be = |o: usize| u32::from_be_bytes(png[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn the_chart_is_readable_when_rendered() {
    let dir = tmp("chart");
    let elf = many_functions(40);
    let cfg = write(
        &dir,
        "c.toml",
        b"[[entry]]\nname = \"deep\"\nsymbol = \"f0\"\nstack = \"s\"\nbudget = 2000\n[[entry]]\nname = \"shallow\"\nsymbol = \"f35\"\nstack = \"s\"\nbudget = 2000\n",
    );
    let o = stackcheck(&[
        "check",
        "--format",
        "svg",
        "--config",
        s(&cfg),
        "--elf",
        s(&elf),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let svg = stdout(&o);
    let svgp = write(&dir, "chart.svg", svg.as_bytes());
    let png = dir.join("chart.png");
    let r = Command::new("rsvg-convert")
        .args(["-w", "1200", "-o"])
        .arg(&png)
        .arg(&svgp)
        .output()
        .expect("rsvg-convert (make setup installs librsvg2-bin)");
    assert!(r.status.success(), "{}", stderr(&r));
    let (w, h) = png_size(&std::fs::read(&png).unwrap());
    assert_eq!(w, 1200);
    // Labels: one per frame of each worst path (40 + 5) plus a header per
    // entry, each at 12 px in a 560 px column: at most 77 characters.
    let labels: Vec<&str> = svg
        .lines()
        .filter(|l| l.contains("class=\"frame\"") || l.contains("class=\"entry\""))
        .map(|l| {
            let end = l.rfind("</text>").unwrap();
            &l[l[..end].rfind('>').unwrap() + 1..end]
        })
        .collect();
    assert_eq!(labels.len(), 1 + 2 + 40 + 5, "{svg}");
    assert!(svg.contains("font-size: 12px"));
    for l in &labels[1..] {
        assert!(
            l.chars().count() <= 77,
            "label too long for its column: {l}"
        );
        assert!(!l.ends_with(".."), "{l}");
    }
    // 12 px text needs rows of at least 12 px: the rendered height gives
    // each label its row.
    assert!(
        h >= 12 * labels.len() as u32,
        "{h} px for {} labels",
        labels.len()
    );
    // One byte scale: the shallow entry's five frames end where the deep
    // entry's first five do.
    let ends: Vec<f64> = svg
        .lines()
        .filter(|l| l.starts_with("<rect x="))
        .map(|l| {
            let num = |k: &str| {
                let i = l.find(k).unwrap() + k.len();
                l[i..].split('"').next().unwrap().parse::<f64>().unwrap()
            };
            num("x=\"") + num("width=\"")
        })
        .collect();
    assert_eq!(ends.len(), 45);
    assert!(
        (ends[4] - ends[44]).abs() < 0.2,
        "{} vs {}",
        ends[4],
        ends[44]
    );
}
