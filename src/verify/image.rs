//! What the image says about itself, read from throwaway containers of it
//! (`run --rm`, labelled with the run): its build manifest and bootstrap
//! configuration, then in one second container the facts the image-level
//! checks judge (packages, compilers, apt leftovers, glibc, whether
//! pgha-bootstrap runs, the extension files of every major).

use super::error::VerifyError;
use super::runtime::{Resources, text};
use crate::bootstrap::config::Config;
use crate::contract::BuildManifest;
use std::collections::BTreeMap;

pub use crate::contract::layout::{BOOTSTRAP_BIN, BUILD_MANIFEST as MANIFEST_PATH, LAUNCH_WRAPPER_MARK};
/// The largest build manifest read from an image (a real one is a few KiB).
pub const MANIFEST_MAX_BYTES: u64 = 1024 * 1024;
/// The largest bootstrap configuration read from an image.
pub const CONFIG_MAX_BYTES: u64 = 256 * 1024;

/// The manifest and bootstrap configuration.
pub struct ImageConfig {
    pub manifest: BuildManifest,
    pub bootstrap: Config,
    /// `/launch.sh` is pgha-image's launch wrapper: the image merges its own
    /// default server settings under the deployment's (docs/image.md).
    pub launch_wrapper: bool,
}

/// Facts for the image-level checks.
#[derive(Debug, Default)]
pub struct ImageFacts {
    pub postgres_owner: Option<(u32, u32)>,
    pub glibc: Option<String>,
    /// Exit status and output of `pgha-bootstrap --version`.
    pub bootstrap_status: Option<i32>,
    pub bootstrap_output: String,
    pub packages: Vec<String>,
    /// Compiler programs found on PATH.
    pub compilers: Vec<String>,
    /// Files left in apt's lists and caches.
    pub apt_leftovers: Vec<String>,
    /// Per extension: (major, problem) for each missing file; empty = all there.
    pub extension_files: BTreeMap<String, Vec<String>>,
}

/// A throwaway container of the image running `sh -c script args…`.
fn probe(
    res: &Resources,
    image: &str,
    suffix: &str,
    script: &str,
    args: &[String],
) -> Result<String, VerifyError> {
    let mut a: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--name".into(),
        res.name(suffix),
        "--label".into(),
        res.label_arg(),
        "--network".into(),
        "none".into(),
        "--entrypoint".into(),
        "/bin/sh".into(),
        image.into(),
        "-c".into(),
        script.into(),
        "sh".into(),
    ];
    a.extend(args.iter().cloned());
    let out = res.create(&a)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Split `@@name` sections of a probe's output.
fn sections(out: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("@@") {
            cur = Some(n.trim().to_string());
            m.entry(n.trim().to_string()).or_insert_with(String::new);
        } else if let Some(c) = &cur {
            let s = m.get_mut(c).expect("section exists");
            s.push_str(line);
            s.push('\n');
        }
    }
    m
}

pub fn read_config(res: &Resources, image: &str) -> Result<ImageConfig, VerifyError> {
    // Only regular files, and at most one byte past each limit, are read:
    // a link to /dev/zero must not fill the memory.
    let script = format!(
        "echo @@manifest; if [ -f {MANIFEST_PATH} ]; then head -c {} {MANIFEST_PATH}; echo; \
         else echo '@@manifest-error'; fi; \
         echo @@bootstrap; [ -f {cfg} ] && head -c {} {cfg}; echo; \
         echo @@launch; grep -c '{LAUNCH_WRAPPER_MARK}' /launch.sh 2>/dev/null; true",
        MANIFEST_MAX_BYTES + 2,
        CONFIG_MAX_BYTES + 2,
        cfg = crate::bootstrap::config::DEFAULT_PATH
    );
    let out = probe(res, image, "probe-config", &script, &[])?;
    parse_config(image, &out)
}

/// The image's manifest, bootstrap configuration and launch wrapper, from
/// the config probe's output (`@@manifest`, `@@bootstrap`, `@@launch` sections).
pub fn parse_config(image: &str, out: &str) -> Result<ImageConfig, VerifyError> {
    let s = sections(out);
    let not_ours = |detail: String| VerifyError::NotOurImage {
        image: image.to_string(),
        path: MANIFEST_PATH.into(),
        detail,
    };
    if s.contains_key("manifest-error") {
        return Err(not_ours("the file is missing or not a regular file".into()));
    }
    // Each section has one newline of its own and one the script adds.
    let len = |name: &str| s.get(name).map_or(0, |t| t.len().saturating_sub(2)) as u64;
    if len("manifest") > MANIFEST_MAX_BYTES {
        return Err(not_ours(format!("it is larger than {MANIFEST_MAX_BYTES} bytes")));
    }
    if len("bootstrap") > CONFIG_MAX_BYTES {
        return Err(VerifyError::NotOurImage {
            image: image.to_string(),
            path: crate::bootstrap::config::DEFAULT_PATH.into(),
            detail: format!("it is larger than {CONFIG_MAX_BYTES} bytes"),
        });
    }
    let manifest = BuildManifest::from_json(s.get("manifest").map(String::as_str).unwrap_or("").as_bytes())
        .map_err(|e| not_ours(format!("not a build manifest: {e}")))?;
    let bootstrap = match s.get("bootstrap").map(|t| t.trim()).unwrap_or("") {
        "" => Config::default(),
        t => Config::parse(t).map_err(|e| VerifyError::NotOurImage {
            image: image.to_string(),
            path: crate::bootstrap::config::DEFAULT_PATH.into(),
            detail: format!("not a pgha-bootstrap configuration: {e}"),
        })?,
    };
    let launch_wrapper = s
        .get("launch")
        .and_then(|n| n.trim().parse::<u32>().ok())
        .is_some_and(|n| n > 0);
    Ok(ImageConfig {
        manifest,
        bootstrap,
        launch_wrapper,
    })
}

