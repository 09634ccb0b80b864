//! The Debian package: built from the binary under test by `packaging/build-deb`, installed
//! with apt into a clean Debian 12 (a debootstrap minbase root, made once and kept as a
//! tarball under the cache), where systemd does not run — the post-install says so — and then
//! started as its own `hiwar` user with the installed config and assets.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hiwar_tests::{hiwar_bin, http_get, model_cache, repo_root};

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// A pristine Debian 12 minbase root as a tarball, made once (needs root and Debian's mirror).
fn debian12() -> PathBuf {
    let cache = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".cache").join("hiwar-test");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let tarball = cache.join("debian12-minbase.tar");
    if !tarball.exists() {
        let root = tempfile::tempdir_in(&cache).expect("root");
        sh(Command::new("debootstrap").args(["--variant=minbase", "bookworm"]).arg(root.path()).arg("http://deb.debian.org/debian"));
        let partial = cache.join("debian12-minbase.tar.partial");
        sh(Command::new("tar").arg("-C").arg(root.path()).arg("-cf").arg(&partial).arg("."));
        std::fs::rename(&partial, &tarball).expect("rename");
    }
    tarball
}

/// A chroot with /proc, /dev and the host's name resolution; unmounted when dropped.
struct Chroot {
    root: tempfile::TempDir,
    mounts: Vec<PathBuf>,
}

impl Chroot {
    fn new(tarball: &Path) -> Chroot {
        let root = tempfile::tempdir().expect("root");
        sh(Command::new("tar").arg("-C").arg(root.path()).arg("-xf").arg(tarball));
        std::fs::copy("/etc/resolv.conf", root.path().join("etc/resolv.conf")).expect("resolv.conf");
        let mut c = Chroot { root, mounts: Vec::new() };
        c.mount(&["-t", "proc", "proc"], "proc");
        c.mount(&["--bind", "/dev"], "dev");
        c
    }

    fn mount(&mut self, how: &[&str], at: &str) {
        let target = self.root.path().join(at);
        std::fs::create_dir_all(&target).expect("mount point");
        // `how` ends with the source: mount -t proc proc T, mount --bind SRC T.
        sh(Command::new("mount").args(how).arg(&target));
        self.mounts.push(target);
    }

