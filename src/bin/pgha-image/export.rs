use crate::Global;
use clap::Args;

#[derive(Args)]
pub struct ExportArgs {}

#[derive(Args)]
pub struct LoadArgs {}

pub fn run_export(_args: ExportArgs, _global: &Global) -> Result<(), pgha_image::Error> {
    Err(pgha_image::error::UsageError::new("`export` is being written").into())
}

pub fn run_load(_args: LoadArgs, _global: &Global) -> Result<(), pgha_image::Error> {
    Err(pgha_image::error::UsageError::new("`load` is being written").into())
}
