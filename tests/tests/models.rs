//! `hiwar models` end to end: fetching over real HTTP from a loopback server, pip against an
//! unreachable index, verification of corrupt, truncated and wrong-version files.

use std::path::Path;
use std::time::{Duration, Instant};

use hiwar_tests::{Route, TestServer, hiwar, model_cache, run};
use md5::Md5;
use sha2::{Digest as _, Sha256};

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A manifest of one optional model whose files are served by `server`.
fn manifest(dir: &Path, files: &[(&str, String, String)]) -> std::path::PathBuf {
    let mut text = String::from("schema = 1\n\n[[model]]\nname = \"test-voice\"\npurpose = \"test\"\nlicence = \"MIT\"\n");
    for (path, url, digests) in files {
        text.push_str(&format!("\n[[model.file]]\npath = \"{path}\"\nurl = \"{url}\"\n{digests}\n"));
    }
    let path = dir.join("manifest.toml");
    std::fs::write(&path, text).expect("manifest");
    path
}

#[test]
fn an_https_model_is_fetched_verified_and_not_fetched_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = payload(300_000, 1);
    let server = TestServer::start(vec![("/voice.onnx", Route::File(body.clone()))]);
    let digests = format!("size = {}\nmd5 = \"{}\"", body.len(), hex::encode(Md5::digest(&body)));
    let m = manifest(dir.path(), &[("voices/test.onnx", server.url("/voice.onnx"), digests)]);
    let home = dir.path().join("cache");

    let first = run(hiwar(&home).env("HIWAR_MODELS_MANIFEST", &m).args(["models", "fetch", "test-voice"]));
    assert_eq!(first.code, Some(0), "{}{}", first.stdout, first.stderr);
    assert_eq!(std::fs::read(home.join("voices/test.onnx")).expect("fetched"), body);

    let second = run(hiwar(&home).env("HIWAR_MODELS_MANIFEST", &m).args(["models", "fetch", "test-voice"]));
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(second.stdout.contains("present and verified"), "{}", second.stdout);
    assert_eq!(server.requests.lock().expect("log").len(), 1, "second fetch must not download");
}

#[test]
fn an_interrupted_download_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = payload(400_000, 2);
    let server = TestServer::start(vec![("/big.bin", Route::CutOnce { body: body.clone(), cut: 150_000 })]);
    let m = manifest(dir.path(), &[("whisper/big.bin", server.url("/big.bin"), format!("size = {}\nsha256 = \"{}\"", body.len(), sha256(&body)))]);
    let home = dir.path().join("cache");
    let fetch = || run(hiwar(&home).env("HIWAR_MODELS_MANIFEST", &m).args(["models", "fetch", "test-voice"]));

    let cut = fetch();
    assert_eq!(cut.code, Some(1), "{}", cut.stdout);
    assert!(cut.stderr.contains("run the same command again to resume"), "{}", cut.stderr);
    let part = home.join("whisper/big.bin.part");
    assert_eq!(std::fs::metadata(&part).expect("partial kept").len(), 150_000);
    assert!(!home.join("whisper/big.bin").exists(), "an unverified file is never in place");

    let resumed = fetch();
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert_eq!(std::fs::read(home.join("whisper/big.bin")).expect("complete"), body);
    let log = server.requests.lock().expect("log").clone();
    assert!(log[1].contains("bytes=150000-"), "second request must resume: {log:?}");
}

#[test]
fn a_checksum_mismatch_deletes_the_download_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let right = payload(50_000, 3);
    let wrong = payload(50_000, 4);
    let server = TestServer::start(vec![("/v.onnx", Route::File(wrong))]);
    let m = manifest(dir.path(), &[("voices/v.onnx", server.url("/v.onnx"), format!("sha1 = \"{}\"", hex::encode(sha1::Sha1::digest(&right))))]);
    let home = dir.path().join("cache");
    let out = run(hiwar(&home).env("HIWAR_MODELS_MANIFEST", &m).args(["models", "fetch", "test-voice"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("failed verification: sha1"), "{}", out.stderr);
    assert!(!home.join("voices/v.onnx").exists() && !home.join("voices/v.onnx.part").exists());
}

#[test]
fn a_missing_file_on_the_server_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(vec![]);
    let m = manifest(dir.path(), &[("voices/gone.onnx", server.url("/gone.onnx"), format!("sha256 = \"{}\"", "a".repeat(64)))]);
    let out = run(hiwar(&dir.path().join("cache")).env("HIWAR_MODELS_MANIFEST", &m).args(["models", "fetch", "test-voice"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not found (HTTP 404)"), "{}", out.stderr);
}

#[test]
fn a_stalled_server_times_out_instead_of_hanging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start(vec![("/slow.bin", Route::Stall(Duration::from_secs(20)))]);
    let m = manifest(dir.path(), &[("voices/slow.bin", server.url("/slow.bin"), format!("sha256 = \"{}\"", "b".repeat(64)))]);
    let started = Instant::now();
    let out = run(hiwar(&dir.path().join("cache")).env("HIWAR_MODELS_MANIFEST", &m).env("HIWAR_MODELS_DOWNLOAD_TIMEOUT_SECS", "1").args([
        "models",
        "fetch",
        "test-voice",
    ]));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("stalled, no data for 1 s"), "{}", out.stderr);
    assert!(started.elapsed() < Duration::from_secs(15), "gave up after {:?}", started.elapsed());
}

#[test]
fn an_unpinned_download_prints_the_digest_to_pin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = payload(10_000, 5);
    let server = TestServer::start(vec![("/new.onnx", Route::File(body.clone()))]);
    let m = manifest(dir.path(), &[("voices/new.onnx", server.url("/new.onnx"), String::new())]);
    let home = dir.path().join("cache");
    let out = run(hiwar(&home).env("HIWAR_MODELS_MANIFEST", &m).args(["models", "fetch", "test-voice"]));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains(&format!("sha256 = \"{}\"", sha256(&body))), "{}", out.stdout);
    let verify = run(hiwar(&home).env("HIWAR_MODELS_MANIFEST", &m).args(["models", "verify", "test-voice"]));
    assert_eq!(verify.code, Some(0));
    assert!(verify.stdout.contains("unpinned"), "{}", verify.stdout);
}

