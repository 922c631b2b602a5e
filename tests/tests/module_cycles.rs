//! No import circle among the modules of any crate of the workspace (#13): a
//! newcomer reads a crate from its leaves up, which only works when the
//! arrows between its modules all point one way. `rustc` allows cycles, so
//! this test is what keeps them out: `cargo test -p seckill-tests --test
//! module_cycles`.
//!
//! It reads the sources, not the compiler's view: every `use` tree and every
//! `a::b` path starting with `crate`, `super`, `self`, a child module or a
//! module brought in by `use` is an arrow from the file it is written in to
//! the deepest module it names (items of a `mod.rs` belong to that module, so
//! a child naming `super::Item` points at its parent). Comments and string
//! literals are skipped; inline modules (`mod tests { … }`) count as part of
//! their file; `mod x;` declarations are not arrows. Standard library only,
//! and nothing here is specific to one crate: [`no_crate_has_an_import_circle`]
//! checks the `src/` of every member of the workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`crate::proxy::body`) → the modules it points at.
pub type ModuleGraph = BTreeMap<String, BTreeSet<String>>;

/// `Err` naming every circle among the modules under `src` (a crate's source
/// directory; its `bin/` holds other crates and is skipped).
pub fn check_no_cycles(src: &Path) -> Result<(), String> {
    let graph = module_graph(src)?;
    let cycles = find_cycles(&graph);
    if cycles.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = cycles.iter().map(|c| format!("  {}", c.join(" → "))).collect();
    Err(format!("import circles among the modules of {}:\n{}", src.display(), lines.join("\n")))
}

/// The arrows between the file modules under `src`.
pub fn module_graph(src: &Path) -> Result<ModuleGraph, String> {
    let mut files = Vec::new();
    collect_rs(src, &mut files)?;
    let sources: Vec<(String, String)> = files
        .iter()
        .filter_map(|f| Some((file_module(src, f)?, f)))
        .map(|(m, f)| std::fs::read_to_string(f).map(|s| (m, strip(&s))).map_err(|e| format!("{}: {e}", f.display())))
        .collect::<Result<_, _>>()?;
    // Every module, inline ones included, mapped to the file it lives in.
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    for (m, text) in &sources {
        modules.insert(m.clone(), m.clone());
        for inline in inline_modules(m, &tokens(text)) {
            modules.insert(inline, m.clone());
        }
    }
    let mut graph = ModuleGraph::new();
    for (m, text) in &sources {
        let arrows = graph.entry(m.clone()).or_default();
        for target in references(m, &tokens(text), &modules) {
            let file = &modules[&target];
            if file != m {
                arrows.insert(file.clone());
            }
        }
    }
    Ok(graph)
}

/// Each circle once, as the path that closes it (`a → b → a`).
pub fn find_cycles(graph: &ModuleGraph) -> Vec<Vec<String>> {
    fn visit<'g>(
        node: &'g str,
        graph: &'g ModuleGraph,
        stack: &mut Vec<&'g str>,
        done: &mut BTreeSet<&'g str>,
        found: &mut Vec<Vec<String>>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            found.push(cycle);
            return;
        }
        stack.push(node);
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done, found);
        }
        stack.pop();
        done.insert(node);
    }
    let (mut stack, mut done, mut found) = (Vec::new(), BTreeSet::new(), Vec::new());
    for node in graph.keys() {
        visit(node, graph, &mut stack, &mut done, &mut found);
    }
    found
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    Ok(())
}

/// `src/a/b.rs` and `src/a/b/mod.rs` → `crate::a::b`; `lib.rs`/`main.rs` →
/// `crate`; `None` for `src/bin/…`.
fn file_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if parts.first().is_some_and(|p| p == "bin") {
        return None;
    }
    if matches!(parts.as_slice(), [only] if only == "lib" || only == "main") || parts.last().is_some_and(|l| l == "mod")
    {
        parts.pop();
    }
    Some(std::iter::once("crate".to_string()).chain(parts).collect::<Vec<_>>().join("::"))
}

