//! `pmdaemon export kubernetes|compose|systemd FILE`: the apps of an
//! ecosystem file for the engine a user moves to next. The file is read
//! and checked as `start` reads it (profiles, `${VAR}`); nothing starts.

use std::path::Path;

use anyhow::{Context, Result};
use pmdaemon_core::ecosystem::base_dir;
use pmdaemon_core::export;

use super::ecosystem;
use crate::cli::{ExportArgs, ExportTarget};

/// Writes the export to stdout (Kubernetes, Compose) or a directory
/// (systemd).
pub fn run(args: ExportArgs) -> Result<()> {
    match args.target {
        ExportTarget::Kubernetes { file, image, env } => {
            let (loaded, label, base) = read(&file, env)?;
            print!(
                "{}",
                export::kubernetes::export(&loaded.apps, &label, &base, &image)?
            );
        }
        ExportTarget::Compose { file, image, env } => {
            let (loaded, label, base) = read(&file, env)?;
            print!(
                "{}",
                export::compose::export(&loaded.apps, &label, &base, &image)?
            );
        }
        ExportTarget::Systemd { file, dir, env } => {
            let (loaded, label, _) = read(&file, env)?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for unit in export::systemd::export(&loaded.apps, &label) {
                let path = dir.join(&unit.file_name);
                std::fs::write(&path, &unit.text)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("[pmdaemon] wrote {}", path.display());
            }
        }
    }
    Ok(())
}

fn read(
    file: &Path,
    profile: Option<String>,
) -> Result<(pmdaemon_core::ecosystem::Loaded, String, std::path::PathBuf)> {
    let loaded = ecosystem::load(file, profile)?;
    let absolute =
        std::path::absolute(file).with_context(|| format!("cannot resolve {}", file.display()))?;
    let label = file.file_name().map_or_else(
        || file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    Ok((loaded, label, base_dir(&absolute)))
}
