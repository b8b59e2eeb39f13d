//! The minijinja environment both renderers start from (`context::render`
//! for the build context, `manifests::render` for deployments): strict
//! undefined values, trimmed blocks, a kept trailing newline, and every
//! `*.j2` file of an embedded template directory, at any depth, by its
//! relative path. Each renderer adds its own quoting filters.

use include_dir::{Dir, DirEntry};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Environment, UndefinedBehavior};

/// A template that could not be loaded, and why (minijinja's message with
/// its cause; each renderer wraps it in its own error).
#[derive(Debug)]
pub struct TemplateError {
    pub template: String,
    pub detail: String,
}

fn error(template: &str, e: impl std::fmt::Display) -> TemplateError {
    let mut detail = e.to_string();
    // minijinja errors carry their cause chain in `source()`.
    if let Some(cause) = format!("{e:#}")
        .lines()
        .skip(1)
        .find(|l| !l.trim().is_empty() && !l.starts_with('-'))
    {
        detail.push_str(&format!(" ({})", cause.trim()));
    }
    TemplateError {
        template: template.to_string(),
        detail,
    }
}

/// The environment with every template of `dir` loaded.
pub fn environment(dir: &'static Dir<'static>) -> Result<Environment<'static>, TemplateError> {
    let mut env = Environment::new();
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .map_err(|e| error("(syntax)", e))?,
    );
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    for file in files {
        let name = file.path().to_string_lossy().replace('\\', "/");
        if !name.ends_with(".j2") {
            continue;
        }
        let text = file.contents_utf8().ok_or_else(|| error(&name, "not UTF-8"))?;
        env.add_template_owned(name.clone(), text.to_string())
            .map_err(|e| error(&name, e))?;
    }
    Ok(env)
}

fn collect_files(dir: &'static Dir<'static>, out: &mut Vec<&'static include_dir::File<'static>>) {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(d) => collect_files(d, out),
            DirEntry::File(f) => out.push(f),
        }
    }
}
