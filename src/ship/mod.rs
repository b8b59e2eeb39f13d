//! `pgha-image ship`: put an image on several hosts over ssh, sending only
//! the layers each one lacks.
//!
//! The mechanism (measured, see docs/ship.md): `docker load` (20.10) and
//! `podman load` (4.3) both accept a docker-archive in which the files of
//! layers the engine already holds (same layer on the same parents) are
//! empty: neither reads them, and both refuse with a digest error, loading
//! nothing, when the layer is in fact missing. So per host:
//!
//! 1. **inventory**: ask which images (and so which layer chains) the
//!    engine holds, and which layers an earlier, interrupted run left staged;
//! 2. **send** each missing layer, zstd-compressed from a local cache filled
//!    by one `save` of the image, into the host's staging directory, where it
//!    is kept only once its sha256 is its diff id (a re-run sends only what
//!    is still missing);
//! 3. **load** an archive assembled on the host (staged layers, empty files
//!    for held ones, the config checked against the image id) under a
//!    temporary tag, check the loaded id, and only then set the real tag.
//!
//! Hosts run in parallel; one failing does not stop the others.
//!
//! `ship --spec cluster.toml` ([`ship_deployment`]) ships every image of a
//! deployment ([`crate::manifests::pin::deployment_images`]: the PostgreSQL
//! image, etcd or Consul, HAProxy, the exporter) one after the other, each
//! to the hosts that run it; each host's inventory is taken afresh for each
//! image, so layers one image brought are not sent again for the next.

pub mod delta;
mod error;
pub mod layers;
pub mod remote;
pub mod target;

pub use error::ShipError;
pub use layers::{LayerCache, SourceImage};
pub use remote::Ssh;
pub use target::Target;

use crate::engine::{Engine, EngineChoice};
use crate::error::ExitCode;
use crate::hash::Sha256Digest;
use crate::progress::{Progress, human_bytes};
use serde::Serialize;
use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct ShipRequest {
    pub tag: String,
    pub targets: Vec<Target>,
    /// Hosts worked on at once.
    pub parallel: usize,
    pub ssh: Ssh,
    pub remote_engine: EngineChoice,
    /// Where compressed layers are cached (`<cache>/ship`).
    pub cache_dir: PathBuf,
}

/// What happened on one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub ok: bool,
    /// The engine used there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The image's layers the engine already held (bottom ones).
    pub layers_held: usize,
    /// Layers an earlier run had delivered.
    pub layers_staged: usize,
    pub layers_sent: usize,
    /// Compressed bytes written to ssh (layers, manifest and config).
    pub bytes_sent: u64,
    /// The image was there already: only the tag was set.
    pub already_there: bool,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub exit_code: ExitCode,
}

