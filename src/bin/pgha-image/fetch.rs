use crate::Global;
use clap::Args;

#[derive(Args)]
pub struct FetchArgs {}

#[derive(Args)]
pub struct MirrorArgs {}

pub fn run_fetch(_args: FetchArgs, _global: &Global) -> Result<(), pgha_image::Error> {
    Err(pgha_image::error::UsageError::new("`fetch` is being written").into())
}

pub fn run_mirror(_args: MirrorArgs, _global: &Global) -> Result<(), pgha_image::Error> {
    Err(pgha_image::error::UsageError::new("`mirror` is being written").into())
}
