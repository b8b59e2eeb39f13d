//! Every image a rendered deployment runs, pinned: the compose files name
//! each one by its content digest, never by a tag a registry could move or
//! a VM without a registry could not pull.
//!
//! [`deployment_images`] is the one list of the images a spec's deployment
//! needs (the PostgreSQL image, the DCS on the members, HAProxy, the
//! exporter); `manifests` pins them, `export --spec` and `ship --spec` carry
//! them, so the three cannot disagree.
//!
//! A reference is pinned when it is already `NAME@sha256:<hex>` or an image
//! id `sha256:<hex>`; a tag is resolved to the image id the local engine
//! holds (`image inspect`). The image id is the digest of the image's
//! config: it survives `save`/`load` and `ship` unchanged on Docker and
//! Podman alike, where a registry's `NAME@sha256:` manifest digest does not
//! (a loaded image has none). Rendering offline (`--image-manifest`) has no
//! engine to ask: there every image must be given pinned.

use super::ManifestsError;
use super::spec::{Dcs, Spec};
use crate::engine::{Engine, EngineError};
use crate::error::ExitCode;

/// One image of the deployment: the spec field that names it and the reference there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentImage {
    /// `image`, `images.etcd`, `images.consul`, `images.haproxy` or `images.exporter`.
    pub field: &'static str,
    pub reference: String,
}

/// The images the spec's deployment runs, the PostgreSQL image first (the
/// backup service runs it too); each once.
pub fn deployment_images(spec: &Spec) -> Vec<DeploymentImage> {
    let mut out = vec![DeploymentImage {
        field: "image",
        reference: spec.image.clone(),
    }];
    match spec.dcs {
        Dcs::EtcdOnMembers => out.push(DeploymentImage {
            field: "images.etcd",
            reference: spec.etcd_image.clone(),
        }),
        Dcs::ConsulOnMembers => out.push(DeploymentImage {
            field: "images.consul",
            reference: spec.consul_image.clone(),
        }),
        Dcs::ExternalEtcd(_) | Dcs::ExternalConsul(_) => {}
    }
    out.push(DeploymentImage {
        field: "images.haproxy",
        reference: spec.haproxy_image.clone(),
    });
    if let Some(m) = &spec.monitoring {
        out.push(DeploymentImage {
            field: "images.exporter",
            reference: m.exporter_image.clone(),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|i| seen.insert(i.reference.clone()));
    out
}

/// `sha256:<64 hex>` (an image id) or `NAME@sha256:<64 hex>`.
pub fn is_pinned(reference: &str) -> bool {
    let digest = match reference.rsplit_once('@') {
        Some((name, d)) if !name.is_empty() => d,
        Some(_) => return false,
        None => reference,
    };
    digest.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    })
}

/// The pinned reference of every image the deployment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    pub images: Vec<(DeploymentImage, String)>,
}

impl Pinned {
    /// The pinned reference of `reference` (one of the spec's images); itself when not an image of the deployment.
    pub fn of<'a>(&'a self, reference: &'a str) -> &'a str {
        self.images
            .iter()
            .find(|(i, _)| i.reference == reference)
            .map(|(_, p)| p.as_str())
            .unwrap_or(reference)
    }
}

/// Pin every image of the deployment: as given when pinned, else the id
/// the engine holds; without an engine a tag is an error naming its field.
pub fn pin(spec: &Spec, engine: Option<&Engine>) -> Result<Pinned, ManifestsError> {
    let mut images = Vec::new();
    for image in deployment_images(spec) {
        let pinned = if is_pinned(&image.reference) {
            image.reference.clone()
        } else if let Some(engine) = engine {
            match engine.image_id(&image.reference) {
                Ok(id) => id,
                Err(EngineError::ImageNotFound { .. }) => {
                    return Err(ManifestsError::Image {
                        path: spec.path.clone(),
                        field: image.field.to_string(),
                        message: format!(
                            "the image {} is not in the {} image store: the deployment refers to \
                             every image by its id, so it must be here to be pinned",
                            image.reference,
                            engine.kind()
                        ),
                        hint: "build or load it (`pgha-image load`, `podman load`), or give it pinned \
                               in the spec (NAME@sha256:… or its image id sha256:…)"
                            .into(),
                        code: ExitCode::Prerequisite,
                    });
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            return Err(ManifestsError::Image {
                path: spec.path.clone(),
                field: image.field.to_string(),
                message: format!(
                    "{} is a tag: rendering offline (--image-manifest) cannot pin it to a digest",
                    image.reference
                ),
                hint: "render with the engine that holds the images (without --image-manifest), or give \
                       the image pinned in the spec (NAME@sha256:… or its image id sha256:…)"
                    .into(),
                code: ExitCode::Usage,
            });
        };
        images.push((image, pinned));
    }
    Ok(Pinned { images })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pinned_references() {
        assert!(is_pinned(&format!("sha256:{HEX}")));
        assert!(is_pinned(&format!("localhost/x@sha256:{HEX}")));
        assert!(is_pinned(&format!("quay.io/coreos/etcd:v3.5.17@sha256:{HEX}")));
        assert!(!is_pinned("quay.io/coreos/etcd:v3.5.17"));
        assert!(!is_pinned(&format!("@sha256:{HEX}")));
        assert!(!is_pinned(&format!("x@sha256:{}", &HEX[1..])));
        assert!(!is_pinned(&format!("sha256:{}", HEX.to_uppercase())));
    }

    #[test]
    fn the_deployment_needs_its_dcs_haproxy_and_exporter_once_each() {
        let base = "scope = \"s\"\nimage = \"pg:1\"\n[images]\netcd = \"tools:1\"\nhaproxy = \"tools:1\"\n\
                    [[member]]\nname = \"a\"\naddress = \"192.0.2.1\"\n";
        let spec = super::super::spec::parse(std::path::Path::new("c.toml"), base).unwrap();
        let refs: Vec<_> = deployment_images(&spec)
            .into_iter()
            .map(|i| (i.field, i.reference))
            .collect();
        assert_eq!(
            refs,
            [
                ("image", "pg:1".to_string()),
                ("images.etcd", "tools:1".to_string())
            ]
        );
        let with_mon = base.replace("[[member]]", "[monitoring]\n[[member]]");
        let spec = super::super::spec::parse(std::path::Path::new("c.toml"), &with_mon).unwrap();
        let fields: Vec<_> = deployment_images(&spec).into_iter().map(|i| i.field).collect();
        assert_eq!(fields, ["image", "images.etcd", "images.exporter"]);
        let err = pin(&spec, None).unwrap_err();
        assert!(err.to_string().contains("image: pg:1 is a tag"), "{err}");
    }
}
