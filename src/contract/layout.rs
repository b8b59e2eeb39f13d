//! Where things are in a pgha-image image. The Dockerfile template puts
//! them there (rendered from these values); `verify`, `manifests` and
//! `pgha-bootstrap` read them there.

/// The bootstrap binary (Patroni's post_init wrapper runs it).
pub const BOOTSTRAP_BIN: &str = "/usr/local/bin/pgha-bootstrap";
/// The build manifest ([`super::BuildManifest`]) in the image.
pub const BUILD_MANIFEST: &str = "/etc/pgha/build-manifest.json";
/// The build manifest's name inside the build context (copied to [`BUILD_MANIFEST`]).
pub const CONTEXT_MANIFEST: &str = "pgha-manifest.json";
/// The bootstrap's configuration file.
pub const BOOTSTRAP_CONFIG: &str = "/etc/pgha/bootstrap.toml";
/// The image's default Patroni configuration (JSON), merged UNDER the
/// deployment's `SPILO_CONFIGURATION` by the image's `/launch.sh` wrapper.
pub const SPILO_DEFAULTS: &str = "/etc/pgha/spilo-defaults.json";
/// Where the bootstrap reads its secrets (mounted files: runit strips the
/// environment of Patroni's hooks, see spilo-contract.md).
pub const SECRETS_DIR: &str = "/run/secrets/supabase";
/// The pgsodium root key file the getkey script reads (64 hex characters).
pub const PGSODIUM_KEY_FILE: &str = "/run/secrets/supabase/pgsodium_root_key";
/// Where Spilo's own post_init.sh is kept in the image (next to the wrapper:
/// it `cd`s to its own directory to find its SQL files).
pub const SPILO_POST_INIT: &str = "/scripts/post_init.spilo.sh";
/// Where Spilo's own launch.sh is kept; `/launch.sh` becomes the wrapper that
/// merges the image's default configuration under `SPILO_CONFIGURATION`.
pub const SPILO_LAUNCH: &str = "/launch.spilo.sh";
/// The merge the launch wrapper runs (python3 and PyYAML are in Spilo).
pub const MERGE_SCRIPT: &str = "/usr/local/lib/pgha/spilo_configuration.py";
/// What the generated `/launch.sh` says of itself (dockerfiles/launch.sh.j2).
pub const LAUNCH_WRAPPER_MARK: &str = "pgha-image launch wrapper";
/// What the generated `/scripts/post_init.sh` says of itself (dockerfiles/post_init.sh.j2).
pub const POST_INIT_WRAPPER_MARK: &str = "pgha-image post_init wrapper";
