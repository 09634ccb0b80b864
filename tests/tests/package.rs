//! The Debian package: built from the binary under test by `packaging/build-deb`, installed
//! with apt into a clean Debian 12 (a debootstrap minbase root, made once and kept as a
//! tarball under the cache), where systemd does not run — the post-install says so — and then
//! started as its own `hiwar` user with the installed config and assets. The OCI image is
//! built from that package by `packaging/Containerfile` with buildah and run with podman as the
//! Kubernetes Deployment runs it; the fleet's manifests are checked against Kubernetes' schemas.

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
        // Two tests may make it at once on a fresh machine: each writes its own file, the
        // rename is atomic.
        let partial = tempfile::NamedTempFile::new_in(&cache).expect("partial");
        sh(Command::new("tar").arg("-C").arg(root.path()).arg("-cf").arg(partial.path()).arg("."));
        partial.persist(&tarball).expect("rename");
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

/// The package, built from the binary under test into `out`: its path.
fn build_deb(out: &Path) -> PathBuf {
    let built = sh(Command::new(repo_root().join("packaging/build-deb")).arg("--binary").arg(hiwar_bin()).arg("--out").arg(out));
    let deb = PathBuf::from(built.lines().last().expect("deb path").trim());
    assert!(deb.is_file(), "{built}");
    deb
}

#[test]
fn the_deb_installs_and_starts_in_a_clean_debian_12() {
    let out = tempfile::tempdir().expect("out");
    let deb = build_deb(out.path());
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
    assert!(image.contains("ARG BASE=docker.io/library/debian:12-slim\nFROM ${BASE}\n"), "{image}");
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

/// buildah and podman (Debian's packages) with a store of their own: the vfs driver (no overlay
/// mounts), runc on cgroupfs (crun refuses this machine's hybrid cgroup hierarchy). The
/// containers it ran are removed when it is dropped.
struct Containers {
    store: tempfile::TempDir,
    names: Vec<String>,
}

impl Containers {
    fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(name);
        cmd.arg("--root").arg(self.store.path().join("root")).arg("--runroot").arg(self.store.path().join("run")).args(["--storage-driver", "vfs"]);
        if name == "podman" {
            cmd.args(["--cgroup-manager", "cgroupfs", "--runtime", "runc"]);
        }
        cmd
    }

    /// The last line a tool printed (a name, an ID, a mount point).
    fn said(&self, name: &str, args: &[&str]) -> String {
        sh(self.tool(name).args(args)).lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().trim().to_string()
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.tool("podman").args(["rm", "-f", "-t", "0", n]).output();
        }
    }
}

/// A typed question over the WebSocket as the page asks it: (reply text, audio bytes).
fn ask_over_the_socket(addr: &str, token: &str, question: &str) -> (String, usize) {
    use tungstenite::Message;
    use tungstenite::client::IntoClientRequest as _;
    let mut req = format!("ws://{addr}/ws").into_client_request().expect("request");
    req.headers_mut().insert("Authorization", format!("Bearer {token}").parse().expect("header"));
    let (mut ws, _) = tungstenite::connect(req).expect("the image's server upgrades a client with the token");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    }
    for m in [serde_json::json!({"type": "hello", "v": 1, "lang": "auto"}), serde_json::json!({"type": "text", "v": 1, "text": question})] {
        ws.send(Message::Text(m.to_string().into())).expect("send");
    }
    let (mut reply, mut audio) = (String::new(), 0);
    loop {
        match ws.read().expect("the answer") {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(&t).expect("server JSON");
                match v["type"].as_str() {
                    Some("reply") => reply.push_str(v["delta"].as_str().unwrap_or_default()),
                    Some("end_of_turn") => return (reply, audio),
                    Some("error") => panic!("the server said: {v}"),
                    _ => {}
                }
            }
            Message::Binary(b) => audio += b.len(),
            Message::Close(f) => panic!("closed before the end of the turn: {f:?}"),
            _ => {}
        }
    }
}

