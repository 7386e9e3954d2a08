//! The top-level modules of `src/` form layers: each may use only the modules below it
//! (issue 12). `LAYERS` is the documented order, lowest first; the module docs in
//! `src/lib.rs` and the README's Layout section list it too.
//!
//! The check reads the sources: every `crate::module` path and every name in a
//! `crate::{...}` group, outside comments and outside the unit tests (each file's
//! `#[cfg(test)] mod tests`, which is its last item), is a use of that module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may use those before it and no other.
const LAYERS: &[&str] = &[
    "time",
    "error",
    "rdd",
    "checkpoint",
    "dstream",
    "source",
    "scheduler",
    "config",
    "status_page",
    "signals",
    "context",
    "kafka",
    "logging",
    "demo",
];

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for `lib.rs`, the root
/// that re-exports everything).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("a file under src/");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_string())
}

/// The code of a file: up to its unit tests, without comment lines.
fn code(text: &str) -> String {
    text.lines()
        .take_while(|line| line.trim_end() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first segment of every `crate::` path in `code`; for a `crate::{a, b::c}`
/// group, `a` and `b`.
fn crate_references(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start => {
                        found.push(identifier(&group[i..]).to_string());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(identifier(rest).to_string());
        }
    }
    found
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let layer = |module: &str| LAYERS.iter().position(|m| *m == module);

    // module -> used module -> files
    let mut uses: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut problems = Vec::new();
    for file in &files {
        let Some(module) = top_module(&src, file) else {
            continue;
        };
        let shown = file.strip_prefix(&src).unwrap().display().to_string();
        if layer(&module).is_none() {
            problems.push(format!(
                "{shown}: module `{module}` is in no layer of LAYERS"
            ));
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for used in crate_references(&code(&text)) {
            if used == module {
                continue;
            }
            if layer(&used).is_none() {
                problems.push(format!(
                    "{shown}: `crate::{used}` is not a module: name items by their module so that the layering can be checked"
                ));
                continue;
            }
            uses.entry(module.clone())
                .or_default()
                .entry(used)
                .or_default()
                .insert(shown.clone());
        }
    }
    for (module, used) in &uses {
        for (target, files) in used {
            if layer(target) > layer(module) {
                let files: Vec<_> = files.iter().map(String::as_str).collect();
                problems.push(format!(
                    "{module} -> {target}: a lower layer uses a higher one ({})",
                    files.join(", ")
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the layers are, lowest first: {}\n{}",
        LAYERS.join(" < "),
        problems.join("\n")
    );
}

#[test]
fn references_are_found() {
    let code = code(
        "use crate::error::Result;\n\
         // crate::ignored in a comment\n\
         use crate::{rdd::Rdd, time::{Time, duration_millis}};\n\
         fn f() { crate::source::x(); }\n\
         #[cfg(test)]\n\
         mod tests { use crate::context; }\n",
    );
    assert_eq!(
        crate_references(&code),
        vec!["error", "rdd", "time", "source"]
    );
}
