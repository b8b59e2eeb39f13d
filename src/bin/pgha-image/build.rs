use crate::Global;
use clap::Args;

#[derive(Args)]
pub struct GenerateArgs {}

#[derive(Args)]
pub struct BuildArgs {}

pub fn run_generate(_args: GenerateArgs, _global: &Global) -> Result<(), pgha_image::Error> {
    Err(pgha_image::error::UsageError::new("`generate` is being written").into())
}

pub fn run_build(_args: BuildArgs, _global: &Global) -> Result<(), pgha_image::Error> {
    Err(pgha_image::error::UsageError::new("`build` is being written").into())
}
