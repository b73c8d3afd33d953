//! Running an IGVM file on QEMU (in progress).

/// Arguments of `igvm-build run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The IGVM file to boot.
    pub igvm: std::path::PathBuf,
}

/// Arguments of `igvm-build bench-boot`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The IGVM file to boot.
    pub igvm: std::path::PathBuf,
}

/// Runs the IGVM file; returns the process exit code igvm-build should use.
pub fn run(_args: &RunArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}

/// Boots repeatedly and prints the median time to the ready marker.
pub fn bench_boot(_args: &BenchArgs) -> anyhow::Result<u8> {
    anyhow::bail!("not implemented yet")
}
