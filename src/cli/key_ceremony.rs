//! `hsm-demo key-ceremony` — placeholder; the key-ceremony helper replaces this file.

use crate::cli::Global;
use crate::error::{Error, Result};

/// `key-ceremony` arguments (placeholder).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {}

/// Runs `key-ceremony` (placeholder).
pub fn run(_args: Args, _g: &Global) -> Result<()> {
    Err(Error::Ceremony(
        "key-ceremony is not implemented yet".into(),
    ))
}
