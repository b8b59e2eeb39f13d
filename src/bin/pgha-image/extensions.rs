//! `pgha-image extensions list|show`.

use crate::Global;
use clap::{Args, Subcommand};
use pgha_image::catalog::{Extension, Preload};
use pgha_image::redact;

/// `extensions` with its catalog option, which its subcommands take too.
#[derive(Args)]
pub struct ExtensionsArgs {
    #[command(flatten)]
    pub paths: crate::Sources,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// A table of the catalog's extensions
    List {
        /// Machine-readable output: a JSON array with every field of every extension
        #[arg(long)]
        json: bool,
    },
    /// Everything the catalog says about one extension
    Show {
        /// The SQL extension name, e.g. vector
        name: String,
        /// Machine-readable output (JSON)
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ExtensionsArgs, global: &Global) -> Result<(), pgha_image::Error> {
    let catalog = global.catalog()?;
    match args.command {
        Command::List { json } => {
            if json {
                let all: Vec<&Extension> = catalog.iter().collect();
                println!("{}", to_json(&all));
            } else {
                print!("{}", table(catalog.iter()));
            }
        }
        Command::Show { name, json } => {
            let ext = catalog.get(&name)?;
            if json {
                println!("{}", to_json(ext));
            } else {
                print!("{}", show(ext));
            }
        }
    }
    Ok(())
}

/// JSON of catalog values, with credentials in any URL hidden.
fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> String {
    fn hide(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = redact::text(s).into_owned(),
            serde_json::Value::Array(a) => a.iter_mut().for_each(hide),
            serde_json::Value::Object(o) => o.values_mut().for_each(hide),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(v).expect("catalog types serialize");
    hide(&mut v);
    serde_json::to_string_pretty(&v).expect("JSON values serialize")
}

/// A catalog enum's word as the catalog file spells it (its serde name: one
/// spelling, not a second table here).
fn word<T: serde::Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => unreachable!("catalog enums serialize as strings, not {other:?}"),
    }
}

fn table<'a>(exts: impl Iterator<Item = &'a Extension>) -> String {
    let header = ["NAME", "VERSION", "SET", "BUILD", "PG", "PRELOAD", "DESCRIPTION"];
    let rows: Vec<[String; 7]> = exts
        .map(|e| {
            let build = match (&e.base, e.build.kind) {
                (Some(_), k) if k != pgha_image::catalog::BuildKind::Base => format!("{k} (or base)"),
                (_, k) => k.to_string(),
            };
            [
                e.name.clone(),
                e.version.clone(),
                word(e.set),
                build,
                e.pg_majors.to_string(),
                word(e.preload),
                e.description.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    for r in &rows {
        out.push_str(&line(&r.iter().map(String::as_str).collect::<Vec<_>>()));
    }
    out
}

fn show(e: &Extension) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: &str| s.push_str(&format!("{k:<16} {v}\n"));
    kv("name", &e.name);
    kv("description", &e.description);
    if !e.homepage.is_empty() {
        kv("homepage", &e.homepage);
    }
    kv("license", &e.license);
    kv("set", &word(e.set));
    kv("version", &format!("{} (pinned)", e.version));
    kv("postgresql", &e.pg_majors.to_string());
    kv(
        "requires",
        &if e.requires.is_empty() {
            "-".to_string()
        } else {
            e.requires.join(", ")
        },
    );
    let preload = match e.preload {
        Preload::No => "no".to_string(),
        p => format!("{} (shared_preload_libraries: {})", word(p), e.library()),
    };
    kv("preload", &preload);
    for (k, v) in &e.settings {
        kv("setting", &format!("{k} = {v}"));
    }
    kv("build", &e.build.kind.to_string());
    if let Some(p) = &e.build.pgrx {
        kv("pgrx", p);
    }
    if !e.build.features.is_empty() {
        kv("features", &e.build.features.join(", "));
    }
    if !e.build.make_flags.is_empty() {
        kv("make flags", &e.build.make_flags.join(" "));
    }
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    kv("build packages", &list(&e.build.packages));
    kv("run packages", &list(&e.build.runtime_packages));
    if let Some(b) = &e.base {
        let mut v = "bundled by the base image".to_string();
        if let Some(m) = &b.min_version {
            v.push_str(&format!(", at least {m}"));
        }
        if let Some(k) = b.from_source {
            v.push_str(&format!("; --from-source builds it ({k})"));
        }
        kv("base", &v);
    }
    if let Some(n) = &e.notes {
        kv("notes", n);
    }
    s.push_str("versions:\n");
    for v in &e.versions {
        let src = &v.source;
        let pinned = if v.version == e.version { " (pinned)" } else { "" };
        s.push_str(&format!("  {}{pinned}\n", v.version));
        s.push_str(&format!("    url          {}\n", redact::url(&src.url)));
        s.push_str(&format!("    sha256       {}\n", src.sha256));
        if let Some(t) = &src.tag {
            s.push_str(&format!("    tag          {t}\n"));
        }
        if let Some(c) = &src.commit {
            s.push_str(&format!("    commit       {c}\n"));
        }
        let prov = word(src.provenance).replace('-', " ");
        let by = if src.confirmed_by.is_empty() {
            String::new()
        } else {
            format!(" ({})", src.confirmed_by.join("; "))
        };
        s.push_str(&format!("    provenance   {prov}{by}\n"));
        for (lib, min) in &v.build_requires {
            s.push_str(&format!("    needs        {lib} >= {min} in the base to build\n"));
        }
    }
    s
}