impl HostReport {
    /// Nothing done yet on `host`.
    pub fn new(host: String) -> Self {
        HostReport {
            host,
            ok: false,
            engine: None,
            layers_held: 0,
            layers_staged: 0,
            layers_sent: 0,
            bytes_sent: 0,
            already_there: false,
            seconds: 0.0,
            error: None,
            exit_code: ExitCode::Success,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ShipReport {
    pub tag: String,
    pub image_id: String,
    pub layers: usize,
    pub bytes_sent: u64,
    pub seconds: f64,
    pub hosts: Vec<HostReport>,
}

impl ShipReport {
    /// An error naming every failed host, or Ok when all succeeded.
    pub fn check(&self) -> Result<(), ShipError> {
        let failed: Vec<_> = self
            .hosts
            .iter()
            .filter(|h| !h.ok)
            .map(|h| (h.host.clone(), h.error.clone().unwrap_or_default(), h.exit_code))
            .collect();
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ShipError::HostsFailed {
                total: self.hosts.len(),
                failed,
            })
        }
    }
}

struct Plan {
    inventory: remote::Inventory,
    held: usize,
    /// Layers to send, bottom first.
    send: Vec<Sha256Digest>,
    there: bool,
}

/// Ship `req.tag` from `engine` to every target. Host failures are in the
/// report ([`ShipReport::check`]); an `Err` means nothing could start
/// (the image is not there, the local cache cannot be written).
pub fn ship(engine: &Engine, req: &ShipRequest, progress: &Progress) -> Result<ShipReport, ShipError> {
    let start = Instant::now();
    crate::engine::EngineError::check_reference(&req.tag)?;
    if !req.ssh.insecure_host_keys
        && let Some((option, why)) = remote::weak_host_key_option(&req.ssh.options)
    {
        return Err(ShipError::WeakHostKeyOption { option, why });
    }
    let image = SourceImage::inspect(engine, &req.tag)?;
    let cache = LayerCache::new(req.cache_dir.join("ship"));
    let parallel = req.parallel.max(1);

    // 1. What each host holds.
    let plans: Vec<Result<Plan, remote::HostError>> = run_parallel(&req.targets, parallel, |t| {
        let inv = req.ssh.inventory(t, req.remote_engine)?;
        for d in &inv.evicted {
            progress.println(format!(
                "warning: {t}: the staged layer sha256:{d} was corrupt on the host; removed it, it is sent again"
            ));
        }
        let there = inv.images.iter().any(|(id, _)| *id == image.id);
        let held = layers::held_prefix(&image.layers, &inv.images);
        let send = if there {
            Vec::new()
        } else {
            image.layers[held..]
                .iter()
                .filter(|d| !inv.staged.contains(d))
                .copied()
                .collect()
        };
        Ok(Plan {
            inventory: inv,
            held,
            send,
            there,
        })
    });

    // 2. One save fills the cache with what any host needs.
    let want: BTreeSet<Sha256Digest> = plans
        .iter()
        .flatten()
        .flat_map(|p| p.send.iter().copied())
        .collect();
    if plans.iter().flatten().any(|p| !p.there) {
        cache.fill(engine, &image, &want, progress)?;
    }
    let meta_for = |tmptag: &str| -> Result<Vec<u8>, ShipError> { meta_tar(&image, &cache, tmptag) };

    // 3. Send and load, host by host, in parallel.
    let jobs: Vec<(&Target, Result<Plan, remote::HostError>)> = req.targets.iter().zip(plans).collect();
    let hosts = run_parallel(&jobs, parallel, |(target, plan)| {
        let host_start = Instant::now();
        let mut rep = HostReport::new(target.to_string());
        let res = match plan {
            Err(e) => Err(e.clone()),
            Ok(plan) => {
                rep.engine = Some(plan.inventory.engine.clone());
                rep.layers_held = plan.held;
                rep.already_there = plan.there;
                rep.layers_staged = image.layers[plan.held..]
                    .iter()
                    .filter(|d| plan.inventory.staged.contains(d))
                    .count();
                deliver(req, &image, &cache, target, plan, &mut rep, progress, &meta_for)
            }
        };
        match res {
            Ok(()) => rep.ok = true,
            Err(e) => {
                progress.println(format!("{}: failed: {}", rep.host, e.message));
                rep.error = Some(e.message);
                rep.exit_code = e.code;
            }
        }
        rep.seconds = host_start.elapsed().as_secs_f64();
        rep
    });
    Ok(ShipReport {
        tag: image.tag.clone(),
        image_id: image.id.clone(),
        layers: image.layers.len(),
        bytes_sent: hosts.iter().map(|h| h.bytes_sent).sum(),
        seconds: start.elapsed().as_secs_f64(),
        hosts,
    })
}

#[allow(clippy::too_many_arguments)]
fn deliver(
    req: &ShipRequest,
    image: &SourceImage,
    cache: &LayerCache,
    target: &Target,
    plan: &Plan,
    rep: &mut HostReport,
    progress: &Progress,
    meta_for: &dyn Fn(&str) -> Result<Vec<u8>, ShipError>,
) -> Result<(), remote::HostError> {
    let local = |e: ShipError| remote::HostError {
        code: crate::error::Diagnostic::exit_code(&e),
        message: e.to_string(),
    };
    let engine = plan.inventory.engine.as_str();
    let label = target.to_string();
    if plan.there {
        req.ssh.tag(target, engine, image.id_hex(), &image.tag)?;
        progress.bytes(&label, Some(0)).finish("already there, tagged");
        return Ok(());
    }
    let total: u64 = plan.send.iter().map(|d| cache.layer_size(d)).sum();
    let task = progress.bytes(&label, Some(total));
    task.set_message(format!(
        "{} layer(s) to send, {} held",
        plan.send.len(),
        plan.held + rep.layers_staged
    ));
    for d in &plan.send {
        let path = cache.layer_path(d);
        let mut f = std::fs::File::open(&path)
            .map_err(error::io_err("opening the cached layer", &path))
            .map_err(local)?;
        let sent = req
            .ssh
            .receive(target, d, plan.inventory.wire, &mut f, &|n| task.inc(n))
            .inspect_err(|e| task.fail(format!("failed: {}", e.message)))?;
        rep.bytes_sent += sent;
        rep.layers_sent += 1;
    }
    task.set_message("loading");
    let tmptag = format!(
        "localhost/pgha-ship-incoming:{}-{}",
        &image.id_hex()[..12],
        std::process::id()
    );
    let meta = meta_for(&tmptag).map_err(local)?;
    rep.bytes_sent += meta.len() as u64;
    req.ssh
        .load(
            target,
            engine,
            image.id_hex(),
            &image.tag,
            &tmptag,
            &image.layers,
            &meta,
        )
        .inspect_err(|e| task.fail(format!("failed: {}", e.message)))?;
    task.finish(format!(
        "loaded, {} layer(s), {} sent",
        rep.layers_sent,
        human_bytes(rep.bytes_sent)
    ));
    Ok(())
}

/// Where each image of a deployment goes: the members run every image;
/// HAProxy's own host (`haproxy = "ADDRESS"`) only HAProxy's. `to`, when
/// given, replaces the spec's hosts: every image to each of them.
pub fn deployment_plan(
    spec: &crate::manifests::Spec,
    to: &[Target],
) -> Result<Vec<(crate::manifests::pin::DeploymentImage, Vec<Target>)>, ShipError> {
    use crate::manifests::spec::HaproxyPlacement;
    let host = |h: &str| Target {
        user: None,
        host: h.to_string(),
        port: None,
    };
    let members: Vec<Target> = spec.members.iter().map(|m| host(&m.address)).collect();
    let mut plan = Vec::new();
    for image in crate::manifests::pin::deployment_images(spec) {
        if image.reference.starts_with("sha256:") {
            return Err(ShipError::Unnamed {
                field: image.field.to_string(),
                reference: image.reference,
            });
        }
        let targets = if !to.is_empty() {
            to.to_vec()
        } else {
            let mut t = members.clone();
            if let HaproxyPlacement::Host(h) = &spec.haproxy
                && image.reference == spec.haproxy_image
            {
                t.push(host(h));
            }
            t
        };
        plan.push((image, targets));
    }
    Ok(plan)
}

/// What `ship --spec` did: one report per image, in the order shipped.
#[derive(Debug, Clone, Serialize)]
pub struct DeploymentReport {
    pub images: Vec<ShipReport>,
    /// Compressed bytes written to ssh for every image and host.
    pub bytes_sent: u64,
    pub seconds: f64,
}

impl DeploymentReport {
    /// An error naming every failed host of every image, or Ok.
    pub fn check(&self) -> Result<(), ShipError> {
        let mut total = 0;
        let mut failed = Vec::new();
        for r in &self.images {
            total += r.hosts.len();
            if let Err(ShipError::HostsFailed { failed: f, .. }) = r.check() {
                failed.extend(
                    f.into_iter()
                        .map(|(h, why, code)| (format!("{h} ({})", r.tag), why, code)),
                );
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(ShipError::HostsFailed { total, failed })
        }
    }
}

/// Ship every image of the deployment in `plan` (see [`deployment_plan`]),
/// one image after the other; `base` gives everything but the tag and the targets.
pub fn ship_deployment(
    engine: &Engine,
    plan: &[(crate::manifests::pin::DeploymentImage, Vec<Target>)],
    base: &ShipRequest,
    progress: &Progress,
) -> Result<DeploymentReport, ShipError> {
    let start = Instant::now();
    let mut images = Vec::new();
    for (image, targets) in plan {
        let req = ShipRequest {
            tag: image.reference.clone(),
            targets: targets.clone(),
            ..base.clone()
        };
        images.push(ship(engine, &req, progress)?);
    }
    Ok(DeploymentReport {
        bytes_sent: images.iter().map(|r| r.bytes_sent).sum(),
        seconds: start.elapsed().as_secs_f64(),
        images,
    })
}

/// The docker-archive `manifest.json` naming `tmptag`, and the config.
fn meta_tar(image: &SourceImage, cache: &LayerCache, tmptag: &str) -> Result<Vec<u8>, ShipError> {
    let config = cache.config(image)?;
    let manifest = manifest_json(image, tmptag);
    Ok(small_tar(&[
        ("manifest.json", &manifest),
        (&format!("{}.json", image.id_hex()), &config),
    ]))
}

/// `[{"Config": "<id>.json", "RepoTags": [tag], "Layers": ["<diff id>.tar", …]}]`
pub(crate) fn manifest_json(image: &SourceImage, tag: &str) -> Vec<u8> {
    let layers: Vec<String> = image
        .layers
        .iter()
        .map(|d| format!("{}.tar", d.to_hex()))
        .collect();
    serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{}.json", image.id_hex()),
        "RepoTags": [tag],
        "Layers": layers,
    }]))
    .expect("serializes")
}

