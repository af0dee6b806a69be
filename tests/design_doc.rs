//! The design document (docs/acm-pca-design.md) cannot drift from the code:
//!
//! - every `hsm-demo …` command quoted in it — fenced code blocks (shell and Mermaid) and inline code
//!   spans — names an existing subcommand path, and every flag shown appears in that subcommand's
//!   real `--help` (the binary is run; a renamed flag or subcommand fails this test);
//! - every `<file>.rs::<name>` / `<file>.py::<name>` it cites exists (tests by name, code by item);
//! - every `acm-pca:…` / `dynamodb:…` IAM action or condition key it names is in infra/'s template,
//!   and every AWS template ARN it names is used by infra/ or src/;
//! - every `heading "§…"` the walkthrough prints is a heading of the document.
//!
//! Not checked, by design: lines that say the thing is "in progress", "planned" or "not built"
//! (and fenced blocks whose info string contains `planned`) — the document marks what does not
//! exist yet, and those commands are allowed not to exist.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

/// What `hsm-demo <path> --help` says.
#[derive(Debug, Clone)]
struct Help {
    subcommands: BTreeSet<String>,
    /// flag (`--json`, `-v`) → takes a value
    flags: HashMap<String, bool>,
    /// how many positional arguments (`Arguments:`; `usize::MAX` when one is variadic)
    positionals: usize,
}

fn parse_help(text: &str) -> Help {
    let mut subcommands = BTreeSet::new();
    let mut flags = HashMap::new();
    let mut positionals = 0usize;
    let mut section = "";
    for line in text.lines() {
        // Long help separates options with blank lines; a section ends at the next unindented line.
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            section = "";
        }
        match line {
            "Commands:" => {
                section = "commands";
                continue;
            }
            "Options:" | "Arguments:" => {
                section = if line == "Options:" {
                    "options"
                } else {
                    "args"
                };
                continue;
            }
            _ => {}
        }
        match section {
            "commands" => {
                if let Some(name) = line
                    .strip_prefix("  ")
                    .and_then(|l| l.split_whitespace().next())
                {
                    if !line.starts_with("   ") && name != "help" {
                        subcommands.insert(name.to_string());
                    }
                }
            }
            "options" => {
                let t = line.trim_start();
                let indent = line.len() - t.len();
                if !(t.starts_with('-') && (indent == 2 || indent == 6)) {
                    continue; // a wrapped description line
                }
                let spec = t.split("  ").next().unwrap_or(t);
                for piece in spec.split(", ") {
                    let name: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                        .collect();
                    if name.starts_with('-') && name.len() > 1 {
                        flags.insert(name, piece.contains('<'));
                    }
                }
            }
            "args" => {
                let t = line.trim_start();
                if t.starts_with('<') || t.starts_with('[') {
                    let spec = t.split("  ").next().unwrap_or(t);
                    positionals = if spec.contains("...") {
                        usize::MAX
                    } else {
                        positionals.saturating_add(1)
                    };
                }
            }
            _ => {}
        }
    }
    Help {
        subcommands,
        flags,
        positionals,
    }
}

