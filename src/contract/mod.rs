//! The image contract: the facts that the image builder (`context`), its
//! templates, `verify`, `manifests`, `ship` and `pgha-bootstrap` must agree
//! on, each defined once here.
//!
//! - [`layout`]: where things are in the image (the bootstrap binary, the
//!   build manifest, the bootstrap configuration, the secrets, Spilo's moved
//!   scripts) and the marks the generated wrappers carry.
//! - [`manifest`]: the one versioned [`BuildManifest`], written by the
//!   context builder and read leniently by every reader (older and newer
//!   manifests alike), with the `SPILO_CONFIGURATION` the image applies.
//! - [`markers`]: the log lines other parts wait for or look for.
//!
//! Everything else takes these from here; the templates get the paths from
//! the renderer, which takes them from [`layout`].

pub mod layout;
pub mod manifest;
pub mod markers;

pub use manifest::{
    BUILD_MANIFEST_VERSION, BuildManifest, ManifestExtension, ManifestFile, spilo_configuration,
};