#[test]
fn verify_names_missing_corrupt_truncated_and_wrong_version_files_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = payload(20_000, 6);
    let pin = format!("size = {}\nsha256 = \"{}\"", good.len(), sha256(&good));
    let url = "http://127.0.0.1:9/unused".to_string();
    let m = manifest(
        dir.path(),
        &[
            ("m/ok.bin", url.clone(), pin.clone()),
            ("m/truncated.bin", url.clone(), pin.clone()),
            ("m/corrupt.bin", url.clone(), pin.clone()),
            ("m/newer.bin", url.clone(), pin.clone()),
            ("m/missing.bin", url, pin),
        ],
    );
    let home = dir.path().join("cache");
    std::fs::create_dir_all(home.join("m")).expect("mkdir");
    std::fs::write(home.join("m/ok.bin"), &good).expect("ok");
    std::fs::write(home.join("m/truncated.bin"), &good[..12_345]).expect("truncated");
    let mut corrupt = good.clone();
    corrupt[777] ^= 0x40;
    std::fs::write(home.join("m/corrupt.bin"), &corrupt).expect("corrupt");
    std::fs::write(home.join("m/newer.bin"), payload(21_000, 7)).expect("newer");

    let out = run(hiwar(&home).env("HIWAR_MODELS_MANIFEST", &m).args(["models", "verify", "test-voice"]));
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    let line = |file: &str| out.stdout.lines().find(|l| l.contains(file)).unwrap_or_else(|| panic!("no line for {file}:\n{}", out.stdout)).to_string();
    assert!(line("ok.bin").contains("ok "), "{}", line("ok.bin"));
    assert!(line("truncated.bin").contains("CORRUPT") && line("truncated.bin").contains("truncated"), "{}", line("truncated.bin"));
    assert!(line("corrupt.bin").contains("sha256") && line("corrupt.bin").contains("corrupt"), "{}", line("corrupt.bin"));
    assert!(line("newer.bin").contains("not the pinned version"), "{}", line("newer.bin"));
    assert!(line("missing.bin").contains("MISSING"), "{}", line("missing.bin"));
    for file in ["truncated.bin", "corrupt.bin", "newer.bin", "missing.bin"] {
        assert!(line(file).contains("fix: hiwar models fetch test-voice"), "{}", line(file));
    }
}

#[test]
fn an_unreachable_registry_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "schema = 1\n[[model]]\nname = \"offline\"\npurpose = \"t\"\nlicence = \"MIT\"\nrequired = true\n\
         [[model.source]]\nregistry = \"pypi\"\npackage = \"hiwar-test-surely-absent\"\nversion = \"1.0.0\"\n\
         archive = \"hiwar_test_surely_absent-1.0.0-py3-none-any.whl\"\nsha256 = \"{z}\"\n\
         [[model.file]]\npath = \"x/y.bin\"\nsize = 1\nsha256 = \"{z}\"\nmember = \"hiwar-test-surely-absent:y.bin\"\n",
        z = "0".repeat(64)
    );
    let m = dir.path().join("manifest.toml");
    std::fs::write(&m, text).expect("manifest");
    // pip itself, pointed at an index on a closed loopback port: no network to the registry.
    let out = run(hiwar(&dir.path().join("cache"))
        .env("HIWAR_MODELS_MANIFEST", &m)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
        .env("PIP_RETRIES", "0")
        .env("PIP_TIMEOUT", "2")
        .args(["models", "fetch"]));
    assert_eq!(out.code, Some(1), "{}", out.stdout);
    assert!(out.stderr.contains("could not download hiwar-test-surely-absent==1.0.0 from PyPI"), "{}", out.stderr);
    assert!(out.stderr.contains("reaches PyPI"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn an_unwritable_cache_names_hiwar_home() {
    let out = run(hiwar(Path::new("/dev/null/hiwar")).args(["models", "fetch"]));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not writable") && out.stderr.contains("HIWAR_HOME"), "{}", out.stderr);
}

#[test]
fn the_real_registry_models_are_present_and_verified() {
    let cache = model_cache();
    let out = run(hiwar(&cache).args(["models", "verify"]));
    assert_eq!(
        out.code,
        Some(0),
        "models in {} are not ready — run `hiwar models fetch` (the README's commands do):\n{}{}",
        cache.display(),
        out.stdout,
        out.stderr
    );
    for name in ["whisper-base", "silero-vad", "silero-vad-onnx", "smart-turn", "onnxruntime", "piper-en-joe", "tashkeel"] {
        assert!(out.stdout.lines().any(|l| l.starts_with(name) && l.contains("ok ")), "{name}:\n{}", out.stdout);
    }
}
