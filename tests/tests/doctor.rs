//! `hiwar doctor` on this machine: a table with a fix beside each failure, never a panic.

use hiwar_tests::{Route, TestServer, hiwar, model_cache, run};

/// An ALSA configuration with no devices at all: what a machine without a sound card has.
fn no_audio_devices(dir: &std::path::Path) -> std::path::PathBuf {
    let conf = dir.join("alsa-empty.conf");
    std::fs::write(&conf, "# no cards, no default device\n").expect("alsa conf");
    conf
}

fn row<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines().find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(name))).unwrap_or_else(|| panic!("no `{name}` row in:\n{out}"))
}

#[test]
fn without_audio_devices_doctor_says_which_and_how_to_fix_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(hiwar(&model_cache()).env("ALSA_CONFIG_PATH", no_audio_devices(dir.path())).env_remove("PULSE_SERVER").arg("doctor"));
    assert_eq!(out.code, Some(1), "audio is required for a conversation:\n{}{}", out.stdout, out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    for name in ["audio input", "audio output"] {
        let line = row(&out.stdout, name);
        assert!(line.starts_with("FAIL"), "{line}");
    }
    assert!(out.stdout.contains("fix: connect a microphone"), "{}", out.stdout);
    assert!(out.stdout.contains("required and not working: audio input, audio output"), "{}", out.stdout);
    // The rest of the table is still there and true.
    for name in ["model whisper-base", "ONNX Runtime", "espeak-ng", "graphics", "display", "LLM", "whisper model"] {
        row(&out.stdout, name);
    }
    assert!(row(&out.stdout, "model whisper-base").starts_with("ok"), "{}", out.stdout);
    assert!(row(&out.stdout, "ONNX Runtime").contains("CPUExecutionProvider"), "{}", out.stdout);
    assert!(row(&out.stdout, "whisper model").contains("whisper base"), "{}", out.stdout);
    let build = row(&out.stdout, "whisper.cpp build");
    assert!(build.starts_with("ok") && build.contains("LLAMAFILE") && build.contains("OPENMP"), "{}", out.stdout);
    assert!(out.stdout.contains("improves Arabic"), "{}", out.stdout);
}

#[test]
fn doctor_checks_the_llm_endpoint_and_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = TestServer::start(vec![("/v1/models", Route::Status(200, r#"{"object":"list","data":[{"id":"qwen-plus","object":"model"}]}"#.into()))]);
    let refused = TestServer::start(vec![(
        "/v1/models",
        Route::Status(401, r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}"#.into()),
    )]);
    let doctor = |base: &str, key: Option<&str>| {
        let mut cmd = hiwar(&model_cache());
        cmd.env("ALSA_CONFIG_PATH", no_audio_devices(dir.path()))
            .env("HIWAR_LLM_BASE_URL", base)
            .env("HIWAR_LLM_API_KEY_ENV", "TEST_LLM_KEY")
            .env_remove("TEST_LLM_KEY")
            .arg("doctor");
        if let Some(key) = key {
            cmd.env("TEST_LLM_KEY", key);
        }
        run(&mut cmd).stdout
    };

    let out = doctor(&ok.url("/v1"), Some("sk-test"));
    assert!(row(&out, "LLM").starts_with("ok") && row(&out, "LLM").contains("reachable and authorised"), "{out}");
    let seen = ok.requests.lock().expect("log").clone();
    assert!(seen[0].starts_with("GET /v1/models") && seen[0].contains("Bearer sk-test"), "{seen:?}");

    let out = doctor(&refused.url("/v1"), Some("sk-wrong"));
    assert!(row(&out, "LLM").starts_with("FAIL") && row(&out, "LLM").contains("refused the key (HTTP 401)"), "{out}");

    let out = doctor(&ok.url("/v1"), None);
    assert!(row(&out, "LLM").contains("set the environment variable TEST_LLM_KEY"), "{out}");

    let out = doctor("http://127.0.0.1:9/v1", Some("sk-test"));
    assert!(row(&out, "LLM").starts_with("FAIL") && row(&out, "LLM").contains("unreachable"), "{out}");
}
