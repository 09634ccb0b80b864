//! The house's layers, checked: each crate depends only on crates below it (`cargo metadata`),
//! and inside a crate no two top-level modules reach each other in a circle (read from the
//! source's `crate::` paths). See ARCHITECTURE.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hiwar_tests::repo_root;
use serde_json::Value;

/// Each crate's layer: a crate may depend only on crates of a lower layer.
const LAYERS: [(&str, u32); 8] = [
    ("hiwar-animation", 0),
    ("hiwar-speech", 0),
    ("hiwar-core", 1),
    ("hiwar-dialogue", 2),
    ("hiwar-stage", 3),
    ("hiwar-serve", 3),
    ("hiwar-bench", 4),
    ("hiwar", 5),
];

fn metadata() -> Value {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(repo_root())
        .output()
        .expect("cargo metadata");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("metadata json")
}

#[test]
fn every_crate_depends_only_on_crates_below_it() {
    let layer: BTreeMap<&str, u32> = LAYERS.into_iter().collect();
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    for name in &names {
        assert!(*name == "hiwar-tests" || layer.contains_key(name), "{name} has no layer in this test (and in ARCHITECTURE.md)");
    }
    let mut violations = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let Some(&own) = layer.get(name) else { continue };
        for d in p["dependencies"].as_array().into_iter().flatten() {
            let dep = d["name"].as_str().unwrap_or_default();
            if let Some(&theirs) = layer.get(dep)
                && theirs >= own
            {
                violations.push(format!("{name} (layer {own}) depends on {dep} (layer {theirs})"));
            }
            if dep == "hiwar-bench" && name != "hiwar" {
                violations.push(format!("{name} depends on the benchmarks"));
            }
        }
    }
    assert!(violations.is_empty(), "layering broken:\n{}", violations.join("\n"));
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The top-level modules each top-level module's files name through `crate::`.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(src) {
        let rel = file.strip_prefix(src).expect("inside src");
        let first = rel.components().next().and_then(|c| c.as_os_str().to_str()).unwrap_or_default();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" || module == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("source");
        let mut named = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                for part in group.split('}').next().unwrap_or_default().split(',') {
                    let m: String = part.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    named.insert(m);
                }
            } else {
                named.insert(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
            }
        }
        named.retain(|m| !m.is_empty() && *m != module);
        graph.entry(module).or_default().extend(named);
    }
    graph
}

/// A circle through `start`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, start: &str, seen: &mut BTreeSet<String>) -> bool {
        let last = path.last().cloned().unwrap_or_default();
        for next in graph.get(&last).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, path, start, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    walk(graph, &mut path, start, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_two_modules_of_a_crate_reach_each_other_in_a_circle() {
    let meta = metadata();
    let mut circles = Vec::new();
    for p in meta["packages"].as_array().expect("packages") {
        let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
        let src = manifest.parent().expect("crate dir").join("src");
        let graph = module_graph(&src);
        for module in graph.keys() {
            if let Some(c) = circle(&graph, module) {
                circles.push(format!("{}: {}", p["name"].as_str().unwrap_or_default(), c.join(" → ")));
            }
        }
    }
    assert!(circles.is_empty(), "modules in a circle (a module and its parent is the only circle allowed):\n{}", circles.join("\n"));
}