    /// Unmounts the last mount, waiting (up to 10 s) for processes still stopping in the root
    /// to let go of it.
    fn unmount_last(&mut self) {
        if let Some(m) = self.mounts.pop() {
            let started = Instant::now();
            while !Command::new("umount").arg(&m).status().is_ok_and(|s| s.success()) {
                assert!(started.elapsed() < Duration::from_secs(10), "{} stayed busy", m.display());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    fn run(&self, args: &[&str]) -> String {
        sh(Command::new("chroot").arg(self.root.path()).args(args).env("DEBIAN_FRONTEND", "noninteractive").env_remove("HIWAR_HOME"))
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

#[test]
fn the_deb_installs_and_starts_in_a_clean_debian_12() {
    let out = tempfile::tempdir().expect("out");
    let built = sh(Command::new(repo_root().join("packaging/build-deb")).arg("--binary").arg(hiwar_bin()).arg("--out").arg(out.path()));
    let deb = PathBuf::from(built.lines().last().expect("deb path").trim());
    assert!(deb.is_file(), "{built}");
    let info = sh(Command::new("dpkg-deb").arg("--info").arg(&deb));
    assert!(info.contains("Depends:") && info.contains("libasound2") && info.contains("espeak-ng"), "{info}");
    let files = sh(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    for f in [
        "./usr/bin/hiwar",
        "./etc/hiwar/hiwar.toml",
        "./lib/systemd/system/hiwar.service",
        "./lib/systemd/system/hiwar-serve.service",
        "./usr/share/hiwar/assets/knowledge/centre-ar.md",
        "./usr/share/doc/hiwar/kiosk.md",
    ] {
        assert!(files.contains(f), "{f} missing from the package:\n{files}");
    }
    // The units are valid systemd units (checked on this machine, which has systemd's tools).
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let unit_dir = tempfile::tempdir().expect("units");
        for u in ["hiwar.service", "hiwar-headless.service", "hiwar-serve.service"] {
            std::fs::copy(repo_root().join("packaging/deb").join(u), unit_dir.path().join(u)).expect("unit");
        }
        for u in ["hiwar.service", "hiwar-headless.service", "hiwar-serve.service"] {
            // (It also says that /usr/bin/hiwar and cage are not installed here: not the unit's fault.)
            let out = Command::new("systemd-analyze").arg("verify").arg(unit_dir.path().join(u)).output().expect("systemd-analyze");
            let text = String::from_utf8_lossy(&out.stderr);
            assert!(!text.contains("Unknown key") && !text.contains("Invalid") && !text.contains("Failed to parse"), "{u}: {text}");
        }
    }

    let mut chroot = Chroot::new(&debian12());
    std::fs::copy(&deb, chroot.root.path().join("tmp/hiwar.deb")).expect("copy deb");
    chroot.run(&["apt-get", "update", "-q"]);
    let installed = chroot.run(&["apt-get", "install", "-y", "-q", "--no-install-recommends", "/tmp/hiwar.deb"]);
    // No systemd here: a clear message with what to run instead.
    assert!(installed.contains("systemd is not running here") && installed.contains("runuser -u hiwar"), "{installed}");
    let user = chroot.run(&["id", "hiwar"]);
    assert!(user.contains("(hiwar)"), "{user}");
    let perms = chroot.run(&["stat", "-c", "%U:%G %a", "/etc/hiwar/hiwar.toml", "/var/lib/hiwar"]);
    assert_eq!(perms.lines().collect::<Vec<_>>(), ["root:hiwar 640", "hiwar:hiwar 750"], "{perms}");

    // Started as its user, with the installed config and assets; the models come from this
    // machine's verified cache (read-only), as a post-install fetch would have left them.
    let models = chroot.root.path().join("var/lib/hiwar/models");
    std::fs::create_dir_all(&models).expect("models dir");
    let cache = model_cache();
    chroot.mount(&["--bind", "-o", "ro", cache.to_str().expect("utf-8")], "var/lib/hiwar/models");
    let as_hiwar = |args: &[&str]| {
        let mut all = vec!["runuser", "-u", "hiwar", "--", "env", "HIWAR_HOME=/var/lib/hiwar/models", "hiwar", "--config", "/etc/hiwar/hiwar.toml"];
        all.extend_from_slice(args);
        chroot.run(&all)
    };
    let verified = as_hiwar(&["models", "verify"]);
    assert!(!verified.contains("MISSING") && !verified.contains("BAD"), "{verified}");
    let answer = as_hiwar(&["chat", "--once", "متى يفتح المركز يوم الجمعة؟"]);
    assert!(answer.contains("الجمعة"), "{answer}");
    // The embedding server comes up and answers its health check.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").to_string()
    };
    let mut server = Command::new("chroot")
        .arg(chroot.root.path())
        .args([
            "runuser",
            "-u",
            "hiwar",
            "--",
            "env",
            "HIWAR_HOME=/var/lib/hiwar/models",
            "hiwar",
            "--config",
            "/etc/hiwar/hiwar.toml",
            "serve",
            "--bind",
            &addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let started = Instant::now();
    let health = loop {
        if let Some((status, body)) = http_get(&addr, "/healthz") {
            break (status, body);
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = server.kill();
            let err = server.wait_with_output().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
            panic!("hiwar serve did not come up in the chroot:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = Command::new("pkill").args(["-TERM", "-f", &format!("serve --bind {addr}")]).status();
    let _ = server.wait();
    // runuser's child may outlive it by a moment: wait until no hiwar runs in the root.
    let started = Instant::now();
    while Command::new("pgrep").args(["-f", &format!("serve --bind {addr}")]).status().is_ok_and(|s| s.success()) && started.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(health.0, 200, "{}", health.1);
    // Purging removes what it made (the borrowed models first: they are not the package's).
    chroot.unmount_last();
    let purged = chroot.run(&["apt-get", "purge", "-y", "-q", "hiwar"]);
    assert!(!chroot.root.path().join("usr/bin/hiwar").exists(), "{purged}");
}

/// kubernetes-validate's verdict on a manifest file: (passed, what it printed).
fn kubernetes_validate(manifest: &Path) -> (bool, String) {
    // Installed, pinned, by `./bootstrap test` (PyPI's kubernetes-validate 1.37.0: Kubernetes'
    // own OpenAPI schemas, offline). Strict: a field Kubernetes does not know is an error.
    let tool = model_cache().join("tools/bin/kubernetes-validate");
    let out = Command::new(&tool)
        .args(["--strict", "--kubernetes-version", "1.31.0"])
        .arg(manifest)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (./bootstrap test installs it)", tool.display()));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_fleet_manifests_are_valid_kubernetes_and_agree_with_the_image() {
    let manifest = repo_root().join("packaging/k8s/hiwar-serve.yaml");
    let (passed, said) = kubernetes_validate(&manifest);
    assert!(passed && !said.contains("ERROR"), "{said}");
    for resource in ["deployment/hiwar-serve", "service/hiwar-serve", "horizontalpodautoscaler/hiwar-serve"] {
        assert!(said.contains(&format!("passed for resource {resource}")), "{resource} not checked:\n{said}");
    }
    // The check is not a formality: one misspelt field fails it.
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let bad = tempfile::tempdir().expect("dir");
    std::fs::write(bad.path().join("bad.yaml"), text.replace("averageUtilization", "averageUtilisation")).expect("write");
    let (passed, said) = kubernetes_validate(&bad.path().join("bad.yaml"));
    assert!(!passed && said.contains("averageUtilisation"), "{said}");

    // The image (packaging/Containerfile) and the manifests agree: the user, the port, the
    // entry point, and the subcommands the pods run exist in the binary.
    let image = std::fs::read_to_string(repo_root().join("packaging/Containerfile")).expect("Containerfile");
    assert!(image.lines().any(|l| l.starts_with("FROM ") && l.contains("debian:12")), "{image}");
    assert!(image.contains("USER 10001:10001") && text.contains("runAsUser: 10001") && text.contains("runAsNonRoot: true"));
    assert!(image.contains("EXPOSE 8787") && text.contains("containerPort: 8787") && text.contains("\"0.0.0.0:8787\""));
    assert!(image.contains(r#"ENTRYPOINT ["/usr/bin/hiwar", "--config", "/etc/hiwar/hiwar.toml"]"#), "{image}");
    assert!(text.contains("path: /healthz") && text.contains("path: /readyz") && text.contains("name: hiwar_sessions"));
    for args in [&["serve", "--help"][..], &["models", "fetch", "--help"]] {
        let out = Command::new(hiwar_bin()).args(args).output().expect("hiwar");
        assert!(out.status.success(), "hiwar {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The pods' session limit is the admission limit the HPA scales out before.
    let limit = text.split("name: HIWAR_SERVE_MAX_SESSIONS").nth(1).and_then(|r| r.split('"').nth(1)).and_then(|v| v.parse::<f64>().ok());
    let target = text.split("averageValue: \"").nth(1).and_then(|r| r.split('"').next()).and_then(|v| v.parse::<f64>().ok());
    assert!(matches!((limit, target), (Some(l), Some(t)) if t < l), "{limit:?} {target:?}");
}
