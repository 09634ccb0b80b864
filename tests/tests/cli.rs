//! The command line as a person meets it.

use hiwar_tests::{hiwar, run};

#[test]
fn help_lists_every_subcommand_with_its_purpose() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(hiwar(home.path()).arg("--help"));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for sub in ["demo", "run", "say", "transcribe", "chat", "serve", "models", "doctor", "bench"] {
        assert!(out.stdout.lines().any(|l| l.trim_start().starts_with(sub)), "--help lacks {sub}:\n{}", out.stdout);
    }
    assert!(out.stdout.contains("Arabic"), "{}", out.stdout);
    let models = run(hiwar(home.path()).args(["models", "--help"]));
    for sub in ["list", "fetch", "verify"] {
        assert!(models.stdout.contains(sub), "models --help lacks {sub}");
    }
}

#[test]
fn the_live_loop_without_its_models_names_the_missing_file_and_the_fix() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(hiwar(home.path()).args(["run", "--no-window"]));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("hiwar models fetch"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn a_config_typo_is_named_with_its_line_and_nothing_runs() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = home.path().join("bad.toml");
    std::fs::write(&config, "[llm]\nmodel = \"qwen-max\"\n\n[hearing]\nlangauges = [\"ar\"]\n").expect("write");
    let out = run(hiwar(home.path()).arg("--config").arg(&config).args(["models", "list"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("unknown field `langauges`"), "{}", out.stderr);
    assert!(out.stderr.contains("line 5"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn a_missing_config_file_is_named() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(hiwar(home.path()).args(["--config", "/nonexistent/hiwar.toml", "doctor"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("/nonexistent/hiwar.toml"), "{}", out.stderr);
}

#[test]
fn a_mistyped_environment_override_is_named() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = run(hiwar(home.path()).env("HIWAR_LLM_BASEURL", "http://x").args(["models", "list"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("HIWAR_LLM_BASEURL"), "{}", out.stderr);
}
