//! Building the IGVM file (in progress).
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct BuildArgs {
    #[arg(long)]
    pub stage2: PathBuf,
    #[arg(long)]
    pub kernel: PathBuf,
    #[arg(short, long)]
    pub output: PathBuf,
}

#[derive(clap::Args, Debug, Clone)]
pub struct InfoArgs {
    #[arg(long)]
    pub stage2: PathBuf,
    #[arg(long)]
    pub kernel: PathBuf,
}

pub fn build(_a: &BuildArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}

pub fn info(_a: &InfoArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