pub(crate) fn small_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("in memory");
    }
    b.into_inner().expect("in memory")
}

/// Run `f` on every item with at most `n` at once; results in item order.
fn run_parallel<T: Sync, R: Send>(items: &[T], n: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let queue = Mutex::new((0..items.len()).collect::<VecDeque<_>>());
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..n.min(items.len()) {
            s.spawn(|| {
                loop {
                    let Some(i) = queue.lock().expect("not poisoned").pop_front() else {
                        break;
                    };
                    let r = f(&items[i]);
                    results.lock().expect("not poisoned")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("not poisoned")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_goes_to_its_members_and_haproxy_only_to_its_host() {
        let text = "scope = \"s\"\nimage = \"pg:1\"\nhaproxy = \"192.0.2.9\"\n\
                    [images]\netcd = \"etcd:1\"\nhaproxy = \"hap:1\"\n\
                    [[member]]\nname = \"a\"\naddress = \"192.0.2.1\"\n";
        let spec = crate::manifests::spec::parse(std::path::Path::new("c.toml"), text).unwrap();
        let plan = deployment_plan(&spec, &[]).unwrap();
        let hosts: Vec<(&str, Vec<String>)> = plan
            .iter()
            .map(|(i, t)| (i.reference.as_str(), t.iter().map(|t| t.to_string()).collect()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("pg:1", vec!["192.0.2.1".to_string()]),
                ("etcd:1", vec!["192.0.2.1".to_string()]),
                ("hap:1", vec!["192.0.2.1".to_string(), "192.0.2.9".to_string()]),
            ]
        );
        // --to replaces the spec's hosts.
        let to = Target::parse_list(&["root@vm1".to_string()]).unwrap();
        assert!(deployment_plan(&spec, &to).unwrap().iter().all(|(_, t)| *t == to));
        // An image pinned by id alone has no name to tag on the hosts.
        let hex = "a".repeat(64);
        let spec = crate::manifests::spec::parse(
            std::path::Path::new("c.toml"),
            &text.replace("pg:1", &format!("sha256:{hex}")),
        )
        .unwrap();
        assert!(matches!(
            deployment_plan(&spec, &[]),
            Err(ShipError::Unnamed { field, .. }) if field == "image"
        ));
    }

    #[test]
    fn parallel_keeps_order() {
        let v: Vec<u32> = (0..20).collect();
        assert_eq!(
            run_parallel(&v, 3, |x| x * 2),
            (0..20).map(|x| x * 2).collect::<Vec<_>>()
        );
    }

    #[test]
    fn failures_name_hosts_and_pick_one_code() {
        let h = |host: &str, ok: bool, code| HostReport {
            ok,
            error: (!ok).then(|| "boom".into()),
            exit_code: code,
            ..HostReport::new(host.into())
        };
        let mut r = ShipReport {
            tag: "t".into(),
            image_id: "i".into(),
            layers: 1,
            bytes_sent: 0,
            seconds: 0.0,
            hosts: vec![
                h("a", true, ExitCode::Success),
                h("b", false, ExitCode::Verification),
            ],
        };
        let e = r.check().unwrap_err();
        assert!(e.to_string().contains("1 of 2 host(s) failed: b: boom"), "{e}");
        assert_eq!(crate::error::Diagnostic::exit_code(&e), ExitCode::Verification);
        r.hosts.push(h("c", false, ExitCode::Failure));
        assert_eq!(
            crate::error::Diagnostic::exit_code(&r.check().unwrap_err()),
            ExitCode::Failure
        );
    }
}
