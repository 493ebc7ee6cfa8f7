//! Progress when stderr is not a terminal: a smoke run with stderr piped prints a line per
//! stage start and end and periodic lines with count, rate and ETA; `--quiet` prints none.

mod common;

use common::{apsig, data_dir, s};

#[test]
fn piped_run_prints_stage_lines_and_quiet_silences_them() {
    let t = tempfile::tempdir().unwrap();
    let out_dir = t.path().join("run");
    let run = |quiet: bool| {
        let mut c = apsig(t.path());
        if quiet {
            c.arg("--quiet");
        }
        // a periodic line every 0.2 s, so that the seconds-long smoke stages print some
        c.env("APSIG_PROGRESS_SECS", "0.2")
            .args(["--data-dir", s(&data_dir()), "run", "--preset", "smoke", "--out", s(&out_dir)])
            .output()
            .unwrap()
    };
    let out = run(false);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    // every line carries the elapsed time: `[   12.3s] ...`
    assert!(lines.iter().all(|l| l.starts_with('[') && l.contains("s] ")), "{stderr}");
    for stage in ["training the target model M", "test signatures (secrets, change bit only)", "training the decoder"] {
        assert!(has(stage), "no line for `{stage}`:\n{stderr}");
    }
    for stage in ["train", "signatures"] {
        let started = lines.iter().filter(|l| l.contains(&format!("] {stage}: started, "))).count();
        let done = lines.iter().filter(|l| l.contains(&format!("] {stage}: done, "))).count();
        assert!(started >= 2 && started == done, "{stage}: {started} starts, {done} ends:\n{stderr}");
    }
    // periodic lines: `train: 120/375 (85.3/s, eta 3 s)`
    let periodic: Vec<&&str> = lines.iter().filter(|l| l.contains("/s, eta ")).collect();
    assert!(periodic.len() >= 3, "too few periodic lines:\n{stderr}");
    assert!(periodic.iter().all(|l| l.contains('/') && l.ends_with(')')), "{stderr}");
    // no terminal escape codes in a log
    assert!(!stderr.contains('\u{1b}'), "escape codes in piped output");

    // the same run again, quiet: everything is reused and nothing is printed on stderr
    let out = run(true);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "--quiet printed progress");
    assert!(String::from_utf8_lossy(&out.stdout).contains("queries per secret image"));
}