/// Read in one container of the image; see the script's header.
const FACTS_SCRIPT: &str = include_str!("facts.sh");

pub fn read_facts(res: &Resources, image: &str, m: &BuildManifest) -> Result<ImageFacts, VerifyError> {
    let mut args: Vec<String> = m.extensions.iter().map(|e| e.name.clone()).collect();
    args.push("--".into());
    args.extend(m.pg_majors.iter().map(u32::to_string));
    let script = FACTS_SCRIPT.replace("$BOOTSTRAP_BIN", BOOTSTRAP_BIN);
    let out = probe(res, image, "probe-facts", &script, &args)?;
    Ok(parse_facts(&out, m))
}

fn parse_facts(out: &str, m: &BuildManifest) -> ImageFacts {
    let s = sections(out);
    let get = |k: &str| s.get(k).cloned().unwrap_or_default();
    let lines = |k: &str| -> Vec<String> {
        get(k)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    let owner = lines("owner");
    let postgres_owner = match owner.as_slice() {
        [u, g] => u.parse().ok().zip(g.parse().ok()),
        _ => None,
    };
    let glibc = get("glibc")
        .split_whitespace()
        .rfind(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(String::from);
    let boot = lines("bootstrap");
    let bootstrap_status = boot
        .first()
        .and_then(|l| l.strip_prefix("status="))
        .and_then(|v| v.parse().ok());
    let mut extension_files: BTreeMap<String, Vec<String>> = m
        .extensions
        .iter()
        .map(|e| (e.name.clone(), Vec::new()))
        .collect();
    for l in lines("extensions") {
        let mut it = l.splitn(3, ' ');
        if let (Some(e), Some(n), Some(what)) = (it.next(), it.next(), it.next()) {
            extension_files
                .entry(e.to_string())
                .or_default()
                .push(format!("PostgreSQL {n}: {what}"));
        }
    }
    ImageFacts {
        postgres_owner,
        glibc,
        bootstrap_status,
        bootstrap_output: boot.iter().skip(1).cloned().collect::<Vec<_>>().join(" / "),
        packages: lines("packages"),
        compilers: lines("compilers"),
        apt_leftovers: lines("apt"),
        extension_files,
    }
}

/// The image's environment, labels and layer history (`created_by`).
pub struct ImageMeta {
    pub id: String,
    pub env: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub history: Vec<String>,
}

pub fn read_meta(res: &Resources, image: &str) -> Result<ImageMeta, VerifyError> {
    let e = res.engine();
    let id = e.image_id(image)?;
    let labels = e.labels(image)?;
    let inspect = |fmt: &str| -> Result<String, VerifyError> {
        let out = res.output(&[
            "image".into(),
            "inspect".into(),
            "--format".into(),
            fmt.into(),
            image.into(),
        ])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let env: Vec<String> =
        serde_json::from_str::<Option<Vec<String>>>(inspect("{{json .Config.Env}}")?.trim())
            .ok()
            .flatten()
            .unwrap_or_default();
    let out = res.output(&[
        "image".into(),
        "history".into(),
        "--no-trunc".into(),
        "--format".into(),
        "{{.CreatedBy}}".into(),
        image.into(),
    ])?;
    let history = text(&out).lines().map(String::from).collect();
    Ok(ImageMeta {
        id,
        env,
        labels,
        history,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_parse() {
        for script in [FACTS_SCRIPT, crate::verify::runtime::WATCHER] {
            let st = std::process::Command::new("sh")
                .args(["-n", "-c", script])
                .status()
                .unwrap();
            assert!(st.success(), "{script}");
        }
    }

    fn manifest() -> BuildManifest {
        BuildManifest::from_json(
            serde_json::json!({
                "tool_version": "0.1.0", "base_image": "b", "pg_majors": [15, 16],
                "extensions": [
                    {"name": "vector", "version": "0.8.0", "recipe": "pgxs",
                     "smoke": {"sql": "SELECT 1", "expect": "1", "create": false}},
                    {"name": "pg_cron", "version": "1.6", "recipe": "base", "min_version": "1.6"}
                ],
                "shared_preload_libraries": ["pg_cron"],
                "parameters": {"shared_preload_libraries": "pg_cron", "cron.database_name": "postgres"},
                "dcs_parameters": {"wal_level": "logical"},
                "some_future_field": 1
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn facts_are_parsed() {
        let out = "@@owner\n101\n103\n@@glibc\nglibc 2.36\n@@bootstrap\nstatus=0\npgha-bootstrap 0.1.0\n\
                   @@packages\nlibc6\ngcc-12\n@@compilers\n/usr/bin/gcc\n@@apt\n/var/lib/apt/lists/x_Packages\n\
                   @@extensions\nvector 16 the library /usr/lib/postgresql/16/lib/vector.so is missing\n";
        let f = parse_facts(out, &manifest());
        assert_eq!(f.postgres_owner, Some((101, 103)));
        assert_eq!(f.glibc.as_deref(), Some("2.36"));
        assert_eq!(f.bootstrap_status, Some(0));
        assert_eq!(f.bootstrap_output, "pgha-bootstrap 0.1.0");
        assert_eq!(f.packages, ["libc6", "gcc-12"]);
        assert_eq!(f.compilers, ["/usr/bin/gcc"]);
        assert_eq!(f.apt_leftovers.len(), 1);
        assert_eq!(f.extension_files["vector"].len(), 1);
        assert!(f.extension_files["pg_cron"].is_empty());
    }
}
