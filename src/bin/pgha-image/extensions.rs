use crate::Global;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// A table of the catalog's extensions
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Everything the catalog says about one extension
    Show {
        /// The SQL extension name, e.g. vector
        name: String,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
}

pub fn run(_cmd: Command, _global: &Global) -> Result<(), pgha_image::Error> {
    Err(pgha_image::error::UsageError::new("`extensions` is being written").into())
}