/// The source without comments, string and char literals (blanked, so that
/// nothing in them reads as a path).
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        match (c[i], c.get(i + 1).copied()) {
            ('/', Some('/')) => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            ('r', Some('"' | '#')) if !c.get(i.wrapping_sub(1)).is_some_and(|p| p.is_alphanumeric() || *p == '_') => {
                let hashes = c[i + 1..].iter().take_while(|&&h| h == '#').count();
                if c.get(i + 1 + hashes) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                while i < c.len()
                    && !(c[i] == '"' && c[i + 1..].iter().take(hashes).filter(|&&h| h == '#').count() == hashes)
                {
                    i += 1;
                }
                i += 1 + hashes;
                out.push_str("\"\"");
            }
            ('"', _) => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal ('x', '\n'); a lifetime ('a) stays.
            ('\'', Some('\\')) => {
                i += 2;
                while i < c.len() && c[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            }
            ('\'', Some(_)) if c.get(i + 2) == Some(&'\'') => {
                i += 3;
                out.push_str("' '");
            }
            (ch, _) => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

/// Identifiers and the punctuation paths are made of (`::` is one token).
fn tokens(text: &str) -> Vec<String> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i].is_alphanumeric() || c[i] == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push(c[start..i].iter().collect());
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c[i].is_whitespace() {
                out.push(c[i].to_string());
            }
            i += 1;
        }
    }
    out
}

/// The inline modules (`mod name { … }`) of file module `file`, by path.
fn inline_modules(file: &str, tokens: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    walk(file, tokens, |scope, i| {
        if tokens[i] == "mod" && tokens.get(i + 2).is_some_and(|t| t == "{") {
            found.push(format!("{scope}::{}", tokens[i + 1]));
        }
    });
    found
}

