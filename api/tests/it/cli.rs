//! The `firstcome` binary as a service manager sees it: `--version`, `check-config`
//! (its exit status both ways), and `--help` naming every setting's variable.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::helpers::{ADMIN_KEY, ISSUER_KEY};

/// The binary in `cwd`, without the FIRSTCOME_* variables of whoever runs the tests.
fn firstcome(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_firstcome"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("FIRSTCOME_")) {
        cmd.env_remove(k);
    }
    cmd.current_dir(cwd);
    cmd
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().expect("exited, not killed"),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

#[test]
fn version_prints_the_crate_version() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, _) = run(firstcome(dir.path()).arg("--version"));
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("firstcome {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_says_ok_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("firstcome.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9999\"\n[mail]\nfrom = \"Shop <c@shop.test>\"\nworkers = 2\n",
    )
    .unwrap();
    let (code, out, err) = run(firstcome(dir.path())
        .arg("check-config")
        .env("FIRSTCOME_CONFIG", &file)
        .env("FIRSTCOME_DATA_DIR", &data)
        .env("FIRSTCOME_ADMIN_KEY", ADMIN_KEY)
        .env("FIRSTCOME_ISSUER_KEY", ISSUER_KEY)
        .env("FIRSTCOME_MAIL_WORKERS", "4"));
    assert_eq!((code, out.trim()), (0, "ok"), "{err}");
    assert!(!data.exists(), "check-config created the data dir");
    // Without any setting at all: the defaults are a valid configuration.
    let (code, out, err) = run(firstcome(dir.path()).arg("check-config"));
    assert_eq!((code, out.trim()), (0, "ok"), "{err}");
    assert!(!dir.path().join("data").exists());
}

#[test]
fn check_config_exits_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bad_file = dir.path().join("bad.toml");
    std::fs::write(&bad_file, "lisen = \"127.0.0.1:9999\"\n").unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(templates.join("confirmation.en.subject.txt"), "{% if %}").unwrap();
    let missing: PathBuf = dir.path().join("missing.toml");
    let cases: &[(&[(&str, &Path)], &str)] = &[
        (
            &[("FIRSTCOME_ADMIN_KEY", Path::new("short"))],
            "admin_key must be at least 16",
        ),
        (&[("FIRSTCOME_CONFIG", &bad_file)], "unknown field"),
        (&[("FIRSTCOME_CONFIG", &missing)], "missing.toml"),
        // A value that does not parse, caught by the argument parser: still 1.
        (
            &[("FIRSTCOME_LISTEN", Path::new("not-an-address"))],
            "not-an-address",
        ),
        (&[("FIRSTCOME_LOG_FORMAT", Path::new("xml"))], "xml"),
        (
            &[("FIRSTCOME_LOG", Path::new("info,x=loud"))],
            "FIRSTCOME_LOG",
        ),
        // Mail settings are checked like the others, from the environment too.
        (
            &[("FIRSTCOME_MAIL_WORKERS", Path::new("0"))],
            "mail.workers",
        ),
        (
            &[("FIRSTCOME_SMTP_USERNAME", Path::new("coupons"))],
            "username and password",
        ),
        (&[("FIRSTCOME_SMTP_SECURITY", Path::new("ssl"))], "security"),
        (
            &[("FIRSTCOME_MAIL_TEMPLATES_DIR", &templates)],
            "templates_dir",
        ),
    ];
    for (env, reason) in cases {
        let mut cmd = firstcome(dir.path());
        cmd.arg("check-config").envs(env.iter().copied());
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 1, "{env:?}: {out} {err}");
        assert!(out.is_empty(), "{env:?}: {out}");
        assert!(err.contains(reason), "{env:?}: {err:?} lacks {reason:?}");
    }
    // The same flags as serve: a bad one on the command line fails the same way.
    let (code, _, err) =
        run(firstcome(dir.path()).args(["check-config", "--max-body-bytes", "10"]));
    assert_eq!(code, 1);
    assert!(err.contains("max_body_bytes"), "{err}");
    // A command line that makes no sense is a usage error (2), not a bad configuration.
    let (code, _, _) = run(firstcome(dir.path()).args(["check-config", "--no-such-flag"]));
    assert_eq!(code, 2);
}

/// Every FIRSTCOME_* variable in docs/operations.md is in `--help` of `serve` and of
/// `check-config`, and every one in `--help` is documented.
#[test]
fn help_lists_every_setting_with_its_variable() {
    fn vars(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("FIRSTCOME_") {
            let tail = &rest[i..];
            let len = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let name = tail[..len].trim_end_matches('_');
            // `FIRSTCOME_SMTP_*` in prose is a pattern, not a variable.
            let pattern = tail[len..].starts_with('*');
            if !pattern && name.len() > "FIRSTCOME".len() {
                out.insert(name.to_string());
            }
            rest = &tail[len..];
        }
        out
    }
    let docs = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"),
    )
    .unwrap();
    let documented = vars(&docs);
    for expected in [
        "FIRSTCOME_SMTP_HOST",
        "FIRSTCOME_MAIL_WORKERS",
        "FIRSTCOME_LOG_FORMAT",
    ] {
        assert!(documented.contains(expected), "{expected}: {documented:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    for sub in ["serve", "check-config"] {
        let (code, out, _) = run(firstcome(dir.path()).args([sub, "--help"]));
        assert_eq!(code, 0);
        let help = vars(&out);
        assert_eq!(help, documented, "{sub} --help against docs/operations.md");
    }
}