/// Runs `--help` for subcommand paths, caching the answers.
struct Cli {
    bin: PathBuf,
    cache: HashMap<Vec<String>, Option<Help>>,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            bin: PathBuf::from(env!("CARGO_BIN_EXE_hsm-demo")),
            cache: HashMap::new(),
        }
    }

    fn help(&mut self, path: &[String]) -> Option<Help> {
        if let Some(h) = self.cache.get(path) {
            return h.clone();
        }
        let out = Command::new(&self.bin)
            .args(path)
            .arg("--help")
            .env_remove("HSM_DEMO_PIN")
            .output()
            .expect("run hsm-demo --help");
        let h = out
            .status
            .success()
            .then(|| parse_help(&String::from_utf8_lossy(&out.stdout)));
        self.cache.insert(path.to_vec(), h.clone());
        h
    }

    /// Checks one command line (the tokens after `hsm-demo`). Returns the subcommand path.
    fn check(&mut self, tokens: &[String]) -> Result<Vec<String>, String> {
        let mut path: Vec<String> = Vec::new();
        let mut help = self
            .help(&path)
            .ok_or_else(|| "`hsm-demo --help` failed".to_string())?;
        let mut i = 0;
        let mut positionals_used = 0usize;
        while i < tokens.len() {
            let tok = &tokens[i];
            if tok.starts_with('-') && tok.len() > 1 {
                let name = tok.split('=').next().unwrap_or(tok);
                let Some(&takes_value) = help.flags.get(name) else {
                    return Err(format!(
                        "flag {name} is not in `hsm-demo {}--help`",
                        path.iter().map(|p| format!("{p} ")).collect::<String>()
                    ));
                };
                if takes_value && !tok.contains('=') {
                    if i + 1 >= tokens.len() {
                        return Err(format!("flag {name} takes a value but none is shown"));
                    }
                    i += 1;
                }
            } else if help.subcommands.contains(tok.as_str()) {
                path.push(tok.clone());
                positionals_used = 0;
                help = self
                    .help(&path)
                    .ok_or_else(|| format!("`hsm-demo {} --help` failed", path.join(" ")))?;
            } else if positionals_used < help.positionals {
                positionals_used += 1;
            } else if help.subcommands.is_empty() {
                return Err(format!(
                    "`hsm-demo {}` takes no positional argument, but the document shows '{tok}'",
                    path.join(" ")
                ));
            } else {
                return Err(format!(
                    "'{tok}' is not a subcommand of `hsm-demo {}` (it has: {})",
                    path.join(" "),
                    help.subcommands
                        .iter()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            i += 1;
        }
        Ok(path)
    }
}

/// A quoted command: where it is and its tokens after `hsm-demo`.
#[derive(Debug)]
struct Quoted {
    line: usize,
    text: String,
    tokens: Vec<String>,
}

fn exempt(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("in progress") || l.contains("planned") || l.contains("not built")
}

/// Splits shell-ish text into tokens, honouring simple quotes.
fn shell_tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in s.chars() {
        match (quote, c) {
            // `<issuing CA>`: a placeholder is one token, spaces and all.
            (Some('>'), '>') => {
                cur.push('>');
                quote = None;
            }
            (None, '<') if cur.is_empty() => {
                cur.push('<');
                quote = Some('>');
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The commands in one piece of text (a code line or an inline code span).
fn commands_in(text: &str, line: usize, out: &mut Vec<Quoted>) {
    let mut rest = text;
    while let Some(pos) = rest.find("hsm-demo") {
        let before_ok = pos == 0 || {
            let b = rest.as_bytes()[pos - 1] as char;
            !(b.is_ascii_alphanumeric() || "-_/.=".contains(b))
        };
        let after = &rest[pos + "hsm-demo".len()..];
        rest = after;
        if !before_ok || !after.starts_with([' ', '\t']) {
            continue;
        }
        // The command ends at a shell comment, a pipe, a separator, a Mermaid break or a backtick.
        let mut end = after.len();
        for stop in [" #", "|", ";", "&&", "<br", "`", " >", " 2>"] {
            if let Some(p) = after.find(stop) {
                end = end.min(p);
            }
        }
        let cmd = &after[..end];
        let tokens = shell_tokens(cmd);
        if tokens.is_empty() {
            continue;
        }
        out.push(Quoted {
            line,
            text: format!("hsm-demo{cmd}").trim().to_string(),
            tokens,
        });
    }
}

/// Every `hsm-demo …` command of the document (code blocks, Mermaid, inline code), minus exempt lines.
fn quoted_commands(doc: &str) -> Vec<Quoted> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut skip_block = false;
    let mut pending = String::new();
    let mut pending_line = 0;
    for (n, line) in doc.lines().enumerate() {
        let lineno = n + 1;
        let t = line.trim_start();
        if t.starts_with("```") {
            if in_block {
                in_block = false;
            } else {
                in_block = true;
                // Only blocks that hold commands: shell and Mermaid (not YAML/JSON policy quotes).
                let info = t.trim_start_matches('`').trim();
                let lang = info.split_whitespace().next().unwrap_or("");
                skip_block = info.contains("planned")
                    || !["", "sh", "bash", "shell", "console", "text", "mermaid"].contains(&lang);
            }
            continue;
        }
        if in_block {
            if skip_block || exempt(line) {
                continue;
            }
            if pending.is_empty() {
                pending_line = lineno;
            }
            if let Some(cont) = line.trim_end().strip_suffix('\\') {
                pending.push_str(cont);
                pending.push(' ');
                continue;
            }
            pending.push_str(line);
            let text = std::mem::take(&mut pending);
            commands_in(&text, pending_line, &mut out);
        } else if !exempt(line) {
            // Inline code spans.
            let mut parts = line.split('`');
            parts.next();
            while let Some(span) = parts.next() {
                commands_in(span, lineno, &mut out);
                parts.next();
            }
        }
    }
    out
}

/// `<path>.rs::<name>` and `<path>.py::<name>` citations.
fn citations(doc: &str) -> Vec<(usize, String, String)> {
    let mut out = Vec::new();
    for (n, line) in doc.lines().enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("::") {
            let before = &rest[..pos];
            let after = &rest[pos + 2..];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c)))
                .map_or(0, |p| p + 1);
            let file = &before[start..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if (file.ends_with(".rs") || file.ends_with(".py")) && !name.is_empty() {
                out.push((n + 1, file.to_string(), name));
            }
            rest = after;
        }
    }
    out
}

fn cited_item_exists(file: &str, name: &str) -> Result<(), String> {
    let path = root().join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| format!("{file} does not exist (cited as {file}::{name})"))?;
    let found = if file.ends_with(".py") {
        text.contains(&format!("def {name}("))
    } else {
        [
            "fn", "struct", "enum", "const", "static", "mod", "trait", "type",
        ]
        .iter()
        .any(|kw| {
            [
                format!("{kw} {name}("),
                format!("{kw} {name}<"),
                format!("{kw} {name} "),
                format!("{kw} {name};"),
                format!("{kw} {name}:"),
            ]
            .iter()
            .any(|p| text.contains(p.as_str()))
        })
    };
    if found {
        Ok(())
    } else {
        Err(format!("{file} has no item named {name}"))
    }
}