#[test]
fn the_oci_image_builds_from_the_deb_and_serves_as_the_deployment_runs_it() {
    let ctx = tempfile::tempdir().expect("context");
    let deb = build_deb(ctx.path());
    let mut c = Containers { store: tempfile::tempdir().expect("store"), names: Vec::new() };
    // The base: Debian 12 minbase (what debian:12-slim is made from), imported from the
    // debootstrap root the package test uses; docker.io is not reachable here.
    let base = c.said("buildah", &["from", "scratch"]);
    let root = c.said("buildah", &["mount", &base]);
    sh(Command::new("tar").arg("-C").arg(&root).arg("-xf").arg(debian12()));
    c.said("buildah", &["umount", &base]);
    c.said("buildah", &["commit", "-q", &base, "localhost/debian:12-minbase"]);
    // The image, exactly as packaging/Containerfile says, from the package under test.
    let deb_name = deb.file_name().and_then(|n| n.to_str()).expect("deb name");
    let containerfile = repo_root().join("packaging/Containerfile");
    let built = sh(c
        .tool("buildah")
        .args(["build", "--isolation", "chroot", "--pull=never", "--build-arg", "BASE=localhost/debian:12-minbase", "--build-arg"])
        .arg(format!("DEB={deb_name}"))
        .arg("-f")
        .arg(&containerfile)
        .args(["-t", "localhost/hiwar:test"])
        .arg(ctx.path()));
    assert!(built.contains("Successfully tagged localhost/hiwar:test"), "{built}");
    // Its configuration is what the Deployment expects (user, entry point, command, port).
    let format = "{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.ExposedPorts}}";
    let config = c.said("podman", &["image", "inspect", "localhost/hiwar:test", "--format", format]);
    assert_eq!(config, r#"10001:10001 ["/usr/bin/hiwar","--config","/etc/hiwar/hiwar.toml"] ["serve","--bind","0.0.0.0:8787"] {"8787/tcp":{}}"#);

    // Run as packaging/k8s/hiwar-serve.yaml runs it: its own user, a read-only root with /tmp
    // in memory, no capabilities, no privilege escalation, the token from the environment,
    // listening beyond loopback, the models (the init container's work) mounted at
    // HIWAR_HOME. Host networking: this sandbox has no bridge. The limits are set to what this
    // sandbox allows (podman's defaults are above its hard limits, which it may not raise).
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let (addr, token, name) = (format!("127.0.0.1:{port}"), "image-test-token", format!("hiwar-test-{port}"));
    let models = format!("{}:/var/lib/hiwar:ro", model_cache().display());
    c.names.push(name.clone());
    #[rustfmt::skip]
    let run_args = [
        "run", "-d", "--name", &name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096",
        "-e", &format!("HIWAR_SERVE_TOKEN={token}"), "-v", &models,
        "localhost/hiwar:test", "serve", "--bind", &format!("0.0.0.0:{port}"),
    ];
    c.said("podman", &run_args);
    let logs = |c: &Containers| String::from_utf8_lossy(&c.tool("podman").args(["logs", &name]).output().expect("logs").stderr).into_owned();
    let started = Instant::now();
    while http_get(&addr, "/healthz").map(|(s, _)| s) != Some(200) {
        assert!(started.elapsed() < Duration::from_secs(60), "the image's server did not come up:\n{}", logs(&c));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(http_get(&addr, "/readyz").map(|(s, _)| s), Some(200), "{}", logs(&c));
    // A client without the token is refused; one with it is answered, in Arabic, with audio
    // (the voices and ONNX Runtime load from the mounted models inside the image).
    assert!(tungstenite::connect(format!("ws://{addr}/ws")).is_err(), "upgraded without the token");
    let (reply, audio) = ask_over_the_socket(&addr, token, "متى يفتح المركز يوم الجمعة؟");
    assert!(reply.contains("الجمعة") && audio > 22_050 * 2 * 2, "reply {reply:?}, {audio} bytes of audio\n{}", logs(&c));
    // Stopped as Kubernetes stops a pod (SIGTERM): a clean exit, well within the grace period.
    c.said("podman", &["stop", "-t", "20", &name]);
    let code = c.said("podman", &["inspect", &name, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(code, "0", "{}", logs(&c));
}