/// Calls `f(scope, i)` for every token with the module it is written in.
fn walk(file: &str, tokens: &[String], mut f: impl FnMut(&str, usize)) {
    let mut scopes: Vec<(String, usize)> = vec![(file.to_string(), 0)];
    let mut depth = 0usize;
    let mut opening: Option<String> = None;
    for (i, t) in tokens.iter().enumerate() {
        f(&scopes.last().expect("the file's scope").0, i);
        match t.as_str() {
            "{" => {
                depth += 1;
                if let Some(name) = opening.take() {
                    let path = format!("{}::{name}", scopes.last().expect("a scope").0);
                    scopes.push((path, depth));
                }
            }
            "}" => {
                if scopes.len() > 1 && scopes.last().is_some_and(|s| s.1 == depth) {
                    scopes.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => opening = Some(tokens[i + 1].clone()),
            _ => {}
        }
    }
}

/// Every module the tokens of file module `file` name.
fn references(file: &str, tokens: &[String], modules: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut aliases: BTreeMap<String, String> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut paths: Vec<(String, Vec<String>, bool)> = Vec::new();
    let mut skip_until = 0;
    walk(file, tokens, |scope, i| {
        if i < skip_until {
            return;
        }
        if tokens[i] == "use" {
            let end = tokens[i..].iter().position(|t| t == ";").map_or(tokens.len(), |p| i + p);
            for path in use_tree(&tokens[i + 1..end], &[]) {
                paths.push((scope.to_string(), path, true));
            }
            skip_until = end;
        } else if is_ident(&tokens[i])
            && tokens.get(i + 1).is_some_and(|t| t == "::")
            && !(i > 0 && (tokens[i - 1] == "::" || tokens[i - 1] == "."))
        {
            let mut path = vec![tokens[i].clone()];
            let mut j = i + 1;
            while tokens.get(j).is_some_and(|t| t == "::") && tokens.get(j + 1).is_some_and(|t| is_ident(t)) {
                path.push(tokens[j + 1].clone());
                j += 2;
            }
            paths.push((scope.to_string(), path, false));
            skip_until = j;
        }
    });
    // `use` first, so that the modules it brings in are known as aliases.
    paths.sort_by_key(|p| !p.2);
    for (scope, path, is_use) in paths {
        let Some(full) = absolute(&scope, &path, modules, &aliases) else { continue };
        let Some(target) = deepest_module(&full, modules) else { continue };
        if is_use && target == full {
            let name = path.last().filter(|l| *l != "self").cloned();
            let name = name.or_else(|| full.rsplit("::").next().map(str::to_string));
            aliases.extend(name.map(|n| (n, full)));
        }
        out.insert(target);
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The paths a use tree's tokens spell (`a::{b, c::d as e}` → `a::b`, `a::c::d`).
fn use_tree(tokens: &[String], prefix: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut path = prefix.to_vec();
    let mut i = 0;
    if tokens.first().is_some_and(|t| t == "::") {
        return out; // `::extern_crate::…`
    }
    while i < tokens.len() {
        let t = &tokens[i];
        if t == "{" {
            let mut depth = 0;
            let mut start = i + 1;
            for j in i..tokens.len() {
                match tokens[j].as_str() {
                    "{" => depth += 1,
                    "}" if depth == 1 => {
                        out.extend(use_tree(&tokens[start..j], &path));
                        return out;
                    }
                    "}" => depth -= 1,
                    "," if depth == 1 => {
                        out.extend(use_tree(&tokens[start..j], &path));
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            return out;
        } else if t == "as" {
            break;
        } else if is_ident(t) && t != "pub" && t != "crate" || t == "crate" && path.is_empty() {
            path.push(t.clone());
        } else if t == "*" {
            break;
        }
        i += 1;
    }
    if path.len() > prefix.len() || !path.is_empty() && path.last().is_some_and(|l| l == "self") {
        out.push(path);
    }
    out
}

/// The absolute path a path written in `scope` spells, or `None` when it
/// starts outside the crate.
fn absolute(
    scope: &str,
    path: &[String],
    modules: &BTreeMap<String, String>,
    aliases: &BTreeMap<String, String>,
) -> Option<String> {
    let mut at: Vec<&str> = scope.split("::").collect();
    let mut rest = path.iter().map(String::as_str).peekable();
    match rest.peek().copied()? {
        "crate" => {
            at.truncate(1);
            rest.next();
        }
        "self" => {
            rest.next();
        }
        "super" => {
            while rest.peek() == Some(&"super") {
                at.pop();
                rest.next();
            }
        }
        first if modules.contains_key(&format!("{scope}::{first}")) => {}
        first => {
            let alias = aliases.get(first)?;
            at = alias.split("::").collect();
            rest.next();
        }
    }
    let mut out: Vec<&str> = at;
    out.extend(rest.filter(|s| *s != "self"));
    Some(out.join("::"))
}

/// The deepest module an absolute path names.
fn deepest_module(full: &str, modules: &BTreeMap<String, String>) -> Option<String> {
    let mut cut = full;
    loop {
        if modules.contains_key(cut) {
            return Some(cut.to_string());
        }
        cut = &cut[..cut.rfind("::")?];
    }
}

/// The workspace's members, read from its `Cargo.toml`.
fn workspace_members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace's Cargo.toml");
    let line = manifest.lines().find(|l| l.trim_start().starts_with("members")).expect("a members = [...] line");
    let list = &line[line.find('[').expect("[") + 1..line.find(']').expect("]")];
    list.split(',').map(|m| m.trim().trim_matches('"').to_string()).filter(|m| !m.is_empty()).collect()
}

/// Every crate of the workspace: its `src/` has no circle.
#[test]
fn no_crate_has_an_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root").to_path_buf();
    let members = workspace_members(&root);
    assert!(members.len() >= 8, "the members line was not read whole: {members:?}");
    let failures: Vec<String> =
        members.iter().filter_map(|m| check_no_cycles(&root.join(m).join("src")).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg(test)]
mod checker {
    use super::*;

    fn fixture(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("module-cycles-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn names_a_circle_through_use_lines_and_paths() {
        let src = fixture(
            "circle",
            &[
                ("lib.rs", "mod a; mod b;"),
                ("a.rs", "use crate::b::{self, B};\npub struct A;"),
                ("b/mod.rs", "mod c;\npub use c::C;\npub struct B;"),
                ("b/c.rs", "pub struct C(super::super::a::A);"),
            ],
        );
        let e = check_no_cycles(&src).unwrap_err();
        assert!(e.contains("crate::a → crate::b → crate::b::c → crate::a"), "{e}");
    }

    #[test]
    fn a_child_naming_its_parent_is_an_arrow() {
        let src = fixture(
            "parent",
            &[
                ("lib.rs", "mod p;"),
                ("p/mod.rs", "mod k;\npub struct G;\nfn f() { k::g(); }"),
                ("p/k.rs", "use super::G;\npub fn g() {}"),
            ],
        );
        assert!(check_no_cycles(&src).unwrap_err().contains("crate::p → crate::p::k → crate::p"));
    }

    #[test]
    fn comments_strings_tests_and_aliases_are_read_as_they_are() {
        let src = fixture(
            "clean",
            &[
                ("lib.rs", "pub mod a; pub mod b; pub use a::A;"),
                (
                    "a.rs",
                    "// crate::b::B would close a circle\npub struct A;\nconst S: &str = \"crate::b::x\";\n\
                     const R: &str = r#\"super::b\"#;\nfn f<'a>(x: &'a str) -> char { 'b' }\n\
                     #[cfg(test)]\nmod tests { use super::*; use crate::a; fn g() { a::f(\"\"); } }",
                ),
                ("b.rs", "use crate::a::{self};\npub struct B(a::A);\nfn h() { std::mem::drop(1); }"),
                ("bin/tool.rs", "use crate::b::B; use crate::a::A;"),
            ],
        );
        let graph = module_graph(&src).unwrap();
        assert_eq!(graph["crate::b"], BTreeSet::from(["crate::a".to_string()]));
        assert!(graph["crate::a"].is_empty(), "{graph:?}");
        assert!(!graph.contains_key("crate::bin::tool"));
        check_no_cycles(&src).unwrap();
    }
}