fn doc() -> String {
    read("docs/acm-pca-design.md")
}

#[test]
fn every_quoted_command_exists_with_the_flags_shown() {
    let doc = doc();
    let cmds = quoted_commands(&doc);
    // Guard against a parser that silently finds nothing.
    assert!(
        cmds.len() >= 15,
        "only {} commands found: {cmds:#?}",
        cmds.len()
    );
    let mut cli = Cli::new();
    let mut errors = Vec::new();
    let mut paths = BTreeSet::new();
    for q in &cmds {
        match cli.check(&q.tokens) {
            Ok(p) => {
                paths.insert(p.join(" "));
            }
            Err(e) => errors.push(format!(
                "docs/acm-pca-design.md:{}: `{}`: {e}",
                q.line, q.text
            )),
        }
    }
    assert!(
        errors.is_empty(),
        "the document drifted from the CLI:\n{}",
        errors.join("\n")
    );
    // §6's commands are among them (the walkthrough runs these).
    for needed in [
        "provision",
        "pca show",
        "pca revoke",
        "pca reconcile",
        "pca issue",
        "pca csr",
    ] {
        assert!(
            paths.contains(needed),
            "no `hsm-demo {needed}` quoted in the document: {paths:?}"
        );
    }
}

#[test]
fn section_6_quotes_commands_and_all_of_them_are_checked() {
    let doc = doc();
    let start = doc.find("\n## §6").expect("the document has a §6");
    let s6 = &doc[start..];
    let cmds = quoted_commands(s6);
    assert!(cmds.len() >= 8, "§6 quotes only {} commands", cmds.len());
    let mut cli = Cli::new();
    for q in &cmds {
        cli.check(&q.tokens)
            .unwrap_or_else(|e| panic!("§6 (line {} of the section): `{}`: {e}", q.line, q.text));
    }
}

#[test]
fn the_checker_fails_on_a_renamed_flag_or_subcommand() {
    let mut cli = Cli::new();
    let fake = "```sh\nhsm-demo provision --ca-arn X --device-idd dev-1\nhsm-demo pca revokee --serial 1\n\
                hsm-demo --json pca show --device-id d1\n```\nand `hsm-demo pca list --stat issued` inline\n";
    let cmds = quoted_commands(fake);
    assert_eq!(cmds.len(), 4, "{cmds:#?}");
    let results: Vec<_> = cmds.iter().map(|q| cli.check(&q.tokens)).collect();
    let e0 = results[0].as_ref().unwrap_err();
    assert!(
        e0.contains("--device-idd") && e0.contains("provision"),
        "{e0}"
    );
    let e1 = results[1].as_ref().unwrap_err();
    assert!(e1.contains("revokee"), "{e1}");
    assert_eq!(
        results[2].as_ref().unwrap(),
        &vec!["pca".to_string(), "show".to_string()]
    );
    let e3 = results[3].as_ref().unwrap_err();
    assert!(e3.contains("--stat"), "{e3}");
    // Exempt lines are skipped, but only those.
    let marked = "`hsm-demo verify-transcript --bogus` (in progress)\n`hsm-demo bogus`\n";
    let cmds = quoted_commands(marked);
    assert_eq!(cmds.len(), 1);
    assert!(cli.check(&cmds[0].tokens).is_err());
}

/// Every flag of every subcommand (walks the tree through `--help`).
fn all_flags(cli: &mut Cli) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let h = cli.help(&path).expect("help of a listed subcommand");
        flags.extend(h.flags.keys().cloned());
        for sc in &h.subcommands {
            let mut p = path.clone();
            p.push(sc.clone());
            todo.push(p);
        }
    }
    flags
}

