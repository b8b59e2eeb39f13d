//! A private `containers.conf` for one Podman command: the configuration
//! Podman would read (CONTAINERS_CONF, else the system files, their `.d`
//! drop-ins and the user's), merged key by key as Podman merges them, with
//! `engine.image_copy_tmp_dir` set to a directory of ours.
//!
//! Podman 4.3 has no override file (CONTAINERS_CONF_OVERRIDE came in 4.4),
//! and with CONTAINERS_CONF set it reads that file alone: hence the merge.

use std::io;
use std::path::{Path, PathBuf};

fn config_files() -> Vec<PathBuf> {
    if let Some(p) = std::env::var_os("CONTAINERS_CONF").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(p)];
    }
    let mut files = vec![
        PathBuf::from("/usr/share/containers/containers.conf"),
        PathBuf::from("/etc/containers/containers.conf"),
    ];
    fn dropins(files: &mut Vec<PathBuf>, dir: PathBuf) {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                .collect();
            v.sort();
            files.extend(v);
        }
    }
    dropins(
        &mut files,
        PathBuf::from("/usr/share/containers/containers.conf.d"),
    );
    dropins(&mut files, PathBuf::from("/etc/containers/containers.conf.d"));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0
        && let Some(cfg) = dirs::config_dir()
    {
        files.push(cfg.join("containers/containers.conf"));
        dropins(&mut files, cfg.join("containers/containers.conf.d"));
    }
    files
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Write `dir/containers.conf` (and make `dir/engine-tmp` for the engine's
/// temporary files); returns the file's path.
pub fn private_conf(dir: &Path) -> io::Result<PathBuf> {
    let mut conf = toml::Table::new();
    for f in config_files() {
        match std::fs::read_to_string(&f) {
            Ok(text) => match text.parse::<toml::Table>() {
                Ok(t) => merge(&mut conf, t),
                // Podman would refuse it too and say why; don't guess.
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "{} is not valid TOML: {e}",
                        f.display()
                    )));
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let tmp = dir.join("engine-tmp");
    std::fs::create_dir_all(&tmp)?;
    let engine = conf
        .entry("engine")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = engine {
        t.insert(
            "image_copy_tmp_dir".into(),
            toml::Value::String(tmp.to_string_lossy().into_owned()),
        );
    }
    let path = dir.join("containers.conf");
    std::fs::write(&path, toml::to_string(&conf).map_err(io::Error::other)?)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_other_keys_and_overrides_in_order() {
        let mut a: toml::Table = "[engine]\nruntime = \"crun\"\nx = 1\n[containers]\nk = 2\n"
            .parse()
            .unwrap();
        merge(&mut a, "[engine]\nruntime = \"runc\"\n".parse().unwrap());
        assert_eq!(a["engine"]["runtime"].as_str(), Some("runc"));
        assert_eq!(a["engine"]["x"].as_integer(), Some(1));
        assert_eq!(a["containers"]["k"].as_integer(), Some(2));
    }
}
