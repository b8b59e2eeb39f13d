//! Shared support for the integration tests. Each file has one owner area:
//! `cli` (running `pgha-image`),
//! `prereq` (missing prerequisites fail with how to install them), `pg`
//! (throwaway PostgreSQL clusters), `http` (a fixture HTTP server on
//! 127.0.0.1), `images` (container engine, stand-in base images, the full-set
//! image), `sources` (where the real upstream extension archives come from),
//! `cluster` (pods on a Podman network as VMs, compose services run in them,
//! Patroni REST polling), `netns` (network namespaces as hosts, a real
//! dockerd on private paths), `vms` (the ship tests' VMs with sshd).
#![allow(dead_code)]

pub mod cli;
pub mod cluster;
pub mod http;
pub mod images;
pub mod netns;
pub mod pg;
pub mod prereq;
pub mod sources;
pub mod vms;