#[test]
fn every_flag_named_in_prose_exists_somewhere_in_the_cli() {
    let doc = doc();
    let mut cli = Cli::new();
    let flags = all_flags(&mut cli);
    assert!(
        flags.contains("--ca-arn") && flags.contains("--san-uri"),
        "{flags:?}"
    );
    // Flags of other tools the document may name.
    let foreign = ["--features"];
    let mut errors = Vec::new();
    let mut seen = 0;
    let mut in_block = false;
    for (n, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block || exempt(line) {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let Some(span) = parts.next() {
            parts.next();
            let Some(first) = span.split_whitespace().next() else {
                continue;
            };
            if !first.starts_with("--") {
                continue;
            }
            let name = first.split('=').next().unwrap_or(first);
            seen += 1;
            if !flags.contains(name) && !foreign.contains(&name) {
                errors.push(format!(
                    "docs/acm-pca-design.md:{}: `{span}`: no hsm-demo subcommand has {name}",
                    n + 1
                ));
            }
        }
    }
    assert!(seen >= 10, "only {seen} inline flags found");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn every_cited_test_and_code_item_exists() {
    let doc = doc();
    let cites = citations(&doc);
    let tests: Vec<_> = cites
        .iter()
        .filter(|(_, f, _)| f.contains("tests/"))
        .collect();
    assert!(
        tests.len() >= 20,
        "only {} test citations found",
        tests.len()
    );
    let errors: Vec<String> = cites
        .iter()
        .filter_map(|(line, file, name)| {
            cited_item_exists(file, name)
                .err()
                .map(|e| format!("docs/acm-pca-design.md:{line}: {e}"))
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The checker itself: a name that does not exist is reported.
    assert!(cited_item_exists("tests/pca_e2e.rs", "no_such_test_anywhere").is_err());
    assert!(cited_item_exists("tests/no_such_file.rs", "x").is_err());
}

#[test]
fn iam_actions_and_template_arns_match_infra_and_src() {
    let doc = doc();
    let infra = read("infra/templates/hierarchy.yaml");
    let mut src = String::new();
    for f in [
        "src/pca/issue.rs",
        "src/pca/ca.rs",
        "src/pca/registry.rs",
        "src/pca/revoke.rs",
    ] {
        src.push_str(&read(f));
    }
    let mut errors = Vec::new();
    let mut seen = 0;
    for prefix in ["acm-pca:", "dynamodb:"] {
        let mut rest = doc.as_str();
        while let Some(p) = rest.find(prefix) {
            let after = &rest[p + prefix.len()..];
            let word: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if word.starts_with(|c: char| c.is_ascii_uppercase()) {
                seen += 1;
                let action = format!("{prefix}{word}");
                if !infra.contains(&action) {
                    errors.push(format!("{action} is named in the document but not in infra/templates/hierarchy.yaml"));
                }
            }
            rest = after;
        }
    }
    assert!(seen >= 10, "only {seen} IAM names found");
    let mut rest = doc.as_str();
    let marker = ":::template/";
    while let Some(p) = rest.find(marker) {
        let after = &rest[p + marker.len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '/')
            .collect();
        if !(infra.contains(&name) || src.contains(&name)) {
            errors.push(format!(
                "template {name} is named in the document but used neither by infra/ nor src/pca"
            ));
        }
        rest = after;
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn walkthrough_headings_are_headings_of_the_document() {
    let doc = doc();
    let headings: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### ").or_else(|| l.strip_prefix("## ")))
        .collect();
    let script = read("scripts/walkthrough.sh");
    let shown: Vec<&str> = script
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("heading \"§"))
        .map(|l| l.split('"').next().unwrap_or(""))
        .collect();
    assert!(
        shown.len() >= 3,
        "the walkthrough prints {} § headings",
        shown.len()
    );
    for h in shown {
        let full = format!("§{h}");
        assert!(
            headings.contains(full.as_str()),
            "walkthrough heading '{full}' is not a heading of the document"
        );
    }
    assert!(Path::new(&root().join("scripts/walkthrough.sh")).exists());
}

#[test]
fn yaml_quoted_from_infra_is_still_in_infra() {
    let doc = doc();
    let infra = read("infra/templates/hierarchy.yaml");
    let infra_lines: BTreeSet<&str> = infra.lines().map(str::trim).collect();
    let mut in_yaml = false;
    let mut checked = 0;
    let mut errors = Vec::new();
    for (n, line) in doc.lines().enumerate() {
        let t = line.trim();
        if t.starts_with("```") {
            in_yaml = !in_yaml && t.trim_start_matches('`').trim() == "yaml";
            continue;
        }
        if !in_yaml || t.is_empty() || t.starts_with('#') {
            continue;
        }
        let code = t.split(" #").next().unwrap_or(t).trim_end();
        checked += 1;
        if !infra_lines.contains(code) {
            errors.push(format!(
                "docs/acm-pca-design.md:{}: `{code}` is not a line of infra/templates/hierarchy.yaml",
                n + 1
            ));
        }
    }
    assert!(checked >= 20, "only {checked} quoted YAML lines found");
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
